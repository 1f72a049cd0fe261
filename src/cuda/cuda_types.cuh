// Device-side helpers of the CUDA kernels: loads that widen each storage
// type to f32 and stores that round once (to nearest even), the ReLU test of
// the reference (16-bit: positive non-zero bit patterns), the dispatch from
// FloatType to the kernel template, and launch sizes.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

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

#define MIXSEG_GRID_STRIDE(i, n) \
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += size_t(gridDim.x) * blockDim.x)

}  // namespace mixseg::cuda
