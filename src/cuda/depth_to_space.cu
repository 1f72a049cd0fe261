// 2x2 depth-to-space on the GPU, forward and backward (kernels.h;
// ops/depth_to_space_ref.h is the reference): x [n, h, w, 4c] -> y
// [n, 2h, 2w, c], y(2i+a, 2j+b, ch) = x(i, j, (2a+b)c + ch). Over the
// channel tiling (cuda_types.cuh) of the c channels in vectors of V
// (16-byte accesses where the sizes allow): each thread strides over the
// input pixels and moves its vector of each of the four positions. The
// backward is the inverse move. The output (the backward's dy) may be a
// channel slice of the decoder's concat buffer: pixel stride ys >= c. Pixel
// coordinates come from 32-bit divisions once per input pixel (the host
// checks the counts fit).
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// Offset of channel ch of output pixel (2*iy + a, 2*ix + b) for input pixel q
// (output pixels ys elements apart).
__device__ __forceinline__ size_t out_offset(unsigned q, unsigned h, unsigned w, int ys, int p, int ch) {
  const unsigned ix = q % w, t = q / w, iy = t % h, n = t / h;
  const size_t oy = size_t(n) * 2 * h + 2 * size_t(iy) + size_t(p / 2), ox = 2 * size_t(ix) + size_t(p % 2);
  return (oy * 2 * w + ox) * size_t(ys) + size_t(ch);
}

template <class T, int V, bool forward>
__global__ void depth_to_space_kernel(size_t in_pixels, unsigned h, unsigned w, int c, int ys, int cw, const T* from,
                                      T* to) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  for (size_t q = l.first; q < in_pixels; q += l.stride)
    for (int p = 0; p < 4; ++p) {
      const size_t in = (q * 4 + size_t(p)) * size_t(c) + size_t(ch), out = out_offset(unsigned(q), h, w, ys, p, ch);
      if (forward)
        store_pack<V>(to + out, load_pack<V>(from + in));
      else
        store_pack<V>(to + in, load_pack<V>(from + out));
    }
}

template <bool forward>
void depth_to_space(FloatType t, int n, int h, int w, int c, int ys, const void* from, void* to, cudaStream_t stream,
                    const char* what) {
  const size_t in_pixels = size_t(n) * size_t(h) * size_t(w);
  check_pixels_fit_32_bits(4 * in_pixels, what);
  dispatch_vector(t, vector_width(t, {c, ys}, {from, to}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(in_pixels, c / V, kElementwiseBlocks);
    launch(depth_to_space_kernel<T, V, forward>, g.grid, kThreads, 0, stream, in_pixels, unsigned(h), unsigned(w), c,
           ys, g.cw, static_cast<const T*>(from), static_cast<T*>(to));
  });
  check_launch(what);
}

}  // namespace

void depth_to_space_fwd(FloatType t, int n, int h, int w, int c, const void* x, void* y, int y_stride,
                        cudaStream_t stream) {
  depth_to_space<true>(t, n, h, w, c, y_stride, x, y, stream, "depth_to_space_fwd");
}

void depth_to_space_bwd(FloatType t, int n, int h, int w, int c, const void* dy, int dy_stride, void* dx,
                        cudaStream_t stream) {
  depth_to_space<false>(t, n, h, w, c, dy_stride, dy, dx, stream, "depth_to_space_bwd");
}

}  // namespace mixseg::cuda
