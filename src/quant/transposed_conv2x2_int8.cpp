// The int8 2x2 stride-2 transposed convolution (kernels_int8.h): TFLite's
// reference TRANSPOSE_CONV, and the fast form, a 1x1 convolution to four
// times the channels followed by a byte move. With stride 2 and a 2x2 filter
// every output pixel takes exactly one input pixel, so TFLite's scatter over
// the inputs, the reference's gather per output here and the fast form all
// add the same cin products per output value and requantize them with the
// same multiplier: bit-exact with each other (integer sums in any order).
#include <algorithm>

#include "ops/depth_to_space_ref.h"
#include "quant/kernels_int8.h"

namespace mixseg {

void transposed_conv2x2_int8_ref(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x,
                                 int8_t* y) {
  const int oh = 2 * h, ow = 2 * w;
  for (int b = 0; b < n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        const int8_t* xp = x + ((size_t(b) * h + oy / 2) * w + ox / 2) * c.cin;
        for (int o = 0; o < c.cout; ++o) {
          const int8_t* wp = c.weights.data() + ((size_t(o) * 2 + oy % 2) * 2 + ox % 2) * c.cin;
          int32_t acc = 0;
          for (int i = 0; i < c.cin; ++i) acc += (int32_t(xp[i]) - xq.zero_point) * int32_t(wp[i]);
          acc += c.bias[size_t(o)];
          acc = multiply_by_quantized_multiplier(acc, c.multipliers[size_t(o)]) + yq.zero_point;
          y[((size_t(b) * oh + oy) * ow + ox) * c.cout + o] = int8_t(std::clamp(acc, c.out_min, c.out_max));
        }
      }
}

std::shared_ptr<const QConv> pointwise_of_transposed(const QConv& c, QParams xq) {
  auto p = std::make_shared<QConv>();
  p->k = 1;
  p->cin = c.cin;
  p->cout = 4 * c.cout;
  p->relu = c.relu;
  p->out_min = c.out_min;
  p->out_max = c.out_max;
  p->weights.resize(c.weights.size());
  const size_t cin = size_t(c.cin);
  for (int o = 0; o < c.cout; ++o)
    for (int t = 0; t < 4; ++t)  // tap t = 2a + b of channel o -> channel t * cout + o
      std::copy_n(c.weights.begin() + long((size_t(o) * 4 + size_t(t)) * cin), cin,
                  p->weights.begin() + long((size_t(t) * size_t(c.cout) + size_t(o)) * cin));
  for (int t = 0; t < 4; ++t) {
    p->weight_scales.insert(p->weight_scales.end(), c.weight_scales.begin(), c.weight_scales.end());
    p->bias.insert(p->bias.end(), c.bias.begin(), c.bias.end());
    p->multipliers.insert(p->multipliers.end(), c.multipliers.begin(), c.multipliers.end());
  }
  p->packed = pack_conv_int8_fast(*p, xq);
  return p;
}

void transposed_conv2x2_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x,
                                  int8_t* y) {
  const std::shared_ptr<const QConv> made = c.pointwise ? nullptr : pointwise_of_transposed(c, xq);
  const QConv& p = c.pointwise ? *c.pointwise : *made;
  // The 1x1 convolution's output, kept per thread like the engine's activations (engine.cpp).
  thread_local std::vector<int8_t> taps;
  taps.resize(size_t(n) * h * w * size_t(p.cout));
  conv2d_int8_fast(p, xq, yq, n, h, w, x, taps.data());
  depth_to_space2x2_fwd_ref<int8_t>({n, h, w, p.cout}, taps.data(), y, size_t(c.cout));
}

}  // namespace mixseg
