// Device-side helpers of the CUDA kernels: loads that widen each storage
// type to f32 and stores that round once (to nearest even), the ReLU test of
// the reference (16-bit: positive non-zero bit patterns), the dispatch from
// FloatType to the kernel template, launch sizes and the launch itself, the
// channel tiling of kernels over NHWC tensors and its 16-byte channel vectors.
// Under MIXSEG_CUDA_EMULATION the same kernels compile as C++ for the tests'
// CPU emulation of the GPU (tests/cuda_emulation), which runs every launch.
#pragma once
#if defined(MIXSEG_CUDA_EMULATION)
#include "cuda_emulation/device.h"
#endif
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "cuda/kernels.h"

namespace mixseg::cuda {

__device__ __forceinline__ float load(float v) { return v; }
__device__ __forceinline__ float load(__half v) { return __half2float(v); }
__device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T store(float v);
template <>
__device__ __forceinline__ float store<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half store<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ bool relu_active(float v) { return v > 0.0f; }
__device__ __forceinline__ bool relu_active(__half v) { return int16_t(__half_as_ushort(v)) > 0; }
__device__ __forceinline__ bool relu_active(__nv_bfloat16 v) { return int16_t(__bfloat16_as_ushort(v)) > 0; }

template <class T>
__device__ __forceinline__ T zero() { return store<T>(0.0f); }

constexpr int kThreads = 256;
inline unsigned blocks_for(size_t n) {
  const size_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < 65535u * 16u ? (b ? b : 1) : 65535u * 16u);  // grid-stride loops cover the rest
}

// Launches kernel k on stream with the arguments converted to its
// parameters (as <<<>>> does); the CPU emulation runs it in its place.
template <class... P, class... A>
void launch(void (*k)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, A&&... args) {
#if defined(MIXSEG_CUDA_EMULATION)
  cuda_emulation::launch(k, grid, block, shared_bytes, stream, std::forward<A>(args)...);
#else
  k<<<grid, block, shared_bytes, stream>>>(std::forward<A>(args)...);
#endif
}

// The block's dynamic shared memory (the launch's shared_bytes), as T.
template <class T>
__device__ __forceinline__ T* dynamic_shared_memory() {
#if defined(MIXSEG_CUDA_EMULATION)
  return static_cast<T*>(cuda_emulation::dynamic_shared_memory());
#else
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  return reinterpret_cast<T*>(shared_bytes);
#endif
}

// Throws with the kernel's name when the launch failed (bad configuration).
inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA kernel ") + what + ": " + cudaGetErrorString(e));
}

// Calls f(T{}) for the storage type t (a generic lambda takes the type from
// its argument: the .cu files are C++17).
template <class F>
void dispatch(FloatType t, F f) {
  switch (t) {
    case FloatType::f32: f(float{}); return;
    case FloatType::f16: f(__half{}); return;
    case FloatType::bf16: f(__nv_bfloat16{}); return;
  }
}

// The channel tiling of kernels over NHWC tensors seen as [pixels, C]: a
// block row of cw = min(C, 256) threads covers consecutive channels of a
// pixel (coalesced), the block's 256 / cw rows consecutive pixels, and
// blockIdx.y the chunks of 256 channels when C is larger. Each thread keeps
// one channel (its per-channel values in registers) and strides over
// pixels: no index division per element. At most max_blocks blocks.
struct ChannelTiling {
  dim3 grid;
  int cw;
};

inline ChannelTiling channel_tiling(size_t pixels, int c, unsigned max_blocks) {
  const int cw = c < kThreads ? c : kThreads, rows = kThreads / cw;
  const unsigned chunks = unsigned((c + cw - 1) / cw);
  size_t bx = (pixels + size_t(rows) - 1) / size_t(rows);
  const size_t cap = max_blocks / chunks > 0 ? max_blocks / chunks : 1;
  if (bx > cap) bx = cap;
  if (bx == 0) bx = 1;
  return {dim3(unsigned(bx), chunks), cw};
}

