// The fast int8 convolution: AMX or AVX-512 VNNI where the CPU has them, else AVX2
// (kernels_int8.h). Both are bit-exact with the reference. Also the packing
// entry point and the requantization lanes both share.
#include "quant/kernels_int8.h"

namespace mixseg {

Requant prepare_requant(const QConv& c, int padded_cout) {
  Requant r;
  for (auto* v : {&r.bias, &r.multiplier, &r.left, &r.right}) v->assign(size_t(padded_cout), 0);
  for (int o = 0; o < c.cout; ++o) {
    const QuantizedMultiplier q = c.multipliers[size_t(o)];
    r.bias[size_t(o)] = c.bias[size_t(o)];
    r.multiplier[size_t(o)] = q.multiplier;
    r.left[size_t(o)] = q.shift > 0 ? q.shift : 0;
    r.right[size_t(o)] = q.shift > 0 ? 0 : -q.shift;
  }
  return r;
}

std::shared_ptr<const PackedConvInt8> pack_conv_int8_fast(const QConv& c, QParams xq) {
  if (int8_vnni_available()) return pack_conv_int8_vnni(c, xq);
  return pack_conv_int8_avx2(c, xq);
}

const char* int8_conv_variant() {
  if (int8_vnni_available()) return int8_amx_available() ? "amx" : "avx512_vnni";
#ifdef __AVX2__
  return "avx2";  // the build's baseline
#else
  return "reference";
#endif
}

void conv2d_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  if (int8_vnni_available()) return conv2d_int8_amx(c, xq, yq, n, h, w, x, y);  // VNNI where AMX is not
  conv2d_int8_avx2(c, xq, yq, n, h, w, x, y);
}

}  // namespace mixseg
