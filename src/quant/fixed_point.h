// TFLite's integer requantization, written down once for the int8 engine and
// the exports (see DESIGN.md, "Int8 deployment"). A real multiplier m > 0 (for
// a convolution: input_scale * weight_scale[c] / output_scale) is stored as a
// Q0.31 fixed-point value in [2^30, 2^31) and a power-of-two exponent, m =
// multiplier * 2^(shift - 31), prepared once per tensor or channel. Applying it
// to an int32 accumulator x is TFLite's double rounding: the high 32 bits of
// 2 * x * multiplier rounded to nearest with ties up (toward +infinity, which
// is what gemmlowp's nudge of 1 - 2^30 for negative products amounts to;
// saturating the one overflow case INT32_MIN * INT32_MIN), then a rounding
// arithmetic right shift by -shift (ties away from zero). A positive shift is a left shift of x
// first. These are the semantics of TFLite's reference kernels (and of gemmlowp
// before them) when TFLITE_SINGLE_ROUNDING is off, its default.
#pragma once
#include <cstdint>
#include <limits>

namespace mixseg {

struct QuantizedMultiplier {
  int32_t multiplier = 0;  // Q0.31, 0 or in [2^30, 2^31)
  int shift = 0;           // m = multiplier * 2^(shift - 31)
};

// The multiplier for real value m >= 0 (m == 0 gives {0, 0}); see the .cpp for the rounding.
QuantizedMultiplier quantize_multiplier(double m);

// round(a * b / 2^31), ties toward +infinity; saturates for a == b == INT32_MIN.
inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::max();
  const int64_t ab = int64_t(a) * int64_t(b);
  const int64_t nudge = ab >= 0 ? (int64_t(1) << 30) : 1 - (int64_t(1) << 30);
  // Division (truncating toward zero), as gemmlowp does, not an arithmetic shift.
  return int32_t((ab + nudge) / (int64_t(1) << 31));
}

// x / 2^exponent rounded to nearest, ties away from zero (exponent in [0, 31]).
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = int32_t((int64_t(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

inline int32_t multiply_by_quantized_multiplier(int32_t x, QuantizedMultiplier q) {
  const int left = q.shift > 0 ? q.shift : 0;
  const int right = q.shift > 0 ? 0 : -q.shift;
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(int32_t(uint32_t(x) << left), q.multiplier), right);
}

}  // namespace mixseg