// This thread's channel and first pixel, and the pixel stride; false for
// threads outside the tiling (the last rows when cw does not divide the
// block, channels past C in the last chunk).
struct ChannelLane {
  int ch, row, col, rows;
  size_t first, stride;
  __device__ explicit ChannelLane(int cw) {
    rows = int(blockDim.x) / cw;
    col = int(threadIdx.x) % cw;
    row = int(threadIdx.x) / cw;
    ch = int(blockIdx.y) * cw + col;
    first = size_t(blockIdx.x) * size_t(rows) + size_t(row);
    stride = size_t(gridDim.x) * size_t(rows);
  }
  __device__ bool active(int c) const { return row < rows && ch < c; }
};

// Channel vectors. A thread of the channel tiling takes V consecutive
// channels of a pixel in one 16-byte access (V = 8 for 16-bit types, 4 for
// f32) where the channel count, the pixel strides and the pointers allow it
// (vector_width), else one (V = 1); the tiling then counts vectors, not
// channels. Why: a memory-bound kernel needs ~25 KB in flight per SM to
// approach the bandwidth (4.8 TB/s x ~700 ns, an assumed loaded DRAM
// latency, over 132 SMs), and one 2-byte load per thread, 2048 threads per
// SM, keeps 4 KB there (performance.md v0.20; HOPPER.md: 16-byte accesses
// per thread).
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <class T>
constexpr int kVector = int(16 / sizeof(T));

template <int V, class T>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
#if defined(MIXSEG_CUDA_EMULATION)  // a GPU faults on a misaligned vector access: so does the emulation
  if (reinterpret_cast<uintptr_t>(p) % sizeof(Pack<T, V>) != 0)
    throw std::runtime_error("misaligned address: a " + std::to_string(sizeof(Pack<T, V>)) + "-byte load");
#endif
  return *reinterpret_cast<const Pack<T, V>*>(p);
}
template <int V, class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& k) {
#if defined(MIXSEG_CUDA_EMULATION)
  if (reinterpret_cast<uintptr_t>(p) % sizeof(Pack<T, V>) != 0)
    throw std::runtime_error("misaligned address: a " + std::to_string(sizeof(Pack<T, V>)) + "-byte store");
#endif
  *reinterpret_cast<Pack<T, V>*>(p) = k;
}
// The same, widened to f32 and rounded back.
template <int V, class T>
__device__ __forceinline__ void load_f32(const T* p, float (&out)[V]) {
  const Pack<T, V> k = load_pack<V>(p);
  for (int i = 0; i < V; ++i) out[i] = load(k.v[i]);
}
template <int V, class T>
__device__ __forceinline__ void store_f32(T* p, const float (&in)[V]) {
  Pack<T, V> k;
  for (int i = 0; i < V; ++i) k.v[i] = store<T>(in[i]);
  store_pack<V>(p, k);
}

// The vector width for type t: 16 bytes' worth (kVector) when every count
// (channel counts and pixel strides, in elements) is a multiple of it and
// every pointer (null ones pass) is 16-byte aligned, else 1.
inline int vector_width(FloatType t, std::initializer_list<int> counts, std::initializer_list<const void*> pointers) {
  if (!vectors_enabled()) return 1;
  const int v = t == FloatType::f32 ? 4 : 8;
  for (int n : counts)
    if (n % v != 0) return 1;
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return 1;
  return v;
}

// Calls f(T{}, std::integral_constant<int, V>{}) for the storage type t and
// the vector width v (1 or kVector<T>, from vector_width).
template <class F>
void dispatch_vector(FloatType t, int v, F f) {
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    if (v == 1)
      f(tag, std::integral_constant<int, 1>{});
    else
      f(tag, std::integral_constant<int, kVector<T>>{});
  });
}

// Kernels that take pixel coordinates apart in 32 bits check the count first.
inline void check_pixels_fit_32_bits(size_t pixels, const char* what) {
  if (pixels >= (size_t(1) << 32)) throw std::runtime_error(std::string("CUDA ") + what + ": 2^32 pixels or more");
}

// Elementwise passes over the channel tiling: enough blocks to fill the GPU many times over.
constexpr unsigned kElementwiseBlocks = 65535u * 16u;

#define MIXSEG_GRID_STRIDE(i, n) \
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += size_t(gridDim.x) * blockDim.x)

}  // namespace mixseg::cuda
