// Nearest 2x upsampling on the GPU, forward, backward, and fused with the
// decoder's concat (kernels.h; ops/upsample_ref.h is the reference), over the
// channel tiling (cuda_types.cuh): each thread keeps one channel and strides
// over the input pixels, reading or writing each one's 2x2 output block; the
// backward sums the block in the reference's order (upper left, upper right,
// lower left, lower right) in f32. Pixel coordinates come from 32-bit
// divisions once per input pixel (the host checks the counts fit). The
// upsampled output (forward) and its gradient (backward) may be a channel
// slice of a wider tensor (a pixel stride above their channels: the decoder's
// half of its concat buffer).
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// Offset of channel ch at the upper left of input pixel q's 2x2 block in the
// [n, 2h, 2w] output of pixel stride ys, with the offset of the row below in *row.
__device__ __forceinline__ size_t block_offset(unsigned q, unsigned h, unsigned w, int ys, int ch, size_t* row) {
  const unsigned ix = q % w, t = q / w, iy = t % h, b = t / h;
  *row = 2 * size_t(w) * size_t(ys);
  return ((size_t(b) * 2 * h + 2 * size_t(iy)) * 2 * w + 2 * size_t(ix)) * size_t(ys) + size_t(ch);
}

// The upsampled channels of a [n, 2h, 2w] output of pixel stride ys (>= c):
// input channel ch to output channel ch.
template <class T>
__device__ __forceinline__ void upsample_channel(const ChannelLane& l, size_t in_pixels, unsigned h, unsigned w, int c,
                                                 int ys, const T* x, T* y) {
  for (size_t q = l.first; q < in_pixels; q += l.stride) {
    const T v = x[q * size_t(c) + size_t(l.ch)];
    size_t row;
    const size_t o = block_offset(unsigned(q), h, w, ys, l.ch, &row);
    y[o] = v;
    y[o + size_t(ys)] = v;
    y[o + row] = v;
    y[o + row + size_t(ys)] = v;
  }
}

template <class T>
__global__ void upsample_fwd_kernel(size_t in_pixels, unsigned h, unsigned w, int c, int cw, const T* x, T* y,
                                    int ys) {
  const ChannelLane l(cw);
  if (l.active(c)) upsample_channel(l, in_pixels, h, w, c, ys, x, y);
}

template <class T>
__global__ void upsample_bwd_kernel(size_t in_pixels, unsigned h, unsigned w, int c, int cw, const T* dy, int dys,
                                    T* dx) {
  const ChannelLane l(cw);
  if (!l.active(c)) return;
  for (size_t q = l.first; q < in_pixels; q += l.stride) {
    size_t row;
    const size_t a = block_offset(unsigned(q), h, w, dys, l.ch, &row);
    dx[q * size_t(c) + size_t(l.ch)] =
        store<T>(load(dy[a]) + load(dy[a + size_t(dys)]) + load(dy[a + row]) + load(dy[a + row + size_t(dys)]));
  }
}

// y [n, 2h, 2w, c + cs]: channels below c upsampled from x, the rest copied from skip.
template <class T>
__global__ void upsample_concat_kernel(size_t in_pixels, unsigned h, unsigned w, int c, int cw, const T* x, int cs,
                                       const T* skip, T* y) {
  const int ct = c + cs;
  const ChannelLane l(cw);
  if (!l.active(ct)) return;
  if (l.ch < c) return upsample_channel(l, in_pixels, h, w, c, ct, x, y);
  const size_t out_pixels = 4 * in_pixels, sch = size_t(l.ch - c);
  for (size_t p = l.first; p < out_pixels; p += l.stride) y[p * size_t(ct) + size_t(l.ch)] = skip[p * size_t(cs) + sch];
}

}  // namespace

void upsample_fwd(FloatType t, int n, int h, int w, int c, const void* x, void* y, int y_stride, cudaStream_t stream) {
  const size_t in_pixels = size_t(n) * size_t(h) * size_t(w);
  check_pixels_fit_32_bits(4 * in_pixels, "upsample_fwd");
  const ChannelTiling g = channel_tiling(in_pixels, c, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(upsample_fwd_kernel<T>, g.grid, kThreads, 0, stream, in_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), static_cast<T*>(y), y_stride);
  });
  check_launch("upsample_fwd");
}

void upsample_bwd(FloatType t, int n, int h, int w, int c, const void* dy, int dy_stride, void* dx,
                  cudaStream_t stream) {
  const size_t in_pixels = size_t(n) * size_t(h) * size_t(w);
  check_pixels_fit_32_bits(4 * in_pixels, "upsample_bwd");
  const ChannelTiling g = channel_tiling(in_pixels, c, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(upsample_bwd_kernel<T>, g.grid, kThreads, 0, stream, in_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(dy), dy_stride, static_cast<T*>(dx));
  });
  check_launch("upsample_bwd");
}

void upsample_concat_fwd(FloatType t, int n, int h, int w, int c, const void* x, int cs, const void* skip, void* y,
                         cudaStream_t stream) {
  const size_t in_pixels = size_t(n) * size_t(h) * size_t(w);
  check_pixels_fit_32_bits(4 * in_pixels, "upsample_concat_fwd");
  const ChannelTiling g = channel_tiling(4 * in_pixels, c + cs, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(upsample_concat_kernel<T>, g.grid, kThreads, 0, stream, in_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), cs, static_cast<const T*>(skip), static_cast<T*>(y));
  });
  check_launch("upsample_concat_fwd");
}

}  // namespace mixseg::cuda
