// 2x2 max pooling on the GPU (kernels.h; ops/maxpool_ref.h is the reference):
// a later window element wins only if it is strictly greater (so a NaN in
// front stays, and ties go to the first), which makes both passes equal the
// reference bit for bit. x may be a channel slice of a wider tensor (pixel
// stride xs: a skip connection inside its concat buffer); y, dy, dx are dense.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// The input pixels of output pixel q's window (32-bit coordinate divisions:
// the host checks the pixel count), and the index of the first maximum of
// channel ch among them in x (pixel stride xs).
template <class T>
__device__ __forceinline__ int window_argmax(const T* x, int xs, unsigned h, unsigned w, unsigned q, int ch,
                                             size_t px[4]) {
  const unsigned ow = w / 2, oh = h / 2;
  const unsigned ox = q % ow, t = q / ow, oy = t % oh, n = t / oh;
  const size_t base = (size_t(n) * h + 2 * size_t(oy)) * w + 2 * size_t(ox);
  px[0] = base;
  px[1] = base + 1;
  px[2] = base + w;
  px[3] = base + w + 1;
  int best = 0;
  float m = load(x[px[0] * size_t(xs) + size_t(ch)]);
  for (int k = 1; k < 4; ++k) {
    const float v = load(x[px[k] * size_t(xs) + size_t(ch)]);
    if (v > m) m = v, best = k;
  }
  return best;
}

// Over the channel tiling (cuda_types.cuh): one channel per thread, striding over output pixels.
template <class T>
__global__ void maxpool_fwd_kernel(size_t out_pixels, unsigned h, unsigned w, int c, int cw, const T* x, int xs,
                                   T* y) {
  const ChannelLane l(cw);
  if (!l.active(c)) return;
  for (size_t q = l.first; q < out_pixels; q += l.stride) {
    size_t px[4];
    const int best = window_argmax(x, xs, h, w, unsigned(q), l.ch, px);
    y[q * size_t(c) + size_t(l.ch)] = x[px[best] * size_t(xs) + size_t(l.ch)];
  }
}

template <class T>
__global__ void maxpool_bwd_kernel(size_t out_pixels, unsigned h, unsigned w, int c, int cw, const T* x, int xs,
                                   const T* dy, T* dx) {
  const ChannelLane l(cw);
  if (!l.active(c)) return;
  for (size_t q = l.first; q < out_pixels; q += l.stride) {
    size_t px[4];
    const int best = window_argmax(x, xs, h, w, unsigned(q), l.ch, px);
    const T g = dy[q * size_t(c) + size_t(l.ch)];
    for (int k = 0; k < 4; ++k) dx[px[k] * size_t(c) + size_t(l.ch)] = k == best ? g : zero<T>();
  }
}

size_t output_pixels(int n, int h, int w, const char* what) {
  const size_t p = size_t(n) * size_t(h / 2) * size_t(w / 2);
  check_pixels_fit_32_bits(p, what);
  return p;
}

}  // namespace

void maxpool_fwd(FloatType t, int n, int h, int w, int c, const void* x, int x_stride, void* y, cudaStream_t stream) {
  const size_t out_pixels = output_pixels(n, h, w, "maxpool_fwd");
  const ChannelTiling g = channel_tiling(out_pixels, c, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(maxpool_fwd_kernel<T>, g.grid, kThreads, 0, stream, out_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), x_stride, static_cast<T*>(y));
  });
  check_launch("maxpool_fwd");
}

void maxpool_bwd(FloatType t, int n, int h, int w, int c, const void* x, int x_stride, const void* dy, void* dx,
                 cudaStream_t stream) {
  const size_t out_pixels = output_pixels(n, h, w, "maxpool_bwd");
  const ChannelTiling g = channel_tiling(out_pixels, c, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(maxpool_bwd_kernel<T>, g.grid, kThreads, 0, stream, out_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), x_stride, static_cast<const T*>(dy), static_cast<T*>(dx));
  });
  check_launch("maxpool_bwd");
}

}  // namespace mixseg::cuda
