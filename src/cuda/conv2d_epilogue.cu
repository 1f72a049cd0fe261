// What the CUDA convolutions need around cuDNN (kernels.h): the folded
// BatchNorm's bias and the ReLU after an inference convolution (the
// widening of weight gradients is convert.cu's).
// (First version: cuDNN rounds the convolution to the storage type before
// the bias is added, one rounding more than the reference; a fused epilogue
// is the next step on the GPU.)
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

template <class T>
__global__ void bias_relu_kernel(size_t pixels, int c, int cw, const float* bias, bool relu, T* y) {
  const ChannelLane l(cw);
  if (!l.active(c)) return;
  const float b = bias ? bias[l.ch] : 0.0f;
  for (size_t p = l.first; p < pixels; p += l.stride) {
    const size_t i = p * size_t(c) + size_t(l.ch);
    float v = load(y[i]) + b;
    if (relu && !(v > 0.0f)) v = 0.0f;
    y[i] = store<T>(v);
  }
}

}  // namespace

void bias_relu(FloatType t, size_t pixels, int c, const float* bias, bool relu, void* y, cudaStream_t stream) {
  const ChannelTiling g = channel_tiling(pixels, c, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(bias_relu_kernel<T>, g.grid, kThreads, 0, stream, pixels, c, g.cw, bias, relu, static_cast<T*>(y));
  });
  check_launch("bias_relu");
}

}  // namespace mixseg::cuda
