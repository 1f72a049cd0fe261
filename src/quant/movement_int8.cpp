// The int8 ops that only move or select bytes: max-pooling, nearest
// upsampling, concatenation, table lookup (kernels_int8.h).
#include <algorithm>
#include <cstring>

#include "ops/kernel_types.h"
#include "quant/kernels_int8.h"

namespace mixseg {

void maxpool2x2_int8(int n, int h, int w, int c, const int8_t* x, int8_t* y) {
  const int oh = h / 2, ow = w / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        const int8_t* p = x + ((size_t(b) * h + 2 * oy) * w + 2 * ox) * c;
        const int8_t* q = p + size_t(w) * c;
        int8_t* out = y + ((size_t(b) * oh + oy) * ow + ox) * c;
        for (int i = 0; i < c; ++i) out[i] = std::max(std::max(p[i], p[c + i]), std::max(q[i], q[c + i]));
      }
}

void upsample2x_int8(int n, int h, int w, int c, const int8_t* x, int8_t* y) {
  const int ow = 2 * w;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < n; ++b)
    for (int iy = 0; iy < h; ++iy) {
      const int8_t* row = x + (size_t(b) * h + iy) * w * c;
      int8_t* out = y + (size_t(b) * 2 * h + 2 * iy) * ow * c;
      for (int ix = 0; ix < w; ++ix) {
        copy_channels(row + size_t(ix) * c, out + size_t(2 * ix) * c, c);
        copy_channels(row + size_t(ix) * c, out + size_t(2 * ix + 1) * c, c);
      }
      std::memcpy(out + size_t(ow) * c, out, size_t(ow) * c);
    }
}

void concat_int8(size_t pixels, int ca, int cb, const int8_t* a, const int8_t* b, int8_t* y) {
  const size_t cy = size_t(ca) + size_t(cb);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < pixels; ++p) {
    copy_channels(a + p * size_t(ca), y + p * cy, ca);
    copy_channels(b + p * size_t(cb), y + p * cy + size_t(ca), cb);
  }
}

void lookup_int8(size_t n, const std::array<int8_t, 256>& table, const int8_t* x, int8_t* y) {
  for (size_t i = 0; i < n; ++i) y[i] = table[uint8_t(x[i])];
}

}  // namespace mixseg
