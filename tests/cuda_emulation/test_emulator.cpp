// The CPU emulation of the GPU itself (tests/cuda_emulation): barriers make
// every thread's writes visible to the block, a barrier some threads skip is
// an error, writes past an allocation are the GPU's illegal address, a
// misaligned 16-byte access is a launch failure, kernels
// cannot take host pointers, fresh device memory reads as NaN, work runs
// when the host waits for it (pinned memory read then), launches alternate
// the order of blocks and threads, captured
// work runs at replay (not at capture) with the data of the replay, and
// what a capture cannot hold invalidates it. Compiled like the kernels
// (MIXSEG_CUDA_EMULATION), so these kernels go through the same launch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda/cuda_types.cuh"
#include "cuda/device_buffer.h"
#include "cuda_emulation/emulation.h"

using namespace mixseg::cuda;

namespace {

__global__ void block_sum_kernel(const float* x, float* sums) {
  __shared__ float sh[kThreads];
  sh[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = sh[0];
}

__global__ void half_the_block_returns_kernel(float* y) {
  if (threadIdx.x < blockDim.x / 2) return;
  __syncthreads();
  y[threadIdx.x] = 1.0f;
}

__global__ void scale_kernel(size_t n, float a, const float* x, float* y) { MIXSEG_GRID_STRIDE(i, n) y[i] = a * x[i]; }

__global__ void write_at_kernel(float* p, size_t i) { p[i] = 1.0f; }

__global__ void last_writer_kernel(unsigned* out) { *out = blockIdx.x * blockDim.x + threadIdx.x; }

template <class T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

}  // namespace

TEST(CudaEmulation, BarriersShowEveryThreadsWritesToTheBlock) {
  std::vector<float> x(2 * kThreads);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7);
  float* dx = device_alloc<float>(x.size());
  float* dsums = device_alloc<float>(2);
  ASSERT_EQ(cudaMemcpyAsync(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  for (int run = 0; run < 2; ++run) {  // the first launch learns the kernel has barriers, the second uses that
    launch(block_sum_kernel, 2, kThreads, 0, nullptr, dx, dsums);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    float sums[2];
    ASSERT_EQ(cudaMemcpyAsync(sums, dsums, sizeof sums, cudaMemcpyDeviceToHost, nullptr), cudaSuccess);
    for (int b = 0; b < 2; ++b) {
      float expect = 0;
      for (int i = 0; i < kThreads; ++i) expect += x[size_t(b * kThreads + i)];
      EXPECT_EQ(sums[b], expect) << "block " << b << ", run " << run;
    }
  }
  cudaFree(dx);
  cudaFree(dsums);
}

TEST(CudaEmulation, ConsecutiveLaunchesRunBlocksAndThreadsInOppositeOrders) {
  // A race (every thread writes one word) ends with a different winner, as
  // any order dependence would show a different result.
  unsigned* d = device_alloc<unsigned>(1);
  unsigned winners[2];
  for (unsigned& w : winners) {
    launch(last_writer_kernel, 3, 64, 0, nullptr, d);
    ASSERT_EQ(cudaMemcpyAsync(&w, d, sizeof w, cudaMemcpyDeviceToHost, nullptr), cudaSuccess);
  }
  EXPECT_EQ(std::min(winners[0], winners[1]), 0u);
  EXPECT_EQ(std::max(winners[0], winners[1]), 3u * 64 - 1);
  cudaFree(d);
}

TEST(CudaEmulation, ABarrierSomeThreadsNeverReachIsALaunchFailure) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(  // in a child process: the error is sticky, as on a GPU
      {
        float* y = device_alloc<float>(64);
        launch(half_the_block_returns_kernel, 1, 64, 0, nullptr, y);
        std::exit(cudaStreamSynchronize(nullptr) == cudaErrorLaunchFailure ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "ended while 32 waited at __syncthreads");
}

__global__ void copy_pack_kernel(const __half* x, __half* y) { store_pack<8>(y, load_pack<8>(x)); }

// A 16-byte access (a channel vector, cuda_types.cuh) off its alignment
// faults on a GPU: in the emulation too, as the sticky launch failure.
TEST(CudaEmulation, AMisalignedVectorAccessIsALaunchFailure) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  __half* ok = device_alloc<__half>(32);
  launch(copy_pack_kernel, 1, 1, 0, nullptr, ok, ok + 8);  // 16 bytes in: aligned
  ASSERT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
  EXPECT_EXIT(
      {
        __half* x = device_alloc<__half>(32);
        launch(copy_pack_kernel, 1, 1, 0, nullptr, x + 4, x + 16);  // 8 bytes in
        std::exit(cudaStreamSynchronize(nullptr) == cudaErrorLaunchFailure ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "misaligned address: a 16-byte load");
}

TEST(CudaEmulation, KernelsCannotTakeHostPointers) {
  std::vector<float> host(16);
  float* y = device_alloc<float>(16);
  try {
    launch(scale_kernel, 1, kThreads, 0, nullptr, size_t(16), 2.0f, host.data(), y);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("parameter 2"), std::string::npos) << e.what();
  }
  cudaFree(y);
}

TEST(CudaEmulation, FreshDeviceMemoryReadsAsNaN) {
  float* d = device_alloc<float>(5);
  float h[5] = {};
  ASSERT_EQ(cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, nullptr), cudaSuccess);
  for (float v : h) EXPECT_TRUE(std::isnan(v));
  cudaFree(d);
}

TEST(CudaEmulation, CopiesMustStayInsideDeviceAllocations) {
  float* d = device_alloc<float>(4);
  float h[8] = {};
  EXPECT_EQ(cudaMemcpyAsync(d, h, sizeof h, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpyAsync(h, h + 4, 16, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // not sticky
  cudaFree(d);
}

TEST(CudaEmulation, ABadLaunchConfigurationIsTheLaunchsError) {
  float* d = device_alloc<float>(4);
  launch(scale_kernel, 1, 2048, 0, nullptr, size_t(4), 1.0f, d, d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaFree(d);
}

TEST(CudaEmulation, WritingPastAnAllocationIsAnIllegalAddress) {
  // In child processes: the error is sticky, as on a GPU.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        float* d = device_alloc<float>(5);  // 20 bytes: guard bytes up to 256
        launch(write_at_kernel, 1, 1, 0, nullptr, d, size_t(5));
        std::exit(cudaStreamSynchronize(nullptr) == cudaErrorIllegalAddress ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_DEATH(
      {
        float* d = device_alloc<float>(64);  // 256 bytes: the unmapped page follows
        launch(write_at_kernel, 1, 1, 0, nullptr, d, size_t(64));
        cudaStreamSynchronize(nullptr);
      },
      "illegal address");
}

TEST(CudaEmulation, WorkRunsWhenTheHostWaitsForIt) {
  // As late as a GPU may: a pinned buffer is read when the copy runs, a
  // pageable one when the copy is issued (CUDA stages it).
  void* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, sizeof(float)), cudaSuccess);
  float pageable = 1.0f, out[2] = {0, 0};
  *static_cast<float*>(pinned) = 1.0f;
  float* d = device_alloc<float>(2);
  ASSERT_EQ(cudaMemcpyAsync(d, pinned, sizeof(float), cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(d + 1, &pageable, sizeof(float), cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  launch(scale_kernel, 1, kThreads, 0, nullptr, size_t(2), 3.0f, d, d);
  *static_cast<float*>(pinned) = 2.0f;  // before the device ran the copy
  pageable = 2.0f;
  ASSERT_EQ(cudaMemcpyAsync(out, d, sizeof out, cudaMemcpyDeviceToHost, nullptr), cudaSuccess);  // waits
  EXPECT_EQ(out[0], 6.0f);
  EXPECT_EQ(out[1], 3.0f);
  cudaFree(d);
  cudaFreeHost(pinned);
}

TEST(CudaEmulation, CapturedWorkRunsAtEachReplayOnTheDataOfThatReplay) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  void* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, 3 * sizeof(float)), cudaSuccess);
  float* in = static_cast<float*>(pinned);
  float* x = device_alloc<float>(3);
  float* y = device_alloc<float>(3);
  float out[3] = {0, 0, 0};
  in[0] = 1, in[1] = 2, in[2] = 3;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(x, in, 3 * sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
  launch(scale_kernel, 1, kThreads, 0, s, size_t(3), 10.0f, x, y);
  ASSERT_EQ(cudaMemcpyAsync(out, y, sizeof out, cudaMemcpyDeviceToHost, s), cudaSuccess);
  cudaGraph_t g = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  EXPECT_EQ(out[0], 0.0f);  // nothing ran yet
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, g, 0), cudaSuccess);
  for (float base : {1.0f, 5.0f}) {
    in[0] = base, in[1] = base + 1, in[2] = base + 2;
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i], 10.0f * (base + float(i)));
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(g);
  cudaFree(x);
  cudaFree(y);
  cudaFreeHost(pinned);
  cudaStreamDestroy(s);
}

TEST(CudaEmulation, AllocatingOrSynchronisingWhileCapturingInvalidatesTheCapture) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  for (int what = 0; what < 2; ++what) {
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    void* p = nullptr;
    EXPECT_EQ(what == 0 ? cudaMalloc(&p, 16) : cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
    cudaGraph_t g = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(g, nullptr);
    cudaGetLastError();
  }
  cudaStreamDestroy(s);
}

TEST(CudaEmulation, DeviceMemoryCanBeCapped) {
  ASSERT_EQ(setenv("MIXSEG_CUDA_EMULATION_MEMORY", "1000000", 1), 0);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 2000000), cudaErrorMemoryAllocation);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(cudaMalloc(&p, 1000), cudaSuccess);
  cudaFree(p);
  unsetenv("MIXSEG_CUDA_EMULATION_MEMORY");
  cudaGetLastError();
}

// The backend's growing buffers (cuDNN workspace, scratch) keep every
// pointer they handed out until they go: a recorded graph replays them.
TEST(CudaEmulation, DeviceBuffersKeepThePointersTheyHandedOut) {
  using mixseg::cuda_emulation::in_device_memory;
  void* first = nullptr;
  {
    mixseg::DeviceBuffer b("test buffer");
    first = b.get(64);
    void* second = b.get(4096);
    EXPECT_NE(second, first);
    EXPECT_TRUE(in_device_memory(first, 64));
    EXPECT_EQ(b.get(100), second);
    EXPECT_EQ(b.size(), 4096u);
  }
  EXPECT_FALSE(in_device_memory(first, 64));  // freed with the buffer
}
