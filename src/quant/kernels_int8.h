// The int8 kernels, with TFLite's integer semantics (see qmodel.h and
// fixed_point.h). Activations are NHWC int8. The reference convolution is
// TFLite's reference per-channel convolution loop; the fast variants (AVX2
// int16 multiply-adds; AVX-512 VNNI byte dot products; OpenMP) compute the
// same int32 sums in another order, which integer arithmetic makes
// bit-exact, and requantize with the same function.
#pragma once
#include <array>
#include <cstdint>

#include "quant/qmodel.h"

namespace mixseg {

// y[n, h, w, cout] = clamp(requant(sum (x - x_zp) * w + bias) + y_zp), stride
// 1, SAME padding (taps outside the image contribute nothing).
void conv2d_int8_ref(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
// The fastest variant this CPU runs (VNNI, else AVX2, else the reference).
void conv2d_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
void conv2d_int8_avx2(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
// Falls back to the AVX2 variant on CPUs without AVX-512 VNNI.
void conv2d_int8_vnni(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
bool int8_vnni_available();

// 2x2 max-pooling, stride 2 (h, w even; parameters shared, so no requantization).
void maxpool2x2_int8(int n, int h, int w, int c, const int8_t* x, int8_t* y);
// Nearest 2x upsampling of [n, h, w, c] to [n, 2h, 2w, c].
void upsample2x_int8(int n, int h, int w, int c, const int8_t* x, int8_t* y);
// Channel concatenation of a [.., ca] and b [.., cb] over `pixels` pixels.
void concat_int8(size_t pixels, int ca, int cb, const int8_t* a, const int8_t* b, int8_t* y);
// y = table[x as a byte] (TFLite's int8 LOGISTIC).
void lookup_int8(size_t n, const std::array<int8_t, 256>& table, const int8_t* x, int8_t* y);

}  // namespace mixseg
