// Fast CPU nearest 2x upsampling (see upsample.h).
#include "cpu/upsample.h"

#include "core/dtype.h"
#include "cpu/f32x8.h"
#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void upsample2x_fwd_fast(const Shape& s, const T* x, T* y, size_t ys) {
  const size_t c = size_t(s.c), w = size_t(s.w), orow = 2 * w * ys;
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * s.h; ++ny) {  // one input row: output rows 2 iy and 2 iy + 1
    const T* in = x + size_t(ny) * w * c;
    T* out = y + size_t(2 * ny) * orow;
    for (size_t ix = 0; ix < w; ++ix) {
      const size_t a = 2 * ix * ys, b = a + ys;
      copy_channels(in + ix * c, out + a, s.c);
      copy_channels(in + ix * c, out + b, s.c);
      copy_channels(in + ix * c, out + orow + a, s.c);
      copy_channels(in + ix * c, out + orow + b, s.c);
    }
  }
}

template <class T>
void upsample2x_bwd_fast(const Shape& s, const T* dy, size_t ds, T* dx) {
  const size_t c = size_t(s.c), w = size_t(s.w), orow = 2 * w * ds;
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * s.h; ++ny) {  // one input row: output rows 2 iy and 2 iy + 1
    const T* g = dy + size_t(2 * ny) * orow;
    T* out = dx + size_t(ny) * w * c;
    for (size_t ix = 0; ix < w; ++ix) {
      const size_t a = 2 * ix * ds, b = a + ds;
      size_t j = 0;
      for (; j + 8 <= c; j += 8)
        store8(out + ix * c + j,
               load8(g + a + j) + load8(g + b + j) + load8(g + orow + a + j) + load8(g + orow + b + j));
      for (; j < c; ++j)
        out[ix * c + j] = store<T>(load(g[a + j]) + load(g[b + j]) + load(g[orow + a + j]) + load(g[orow + b + j]));
    }
  }
}

#define INSTANTIATE(T)                                                      \
  template void upsample2x_fwd_fast<T>(const Shape&, const T*, T*, size_t); \
  template void upsample2x_bwd_fast<T>(const Shape&, const T*, size_t, T*);
INSTANTIATE(float)
INSTANTIATE(f16)
INSTANTIATE(bf16)

}  // namespace mixseg
