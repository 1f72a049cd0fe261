// What the CUDA convolutions need around cuDNN (kernels.h): the folded
// BatchNorm's bias and the ReLU after an inference convolution (the
// widening of weight gradients is convert.cu's).
// (First version: cuDNN rounds the convolution to the storage type before
// the bias is added, one rounding more than the reference; a fused epilogue
// is the next step on the GPU.)
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// Over the channel tiling in vectors of V channels (cuda_types.cuh).
template <class T, int V>
__global__ void bias_relu_kernel(size_t pixels, int c, int cw, const float* bias, bool relu, T* y) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  float b[V];
  for (int i = 0; i < V; ++i) b[i] = bias ? bias[ch + i] : 0.0f;
  for (size_t p = l.first; p < pixels; p += l.stride) {
    float v[V];
    T* out = y + p * size_t(c) + size_t(ch);
    load_f32<V>(out, v);
    for (int i = 0; i < V; ++i) {
      v[i] += b[i];
      if (relu && !(v[i] > 0.0f)) v[i] = 0.0f;
    }
    store_f32<V>(out, v);
  }
}

}  // namespace

void bias_relu(FloatType t, size_t pixels, int c, const float* bias, bool relu, void* y, cudaStream_t stream) {
  dispatch_vector(t, vector_width(t, {c}, {y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(pixels, c / V, kElementwiseBlocks);
    launch(bias_relu_kernel<T, V>, g.grid, kThreads, 0, stream, pixels, c, g.cw, bias, relu, static_cast<T*>(y));
  });
  check_launch("bias_relu");
}

}  // namespace mixseg::cuda
