// What the CUDA convolutions need around cuDNN (kernels.h): the folded
// BatchNorm's bias and the ReLU after an inference convolution, and the
// widening of a weight gradient cuDNN computed in the storage type.
// (First version: cuDNN rounds the convolution to the storage type before
// the bias is added, one rounding more than the reference; a fused epilogue
// is the next step on the GPU.)
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

template <class T>
__global__ void bias_relu_kernel(size_t total, int c, const float* bias, bool relu, T* y) {
  MIXSEG_GRID_STRIDE(i, total) {
    float v = load(y[i]) + (bias ? bias[i % c] : 0.0f);
    if (relu && !(v > 0.0f)) v = 0.0f;
    y[i] = store<T>(v);
  }
}

template <class T>
__global__ void widen_kernel(size_t n, const T* x, float* y) {
  MIXSEG_GRID_STRIDE(i, n) y[i] = load(x[i]);
}

}  // namespace

void bias_relu(FloatType t, size_t pixels, int c, const float* bias, bool relu, void* y, cudaStream_t stream) {
  const size_t total = pixels * size_t(c);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    bias_relu_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(total, c, bias, relu, static_cast<T*>(y));
  });
  check_launch("bias_relu");
}

void widen_f32(FloatType t, size_t n, const void* x, float* y, cudaStream_t stream) {
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    widen_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(n, static_cast<const T*>(x), y);
  });
  check_launch("widen_f32");
}

}  // namespace mixseg::cuda
