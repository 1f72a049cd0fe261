// The dtype table and the f16/bf16 conversions, exhaustively: every one of
// the 65536 bit patterns round-trips, widening matches an independent
// ldexp-based decoder, and narrowing matches a reference rounding (nearest
// representable value, ties to even) at and around every midpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "cpu/f32x8.h"
#include "ops/kernel_types.h"

using namespace mixseg;

namespace {

// Independent decoders: the value of a bit pattern from the IEEE definition.
double f16_value(uint16_t b) {
  const int s = b >> 15, e = (b >> 10) & 31, m = b & 1023;
  const double sign = s ? -1.0 : 1.0;
  if (e == 31) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(double(m), -24);
  return sign * std::ldexp(1.0 + m / 1024.0, e - 15);
}
double bf16_value(uint16_t b) {
  const int s = b >> 15, e = (b >> 7) & 255, m = b & 127;
  const double sign = s ? -1.0 : 1.0;
  if (e == 255) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(double(m), -133);
  return sign * std::ldexp(1.0 + m / 128.0, e - 127);
}

// Reference rounding of a double to the 16-bit format with decoder `value`:
// search the two neighbours among all finite patterns of the same sign.
template <class Decode>
uint16_t round_ref(double x, Decode value, uint16_t max_finite, uint16_t inf_bits) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  // Values above max_finite round to inf once they reach the midpoint to the next (virtual) step.
  const double top = value(max_finite), step = top - value(uint16_t(max_finite - 1));
  if (a >= top + step / 2) return uint16_t(sign | inf_bits);
  uint16_t lo = 0, hi = max_finite;  // binary search the largest pattern with value <= a
  while (lo < hi) {
    const uint16_t mid = uint16_t((lo + hi + 1) / 2);
    if (value(mid) <= a) lo = mid; else hi = uint16_t(mid - 1);
  }
  if (value(lo) == a || lo == max_finite) return uint16_t(sign | lo);
  const double dlo = a - value(lo), dhi = value(uint16_t(lo + 1)) - a;
  if (dlo < dhi) return uint16_t(sign | lo);
  if (dhi < dlo) return uint16_t(sign | (lo + 1));
  return uint16_t(sign | ((lo & 1) ? lo + 1 : lo));  // tie: even mantissa
}

}  // namespace

TEST(DType, TableAndParsing) {
  EXPECT_EQ(dtype_size(DType::f32), 4);
  EXPECT_EQ(dtype_size(DType::f16), 2);
  EXPECT_EQ(dtype_size(DType::bf16), 2);
  EXPECT_EQ(dtype_size(DType::i8), 1);
  EXPECT_EQ(dtype_size(DType::u8), 1);
  EXPECT_EQ(dtype_size(DType::i32), 4);
  EXPECT_TRUE(traits(DType::bf16).is_float);
  EXPECT_FALSE(traits(DType::i32).is_float);
  EXPECT_EQ(parse_dtype("BF16"), DType::bf16);
  EXPECT_EQ(parse_dtype("i8"), DType::i8);
  EXPECT_THROW(parse_dtype("f64"), Error);
}

TEST(DType, F16AllPatternsWidenExactlyAndRoundTrip) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = f16_to_f32(f16{uint16_t(b)});
    const double ref = f16_value(uint16_t(b));
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(f)) << b;
      ASSERT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << b;
      continue;
    }
    ASSERT_EQ(double(f), ref) << "bits " << b;
    ASSERT_EQ(std::signbit(f), bool(b & 0x8000)) << b;
    ASSERT_EQ(f32_to_f16(f).bits, b) << "round trip of bits " << b;
    ASSERT_EQ(f16_to_f32_soft(f16{uint16_t(b)}), f) << "soft widening of bits " << b;
    ASSERT_EQ(f32_to_f16_soft(f).bits, b) << "soft round trip of bits " << b;
  }
}

TEST(DType, BF16AllPatternsWidenExactlyAndRoundTrip) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_f32(bf16{uint16_t(b)});
    const double ref = bf16_value(uint16_t(b));
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(f)) << b;
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f)))) << b;
      continue;
    }
    ASSERT_EQ(double(f), ref) << "bits " << b;
    ASSERT_EQ(f32_to_bf16(f).bits, b) << "round trip of bits " << b;
  }
}

// For every pair of adjacent finite values: the midpoint (a tie), and the
// nearest f32 values just below and above it, against the reference rounding.
template <class Decode, class Narrow>
void check_midpoints(Decode value, Narrow narrow_bits, uint16_t max_finite, uint16_t inf_bits) {
  for (uint32_t sign : {0u, 0x8000u})
    for (uint32_t b = 0; b <= max_finite; ++b) {
      const double lo = value(uint16_t(b));
      const double hi = b < max_finite ? value(uint16_t(b + 1)) : lo + (lo - value(uint16_t(b - 1)));
      const double mid = (lo + hi) / 2;  // exact in double
      const double s = sign ? -1.0 : 1.0;
      for (float x : {float(mid), std::nextafter(float(mid), 0.0f), std::nextafter(float(mid), INFINITY),
                      float(lo), float(lo + (hi - lo) / 4)}) {
        if (double(x) != double(float(x))) continue;
        const float xs = float(s * x);
        ASSERT_EQ(narrow_bits(xs), round_ref(double(xs), value, max_finite, inf_bits))
            << "x = " << xs << " between bits " << b << " and " << b + 1;
      }
    }
}

