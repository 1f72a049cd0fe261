// The fast int8 convolution: AVX-512 VNNI where the CPU has it, else AVX2
// (kernels_int8.h). Both are bit-exact with the reference.
#include "quant/kernels_int8.h"

namespace mixseg {

void conv2d_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  if (int8_vnni_available()) return conv2d_int8_vnni(c, xq, yq, n, h, w, x, y);
  conv2d_int8_avx2(c, xq, yq, n, h, w, x, y);
}

}  // namespace mixseg
