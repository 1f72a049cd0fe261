// The reference int8 convolution: TFLite's per-channel loop (kernels_int8.h).
#include <algorithm>

#include "quant/kernels_int8.h"

namespace mixseg {

void conv2d_int8_ref(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  const int pad = c.k / 2;
  for (int b = 0; b < n; ++b)
    for (int oy = 0; oy < h; ++oy)
      for (int ox = 0; ox < w; ++ox)
        for (int o = 0; o < c.cout; ++o) {
          int32_t acc = 0;
          for (int ky = 0; ky < c.k; ++ky) {
            const int iy = oy + ky - pad;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < c.k; ++kx) {
              const int ix = ox + kx - pad;
              if (ix < 0 || ix >= w) continue;
              const int8_t* xp = x + ((size_t(b) * h + iy) * w + ix) * c.cin;
              const int8_t* wp = c.weights.data() + ((size_t(o) * c.k + ky) * c.k + kx) * c.cin;
              for (int i = 0; i < c.cin; ++i) acc += (int32_t(xp[i]) - xq.zero_point) * int32_t(wp[i]);
            }
          }
          acc += c.bias[size_t(o)];
          acc = multiply_by_quantized_multiplier(acc, c.multipliers[size_t(o)]) + yq.zero_point;
          y[((size_t(b) * h + oy) * w + ox) * c.cout + o] = int8_t(std::clamp(acc, c.out_min, c.out_max));
        }
}

}  // namespace mixseg
