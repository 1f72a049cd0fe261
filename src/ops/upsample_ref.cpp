// Reference nearest x2 upsampling kernels (see upsample_ref.h).
#include "ops/upsample_ref.h"

namespace mixseg {

template <class T>
void upsample2x_fwd_ref(const Shape& s, const T* x, T* y) {
  const size_t orow = size_t(2 * s.w) * s.c;
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * s.h; ++ny) {
    const T* in = x + size_t(ny) * s.w * s.c;
    T* out = y + size_t(2 * ny) * orow;  // output rows 2*iy and 2*iy+1 of image n
    for (int ix = 0; ix < s.w; ++ix)
      for (int c = 0; c < s.c; ++c) {
        const T v = in[size_t(ix) * s.c + c];
        out[size_t(2 * ix) * s.c + c] = v;
        out[size_t(2 * ix + 1) * s.c + c] = v;
        out[orow + size_t(2 * ix) * s.c + c] = v;
        out[orow + size_t(2 * ix + 1) * s.c + c] = v;
      }
  }
}

template <class T>
void upsample2x_concat_fwd_ref(const Shape& s, const T* x, const T* skip, int cs, T* y) {
  const int c = s.c + cs, ow = 2 * s.w;
#pragma omp parallel for schedule(static)
  for (int noy = 0; noy < s.n * 2 * s.h; ++noy) {  // output rows
    const int n = noy / (2 * s.h), oy = noy % (2 * s.h);
    const T* in = x + (size_t(n) * s.h + size_t(oy / 2)) * s.w * s.c;
    const T* sk = skip + size_t(noy) * ow * cs;
    T* out = y + size_t(noy) * ow * c;
    for (int ox = 0; ox < ow; ++ox) {
      copy_channels(in + size_t(ox / 2) * s.c, out + size_t(ox) * c, s.c);
      copy_channels(sk + size_t(ox) * cs, out + size_t(ox) * c + s.c, cs);
    }
  }
}

template <class T>
void upsample2x_bwd_ref(const Shape& s, const T* dy, T* dx) {
  const size_t orow = size_t(2 * s.w) * s.c;
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * s.h; ++ny) {
    const T* g = dy + size_t(2 * ny) * orow;
    T* out = dx + size_t(ny) * s.w * s.c;
    for (int ix = 0; ix < s.w; ++ix)
      for (int c = 0; c < s.c; ++c) {
        const size_t a = size_t(2 * ix) * s.c + c, b = a + s.c;
        out[size_t(ix) * s.c + c] = store<T>(load(g[a]) + load(g[b]) + load(g[orow + a]) + load(g[orow + b]));
      }
  }
}

#define INSTANTIATE(T)                                                    \
  template void upsample2x_fwd_ref<T>(const Shape&, const T*, T*); \
  template void upsample2x_concat_fwd_ref<T>(const Shape&, const T*, const T*, int, T*); \
  template void upsample2x_bwd_ref<T>(const Shape&, const T*, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
