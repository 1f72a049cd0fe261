// Nearest 2x upsampling on the GPU, forward, backward, and fused with the
// decoder's concat (kernels.h; ops/upsample_ref.h is the reference), over the
// channel tiling (cuda_types.cuh): each thread keeps a vector of V channels
// (16-byte accesses where the sizes allow, else one) and strides over the
// input pixels, reading or writing each one's 2x2 output block; the
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

// The upsampled channels ch..ch+V-1 of a [n, 2h, 2w] output of pixel stride
// ys (>= c): input channel ch to output channel ch.
template <class T, int V>
__device__ __forceinline__ void upsample_channels(const ChannelLane& l, size_t in_pixels, unsigned h, unsigned w,
                                                  int c, int ys, int ch, const T* x, T* y) {
  for (size_t q = l.first; q < in_pixels; q += l.stride) {
    const Pack<T, V> v = load_pack<V>(x + q * size_t(c) + size_t(ch));
    size_t row;
    const size_t o = block_offset(unsigned(q), h, w, ys, ch, &row);
    store_pack<V>(y + o, v);
    store_pack<V>(y + o + size_t(ys), v);
    store_pack<V>(y + o + row, v);
    store_pack<V>(y + o + row + size_t(ys), v);
  }
}

// Over the channel tiling in vectors of V channels (cuda_types.cuh).
template <class T, int V>
__global__ void upsample_fwd_kernel(size_t in_pixels, unsigned h, unsigned w, int c, int cw, const T* x, T* y,
                                    int ys) {
  const ChannelLane l(cw);
  if (l.active(c / V)) upsample_channels<T, V>(l, in_pixels, h, w, c, ys, l.ch * V, x, y);
}

template <class T, int V>
__global__ void upsample_bwd_kernel(size_t in_pixels, unsigned h, unsigned w, int c, int cw, const T* dy, int dys,
                                    T* dx) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  for (size_t q = l.first; q < in_pixels; q += l.stride) {
    size_t row;
    const size_t a = block_offset(unsigned(q), h, w, dys, ch, &row);
    float d[4][V], out[V];
    load_f32<V>(dy + a, d[0]);
    load_f32<V>(dy + a + size_t(dys), d[1]);
    load_f32<V>(dy + a + row, d[2]);
    load_f32<V>(dy + a + row + size_t(dys), d[3]);
    for (int i = 0; i < V; ++i) out[i] = d[0][i] + d[1][i] + d[2][i] + d[3][i];
    store_f32<V>(dx + q * size_t(c) + size_t(ch), out);
  }
}

// y [n, 2h, 2w, c + cs]: channels below c upsampled from x, the rest copied from skip.
template <class T, int V>
__global__ void upsample_concat_kernel(size_t in_pixels, unsigned h, unsigned w, int c, int cw, const T* x, int cs,
                                       const T* skip, T* y) {
  const int ct = c + cs;
  const ChannelLane l(cw);
  if (!l.active(ct / V)) return;
  const int ch = l.ch * V;
  if (ch < c) return upsample_channels<T, V>(l, in_pixels, h, w, c, ct, ch, x, y);
  const size_t out_pixels = 4 * in_pixels, sch = size_t(ch - c);
  for (size_t p = l.first; p < out_pixels; p += l.stride)
    store_pack<V>(y + p * size_t(ct) + size_t(ch), load_pack<V>(skip + p * size_t(cs) + sch));
}

}  // namespace

void upsample_fwd(FloatType t, int n, int h, int w, int c, const void* x, void* y, int y_stride, cudaStream_t stream) {
  const size_t in_pixels = size_t(n) * size_t(h) * size_t(w);
  check_pixels_fit_32_bits(4 * in_pixels, "upsample_fwd");
  dispatch_vector(t, vector_width(t, {c, y_stride}, {x, y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(in_pixels, c / V, kElementwiseBlocks);
    launch(upsample_fwd_kernel<T, V>, g.grid, kThreads, 0, stream, in_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), static_cast<T*>(y), y_stride);
  });
  check_launch("upsample_fwd");
}

void upsample_bwd(FloatType t, int n, int h, int w, int c, const void* dy, int dy_stride, void* dx,
                  cudaStream_t stream) {
  const size_t in_pixels = size_t(n) * size_t(h) * size_t(w);
  check_pixels_fit_32_bits(4 * in_pixels, "upsample_bwd");
  dispatch_vector(t, vector_width(t, {c, dy_stride}, {dy, dx}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(in_pixels, c / V, kElementwiseBlocks);
    launch(upsample_bwd_kernel<T, V>, g.grid, kThreads, 0, stream, in_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(dy), dy_stride, static_cast<T*>(dx));
  });
  check_launch("upsample_bwd");
}

void upsample_concat_fwd(FloatType t, int n, int h, int w, int c, const void* x, int cs, const void* skip, void* y,
                         cudaStream_t stream) {
  const size_t in_pixels = size_t(n) * size_t(h) * size_t(w);
  check_pixels_fit_32_bits(4 * in_pixels, "upsample_concat_fwd");
  dispatch_vector(t, vector_width(t, {c, cs}, {x, skip, y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(4 * in_pixels, (c + cs) / V, kElementwiseBlocks);
    launch(upsample_concat_kernel<T, V>, g.grid, kThreads, 0, stream, in_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), cs, static_cast<const T*>(skip), static_cast<T*>(y));
  });
  check_launch("upsample_concat_fwd");
}

}  // namespace mixseg::cuda
