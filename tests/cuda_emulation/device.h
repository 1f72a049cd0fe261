// What the CUDA kernels of src/cuda see when the tests compile them as plain
// C++ for the CPU emulation of the GPU (MIXSEG_CUDA_EMULATION, included first
// by src/cuda/cuda_types.cuh): the execution-space markers mean nothing, the
// built-in thread and block indices are the emulator's, __syncthreads() is a
// barrier of the block's threads, atomics are plain adds (one thread runs at
// a time), and a launch hands the kernel with its arguments to the emulator:
// queued on its stream, or recorded while the stream is being captured
// (runtime.cpp), it runs every thread of every block when its turn comes
// (grid.cpp).
//
// The storage types are CUDA's own (cuda_fp16.h, cuda_bf16.h compile for the
// host too), so loads and rounding stores are exactly the kernels'.
#pragma once

// Before the CUDA headers define them: host functions everywhere, and
// __shared__ variables static: the threads of a block, and the blocks, run
// one after another on one CPU thread, so one copy serves them all (a block
// finds what the previous one left there: as good as uninitialised).
#define __host__
#define __device__
#define __global__
#define __shared__ static

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace mixseg::cuda_emulation {

// Where the thread running now is in its launch.
struct ThreadPosition {
  uint3 thread{0, 0, 0}, block{0, 0, 0};
  dim3 block_dim, grid_dim;
};
const ThreadPosition& position();

// __syncthreads(): waits until every thread of the block has reached it.
void sync_threads();
// The block's dynamic shared memory (the launch's shared_bytes, filled with 0xff bytes).
void* dynamic_shared_memory();

// Fails (a std::runtime_error naming the kernel's parameter) unless p is null
// or points into device memory or pinned host memory (which a GPU reaches too).
void check_kernel_pointer(const void* p, int parameter);

// Runs thread_body once for every thread of the grid when stream's work
// runs (at every replay of the graph while stream is being captured); a bad
// configuration is the launch's error. kernel identifies the kernel
// (whether it has used __syncthreads() before).
void submit_kernel(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   std::function<void()> thread_body);

template <class Tuple, size_t... I>
void check_pointers(const Tuple& params, std::index_sequence<I...>) {
  auto one = [](const auto& p, int i) {
    if constexpr (std::is_pointer_v<std::decay_t<decltype(p)>>) check_kernel_pointer(p, i);
  };
  (one(std::get<I>(params), int(I)), ...);
}

// The launch of src/cuda/cuda_types.cuh: the arguments are converted to the
// kernel's parameters and copied now, as <<<>>> does.
template <class... P, class... A>
void launch(void (*k)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, A&&... args) {
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  check_pointers(params, std::index_sequence_for<P...>{});
  submit_kernel(reinterpret_cast<const void*>(k), grid, block, shared_bytes, stream,
                [k, params] { std::apply(k, params); });
}

}  // namespace mixseg::cuda_emulation

#define threadIdx (::mixseg::cuda_emulation::position().thread)
#define blockIdx (::mixseg::cuda_emulation::position().block)
#define blockDim (::mixseg::cuda_emulation::position().block_dim)
#define gridDim (::mixseg::cuda_emulation::position().grid_dim)

inline void __syncthreads() { ::mixseg::cuda_emulation::sync_threads(); }
inline double atomicAdd(double* a, double v) {
  const double old = *a;
  *a = old + v;
  return old;
}
inline float atomicAdd(float* a, float v) {
  const float old = *a;
  *a = old + v;
  return old;
}
inline unsigned atomicAdd(unsigned* a, unsigned v) {
  const unsigned old = *a;
  *a = old + v;
  return old;
}
// One thread runs at a time, every write is seen at once: nothing to order.
inline void __threadfence() {}
using std::isfinite;
