// Fast CPU upsampling backward (see upsample.h).
#include "cpu/upsample.h"

#include "core/dtype.h"
#include "cpu/f32x8.h"
#include "ops/upsample_ref.h"

namespace mixseg {

template <class T>
void upsample2x_bwd_fast(const Shape& s, const T* dy, T* dx) {
  if (s.c % 8 != 0) return upsample2x_bwd_ref(s, dy, dx);
  const size_t c = size_t(s.c), w = size_t(s.w), orow = 2 * w * c;
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * s.h; ++ny) {  // one input row: output rows 2 iy and 2 iy + 1
    const T* g = dy + size_t(2 * ny) * orow;
    T* out = dx + size_t(ny) * w * c;
    for (size_t ix = 0; ix < w; ++ix)
      for (size_t j = 0; j < c; j += 8) {
        const size_t a = 2 * ix * c + j, b = a + c;
        store8(out + ix * c + j, load8(g + a) + load8(g + b) + load8(g + orow + a) + load8(g + orow + b));
      }
  }
}

template void upsample2x_bwd_fast<float>(const Shape&, const float*, float*);
template void upsample2x_bwd_fast<f16>(const Shape&, const f16*, f16*);
template void upsample2x_bwd_fast<bf16>(const Shape&, const bf16*, bf16*);

}  // namespace mixseg
