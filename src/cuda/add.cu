// In-place add on the GPU (kernels.h; ops/add_ref.h is the reference): widened, summed, rounded once.
// y may be a channel slice of a wider tensor (a skip connection's gradient
// inside its concat's), so the pass runs over the channel tiling
// (cuda_types.cuh) with y's own pixel stride.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {
template <class T>
__global__ void add_kernel(size_t pixels, int c, int cw, const T* x, T* y, int ys) {
  const ChannelLane l(cw);
  if (!l.active(c)) return;
  for (size_t p = l.first; p < pixels; p += l.stride) {
    T& out = y[p * size_t(ys) + size_t(l.ch)];
    out = store<T>(load(out) + load(x[p * size_t(c) + size_t(l.ch)]));
  }
}
}  // namespace

void add_inplace(FloatType t, size_t pixels, int c, const void* x, void* y, int y_stride, cudaStream_t stream) {
  const ChannelTiling g = channel_tiling(pixels, c, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(add_kernel<T>, g.grid, kThreads, 0, stream, pixels, c, g.cw, static_cast<const T*>(x), static_cast<T*>(y),
           y_stride);
  });
  check_launch("add_inplace");
}

}  // namespace mixseg::cuda
