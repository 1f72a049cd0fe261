// In-place add on the GPU (kernels.h; ops/add_ref.h is the reference): widened, summed, rounded once.
// y may be a channel slice of a wider tensor (a skip connection's gradient
// inside its concat's), so the pass runs over the channel tiling in channel
// vectors (cuda_types.cuh) with y's own pixel stride.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {
template <class T, int V>
__global__ void add_kernel(size_t pixels, int c, int cw, const T* x, T* y, int ys) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  for (size_t p = l.first; p < pixels; p += l.stride) {
    float a[V], b[V];
    T* out = y + p * size_t(ys) + size_t(ch);
    load_f32<V>(out, a);
    load_f32<V>(x + p * size_t(c) + size_t(ch), b);
    for (int i = 0; i < V; ++i) a[i] += b[i];
    store_f32<V>(out, a);
  }
}
}  // namespace

void add_inplace(FloatType t, size_t pixels, int c, const void* x, void* y, int y_stride, cudaStream_t stream) {
  dispatch_vector(t, vector_width(t, {c, y_stride}, {x, y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(pixels, c / V, kElementwiseBlocks);
    launch(add_kernel<T, V>, g.grid, kThreads, 0, stream, pixels, c, g.cw, static_cast<const T*>(x),
           static_cast<T*>(y), y_stride);
  });
  check_launch("add_inplace");
}

}  // namespace mixseg::cuda