TEST(DType, F16RoundsToNearestEvenEverywhere) {
  check_midpoints(f16_value, [](float x) { return f32_to_f16(x).bits; }, 0x7bff, 0x7c00);
  check_midpoints(f16_value, [](float x) { return f32_to_f16_soft(x).bits; }, 0x7bff, 0x7c00);
  EXPECT_EQ(f32_to_f16(INFINITY).bits, 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY).bits, 0xfc00);
  EXPECT_EQ(f32_to_f16(1e-30f).bits, 0x0000);
  EXPECT_EQ(f32_to_f16(-1e-30f).bits, 0x8000);
  EXPECT_EQ(f32_to_f16(65519.0f).bits, 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f).bits, 0x7c00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DType, BF16RoundsToNearestEvenEverywhere) {
  check_midpoints(bf16_value, [](float x) { return f32_to_bf16(x).bits; }, 0x7f7f, 0x7f80);
  EXPECT_EQ(f32_to_bf16(INFINITY).bits, 0x7f80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::signaling_NaN()))));
}

TEST(DType, RandomF32AgainstReferenceRounding) {
  Rng rng(7);
  for (int i = 0; i < 200000; ++i) {
    const float x = f32_from_bits(uint32_t(rng.next()));
    if (std::isnan(x)) continue;
    ASSERT_EQ(f32_to_f16(x).bits, round_ref(double(x), f16_value, 0x7bff, 0x7c00)) << x;
    ASSERT_EQ(f32_to_f16_soft(x).bits, f32_to_f16(x).bits) << x;
    ASSERT_EQ(f32_to_bf16(x).bits, round_ref(double(x), bf16_value, 0x7f7f, 0x7f80)) << x;
  }
}

// The bulk (vectorised) conversions agree with the scalar ones, including the
// tail that is not a multiple of the vector width and NaN/inf/subnormals.
TEST(DType, BulkConversionsMatchScalar) {
  std::vector<f16> h(65536 + 5);
  for (size_t i = 0; i < h.size(); ++i) h[i].bits = uint16_t(i * 40503u);
  std::vector<float> wide(h.size());
  widen(h.data(), wide.data(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    const float ref = f16_to_f32_soft(h[i]);
    if (std::isnan(ref)) ASSERT_TRUE(std::isnan(wide[i])) << i;
    else ASSERT_EQ(wide[i], ref) << i;
  }
  Rng rng(3);
  std::vector<float> x(100003);
  for (auto& v : x) v = float(rng.normal() * std::ldexp(1.0, int(rng.below(60)) - 30));
  x[0] = INFINITY, x[1] = -INFINITY, x[2] = 65520.0f, x[3] = 1e-8f, x[4] = -2.98e-8f;
  std::vector<f16> n16(x.size());
  std::vector<bf16> nb(x.size());
  narrow(x.data(), n16.data(), x.size());
  narrow(x.data(), nb.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(n16[i].bits, f32_to_f16_soft(x[i]).bits) << x[i];
    ASSERT_EQ(nb[i].bits, f32_to_bf16(x[i]).bits) << x[i];
  }
}

// cpu/f32x8.h's 8-lane loads, stores and ReLU test equal the scalar
// conversions bit for bit: every 16-bit pattern widened, and f32 patterns
// (random, NaN and inf among them, exact ties and their neighbours) rounded.
TEST(F32x8, MatchesTheScalarConversionsBitForBit) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);
  for (size_t i = 0; i < all.size(); i += 8) {
    const f32x8 b = load8(reinterpret_cast<const bf16*>(all.data() + i));
    const f32x8 h = load8(reinterpret_cast<const f16*>(all.data() + i));
    const i32x8 rb = relu_active8(reinterpret_cast<const bf16*>(all.data() + i));
    for (int l = 0; l < 8; ++l) {
      ASSERT_EQ(f32_bits(b[l]), f32_bits(bf16_to_f32(bf16{all[i + l]}))) << i + l;
      ASSERT_EQ(f32_bits(h[l]), f32_bits(f16_to_f32(f16{all[i + l]}))) << i + l;
      ASSERT_EQ(rb[l] != 0, relu_active(bf16{all[i + l]})) << i + l;
    }
  }
  Rng rng(11);
  std::vector<float> x;
  for (int i = 0; i < 100000; ++i) {
    const uint32_t u = uint32_t(rng.next());
    for (uint32_t low : {u & 0xffffu, 0x8000u, 0x7fffu, 0x8001u, 0x1000u})  // bf16 ties at 0x8000
      x.push_back(f32_from_bits((u & 0xffff0000u) | low));
  }
  for (float v : {INFINITY, -INFINITY, 0.0f, -0.0f, 65520.0f, 1e-8f, std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::signaling_NaN(), -std::numeric_limits<float>::quiet_NaN(), 3.0e38f})
    x.push_back(v);
  while (x.size() % 8) x.push_back(1.0f);
  for (size_t i = 0; i < x.size(); i += 8) {
    bf16 b[8];
    f16 h[8];
    float f[8];
    const f32x8 v = load8(x.data() + i);
    store8(b, v);
    store8(h, v);
    store8(f, v);
    const i32x8 rf = relu_active8(x.data() + i);
    for (int l = 0; l < 8; ++l) {
      ASSERT_EQ(b[l].bits, f32_to_bf16(x[i + l]).bits) << std::hex << f32_bits(x[i + l]);
      ASSERT_EQ(h[l].bits, f32_to_f16(x[i + l]).bits) << std::hex << f32_bits(x[i + l]);
      ASSERT_EQ(f32_bits(f[l]), f32_bits(x[i + l]));
      ASSERT_EQ(rf[l] != 0, relu_active(x[i + l])) << x[i + l];
    }
  }
}
