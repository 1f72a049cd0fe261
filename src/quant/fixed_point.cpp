// Preparing a fixed-point multiplier (see fixed_point.h).
#include "quant/fixed_point.h"

#include <cmath>

#include "core/error.h"

namespace mixseg {

// m = q * 2^shift with q in [0.5, 1) (frexp); the Q0.31 multiplier is
// round(q * 2^31), ties away from zero (std::round, as TFLite's TfLiteRound).
// Rounding can reach 2^31 exactly, which is then halved with the exponent
// raised. Multipliers below 2^-31 in effect are flushed to zero, as TFLite does.
QuantizedMultiplier quantize_multiplier(double m) {
  if (!(m >= 0) || !std::isfinite(m)) fail("a requantization multiplier must be finite and >= 0, got {}", m);
  if (m == 0) return {};
  int shift = 0;
  const double q = std::frexp(m, &shift);
  int64_t fixed = int64_t(std::round(q * double(int64_t(1) << 31)));
  if (fixed == (int64_t(1) << 31)) {
    fixed /= 2;
    ++shift;
  }
  if (shift < -31) return {};
  if (shift > 30) fail("requantization multiplier {} is too large (more than 2^30)", m);
  return {int32_t(fixed), shift};
}

}  // namespace mixseg
