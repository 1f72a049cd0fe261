// 2x2 max pooling on the GPU (kernels.h; ops/maxpool_ref.h is the reference):
// a later window element wins only if it is strictly greater (so a NaN in
// front stays, and ties go to the first), which makes both passes equal the
// reference bit for bit. Each thread takes a vector of V channels
// (cuda_types.cuh: 16-byte accesses where the sizes allow). x may be a
// channel slice of a wider tensor (pixel stride xs: a skip connection inside
// its concat buffer), and so may the backward's dx (the skip's gradient, to
// which it adds); y and dy are dense.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// The input pixels of output pixel q's window (32-bit coordinate divisions:
// the host checks the pixel count).
__device__ __forceinline__ void window_pixels(unsigned h, unsigned w, unsigned q, size_t px[4]) {
  const unsigned ow = w / 2, oh = h / 2;
  const unsigned ox = q % ow, t = q / ow, oy = t % oh, n = t / oh;
  const size_t base = (size_t(n) * h + 2 * size_t(oy)) * w + 2 * size_t(ox);
  px[0] = base;
  px[1] = base + 1;
  px[2] = base + w;
  px[3] = base + w + 1;
}

// Per channel ch..ch+V-1 of x (pixel stride xs): the window's first maximum
// and its index (the four inputs indexed by constants only, so the compiler
// keeps them in registers).
template <class T, int V>
__device__ __forceinline__ void window_argmax(const T* x, int xs, const size_t px[4], int ch, Pack<T, V>& max,
                                              int (&best)[V]) {
  Pack<T, V> in[4];
  for (int k = 0; k < 4; ++k) in[k] = load_pack<V>(x + px[k] * size_t(xs) + size_t(ch));
  for (int i = 0; i < V; ++i) {
    best[i] = 0;
    max.v[i] = in[0].v[i];
    float m = load(in[0].v[i]);
    for (int k = 1; k < 4; ++k) {
      const float v = load(in[k].v[i]);
      if (v > m) m = v, max.v[i] = in[k].v[i], best[i] = k;
    }
  }
}

// Over the channel tiling in vectors of V channels (cuda_types.cuh), striding over output pixels.
template <class T, int V>
__global__ void maxpool_fwd_kernel(size_t out_pixels, unsigned h, unsigned w, int c, int cw, const T* x, int xs,
                                   T* y) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  for (size_t q = l.first; q < out_pixels; q += l.stride) {
    size_t px[4];
    window_pixels(h, w, unsigned(q), px);
    Pack<T, V> max;
    int best[V];
    window_argmax<T, V>(x, xs, px, ch, max, best);
    store_pack<V>(y + q * size_t(c) + size_t(ch), max);
  }
}

// dx (pixel stride ds) gets the gradient, or adds it (accumulate: rounded once per element).
template <class T, int V>
__global__ void maxpool_bwd_kernel(size_t out_pixels, unsigned h, unsigned w, int c, int cw, const T* x, int xs,
                                   const T* dy, T* dx, int ds, bool accumulate) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  for (size_t q = l.first; q < out_pixels; q += l.stride) {
    size_t px[4];
    window_pixels(h, w, unsigned(q), px);
    Pack<T, V> max;
    int best[V];
    window_argmax<T, V>(x, xs, px, ch, max, best);
    const Pack<T, V> g = load_pack<V>(dy + q * size_t(c) + size_t(ch));
    for (int k = 0; k < 4; ++k) {
      T* at = dx + px[k] * size_t(ds) + size_t(ch);
      Pack<T, V> out;
      for (int i = 0; i < V; ++i) out.v[i] = k == best[i] ? g.v[i] : zero<T>();
      if (accumulate) {
        const Pack<T, V> old = load_pack<V>(at);
        for (int i = 0; i < V; ++i) out.v[i] = store<T>(load(old.v[i]) + load(out.v[i]));
      }
      store_pack<V>(at, out);
    }
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
  dispatch_vector(t, vector_width(t, {c, x_stride}, {x, y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(out_pixels, c / V, kElementwiseBlocks);
    launch(maxpool_fwd_kernel<T, V>, g.grid, kThreads, 0, stream, out_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), x_stride, static_cast<T*>(y));
  });
  check_launch("maxpool_fwd");
}

void maxpool_bwd(FloatType t, int n, int h, int w, int c, const void* x, int x_stride, const void* dy, void* dx,
                 int dx_stride, bool accumulate, cudaStream_t stream) {
  const size_t out_pixels = output_pixels(n, h, w, "maxpool_bwd");
  dispatch_vector(t, vector_width(t, {c, x_stride, dx_stride}, {x, dy, dx}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(out_pixels, c / V, kElementwiseBlocks);
    launch(maxpool_bwd_kernel<T, V>, g.grid, kThreads, 0, stream, out_pixels, unsigned(h), unsigned(w), c, g.cw,
           static_cast<const T*>(x), x_stride, static_cast<const T*>(dy), static_cast<T*>(dx), dx_stride, accumulate);
  });
  check_launch("maxpool_bwd");
}

}  // namespace mixseg::cuda
