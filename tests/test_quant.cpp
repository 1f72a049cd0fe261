// Int8: TFLite's fixed-point requantization against its definition, the
// quantization parameters, the int8 convolution by hand and fast against
// reference (bit-exact, odd sizes, tile edges, batch 1), the whole int8
// network fast against reference, saving and loading, and int8 accuracy next
// to fp32 on a trained network.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <stdexcept>

#include "core/rng.h"
#include "core/threads.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "quant/calibrate.h"
#include "quant/engine.h"
#include "quant/kernels_int8.h"
#if defined(__AVX2__) && defined(__GNUC__) && defined(__x86_64__)
#include "quant/requantize_avx2.h"
#include "quant/requantize_avx512.h"
#endif
#include "test_util.h"
#include "train/metrics.h"
#include "train/trainer.h"

using namespace mixseg;

namespace {

__extension__ typedef __int128 i128;

// The definition the bit tricks implement, in 128-bit arithmetic: the
// doubling high multiply rounds half up (toward +infinity: gemmlowp's nudge
// of 1 - 2^30 for negative products makes their ties go up too), the
// division by a power of two rounds half away from zero.
i128 floor_div(i128 num, i128 den) {
  const i128 q = num / den;
  return (num % den != 0 && num < 0) ? q - 1 : q;
}
int32_t requant_by_definition(int32_t x, QuantizedMultiplier q) {
  const int left = q.shift > 0 ? q.shift : 0, right = q.shift > 0 ? 0 : -q.shift;
  const i128 xs = i128(int32_t(uint32_t(x) << left));
  const i128 hi = std::clamp<i128>(floor_div(xs * q.multiplier + (i128(1) << 30), i128(1) << 31), INT32_MIN, INT32_MAX);
  const i128 half = (i128(1) << right) / 2, mag = hi < 0 ? -hi : hi;
  const i128 r = right == 0 ? mag : (mag + half) >> right;  // |hi| / 2^right, ties away from zero
  return int32_t(hi < 0 ? -r : r);
}

QConv random_conv(Rng& rng, int k, int cin, int cout, bool relu, QParams xq, QParams yq) {
  QConv c;
  c.k = k, c.cin = cin, c.cout = cout, c.relu = relu;
  c.weights.resize(size_t(cout) * k * k * cin);
  for (auto& w : c.weights) w = int8_t(int(rng.below(255)) - 127);
  for (int o = 0; o < cout; ++o) {
    c.weight_scales.push_back(float(rng.uniform(0.001, 0.02)));
    c.bias.push_back(int32_t(rng.below(20001)) - 10000);
    c.multipliers.push_back(quantize_multiplier(double(xq.scale) * c.weight_scales.back() / double(yq.scale)));
  }
  c.out_min = relu ? std::max(-128, yq.zero_point) : -128;
  return c;
}

std::vector<int8_t> random_int8(Rng& rng, size_t n) {
  std::vector<int8_t> v(n);
  for (auto& x : v) x = int8_t(int(rng.below(256)) - 128);
  return v;
}

// The reference for the decoder's fused input: c over concat(upsample2x(low), skip) formed by the separate ops.
std::vector<int8_t> upsample_concat_conv_ref(const QConv& c, QParams xq, QParams yq, int n, int h, int w,
                                             const std::vector<int8_t>& low, int c_low,
                                             const std::vector<int8_t>& skip) {
  const int c_skip = c.cin - c_low;
  std::vector<int8_t> up(size_t(n) * h * w * c_low), cat(size_t(n) * h * w * c.cin), ref(size_t(n) * h * w * c.cout);
  upsample2x_int8(n, h / 2, w / 2, c_low, low.data(), up.data());
  concat_int8(size_t(n) * h * w, c_low, c_skip, up.data(), skip.data(), cat.data());
  conv2d_int8_ref(c, xq, yq, n, h, w, cat.data(), ref.data());
  return ref;
}

}  // namespace

TEST(FixedPoint, QuantizeMultiplierByHand) {
  const QuantizedMultiplier half = quantize_multiplier(0.5);
  EXPECT_EQ(half.multiplier, 1 << 30);
  EXPECT_EQ(half.shift, 0);
  const QuantizedMultiplier one = quantize_multiplier(1.0);
  EXPECT_EQ(one.multiplier, 1 << 30);
  EXPECT_EQ(one.shift, 1);
  const QuantizedMultiplier q = quantize_multiplier(0.75);
  EXPECT_EQ(q.multiplier, 1610612736);  // 0.75 * 2^31
  EXPECT_EQ(q.shift, 0);
  const QuantizedMultiplier small = quantize_multiplier(0.001);  // 0.512 * 2^-9
  EXPECT_EQ(small.shift, -9);
  EXPECT_EQ(small.multiplier, int32_t(std::round(0.001 * 512 * 2147483648.0)));
  EXPECT_EQ(quantize_multiplier(0x1p-40).multiplier, 0);  // below 2^-31 in effect: zero
  EXPECT_EQ(quantize_multiplier(0.0).multiplier, 0);
  test::expect_error_containing([] { quantize_multiplier(-1.0); }, "multiplier");
}

TEST(FixedPoint, RoundingByHand) {
  EXPECT_EQ(rounding_divide_by_pot(5, 1), 3);    // 2.5 -> 3
  EXPECT_EQ(rounding_divide_by_pot(-5, 1), -3);  // -2.5 -> -3
  EXPECT_EQ(rounding_divide_by_pot(-3, 1), -2);  // -1.5 -> -2
  EXPECT_EQ(rounding_divide_by_pot(7, 2), 2);    // 1.75 -> 2
  EXPECT_EQ(rounding_divide_by_pot(-6, 2), -2);  // -1.5 -> -2
  EXPECT_EQ(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN), INT32_MAX);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
  EXPECT_EQ(multiply_by_quantized_multiplier(100, quantize_multiplier(0.5)), 50);
  EXPECT_EQ(multiply_by_quantized_multiplier(-101, quantize_multiplier(0.5)), -50);  // -50.5 -> -50 (ties up)
  EXPECT_EQ(multiply_by_quantized_multiplier(-101, quantize_multiplier(0.25)), -25);  // -50.5 -> -50, / 2 -> -25
  EXPECT_EQ(multiply_by_quantized_multiplier(-102, quantize_multiplier(0.25)), -26);  // -51, / 2 = -25.5 -> -26 (away)
  EXPECT_EQ(multiply_by_quantized_multiplier(3, quantize_multiplier(2.5)), 8);       // 7.5 -> 8
}

TEST(FixedPoint, RequantizationMatchesItsDefinition) {
  Rng rng(7);
  for (int i = 0; i < 200000; ++i) {
    const double m = std::exp(rng.uniform(std::log(1e-6), std::log(8.0)));
    const QuantizedMultiplier q = quantize_multiplier(m);
    const int32_t range = q.shift > 0 ? (1 << (30 - q.shift)) : 1 << 24;
    const int32_t x = i % 50 == 0 ? (i % 100 == 0 ? INT32_MIN / (1 << std::max(0, q.shift)) : 0)
                                  : int32_t(int64_t(rng.below(2 * uint64_t(range))) - range);
    ASSERT_EQ(multiply_by_quantized_multiplier(x, q), requant_by_definition(x, q)) << "x " << x << " m " << m;
    // And it is the real product within one unit.
    ASSERT_LE(std::fabs(double(multiply_by_quantized_multiplier(x, q)) - double(x) * m), 1.0 + 1e-9 * std::fabs(x * m));
  }
}

// The vector requantizations (AVX2's requantize8, AVX-512's requantize16)
// against the scalar one on inputs a convolution rarely makes: the whole
// int32 range and its ends, products at the rounding boundaries, right
// shifts up to 31, left shifts, a zero multiplier. Lane by lane, bit-exact.
std::vector<std::pair<int32_t, QuantizedMultiplier>> requantization_cases() {
  Rng rng(11);
  std::vector<std::pair<int32_t, QuantizedMultiplier>> cases;
  const int32_t ends[] = {INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -1, 0, 1, 1 << 30, INT32_MAX};
  for (int i = 0; i < 1 << 17; ++i) {
    QuantizedMultiplier q{int32_t((1u << 30) + rng.below(1u << 30)), int(rng.below(38)) - 31};  // shift -31..6
    if (i % 97 == 0) q = {};                                                                    // zero
    if (i % 89 == 0) q.multiplier = 1 << 30;
    const int32_t x = i % 7 == 0   ? ends[rng.below(std::size(ends))]
                      : i % 3 == 0 ? int32_t(int64_t(rng.below(1 << 21)) - (1 << 20))
                                   : int32_t(uint32_t(rng.below(1ull << 32)));
    cases.push_back({x, q});
  }
  return cases;
}

#if defined(__AVX2__)
TEST(FixedPoint, Avx2RequantizationMatchesScalar) {
  const auto cases = requantization_cases();
  for (size_t i = 0; i + 8 <= cases.size(); i += 8) {
    alignas(32) int32_t x[8], m[8], left[8], right[8], out[8];
    for (int l = 0; l < 8; ++l) {
      const auto& [v, q] = cases[i + size_t(l)];
      x[l] = v, m[l] = q.multiplier, left[l] = std::max(q.shift, 0), right[l] = std::max(-q.shift, 0);
    }
    const auto load = [](const int32_t* a) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(a)); };
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), requantize8(load(x), load(m), load(left), load(right)));
    for (int l = 0; l < 8; ++l)
      ASSERT_EQ(out[l], multiply_by_quantized_multiplier(x[l], cases[i + size_t(l)].second))
          << "x " << x[l] << " multiplier " << m[l] << " shift " << cases[i + size_t(l)].second.shift;
  }
}
#endif

#if defined(__AVX2__) && defined(__GNUC__) && defined(__x86_64__)
MIXSEG_AVX512_TARGET void requantize16_lanes(const int32_t* x, const int32_t* m, const int32_t* left,
                                             const int32_t* right, int32_t* out) {
  const RequantLanes q =
      requant_lanes(_mm512_setzero_si512(), _mm512_loadu_si512(m), _mm512_loadu_si512(left), _mm512_loadu_si512(right));
  _mm512_storeu_si512(out, requantize16(_mm512_loadu_si512(x), q));
}

TEST(FixedPoint, Avx512RequantizationMatchesScalar) {
  if (!int8_vnni_available()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  const auto cases = requantization_cases();
  for (size_t i = 0; i + 16 <= cases.size(); i += 16) {
    int32_t x[16], m[16], left[16], right[16], out[16];
    for (int l = 0; l < 16; ++l) {
      const auto& [v, q] = cases[i + size_t(l)];
      x[l] = v, m[l] = q.multiplier, left[l] = std::max(q.shift, 0), right[l] = std::max(-q.shift, 0);
    }
    requantize16_lanes(x, m, left, right, out);
    for (int l = 0; l < 16; ++l)
      ASSERT_EQ(out[l], multiply_by_quantized_multiplier(x[l], cases[i + size_t(l)].second))
          << "x " << x[l] << " multiplier " << m[l] << " shift " << cases[i + size_t(l)].second.shift;
  }
}
#endif

TEST(QuantParams, ActivationRangesByHand) {
  const QParams a = int8_params_for_range(0.0, 2.55);
  EXPECT_FLOAT_EQ(a.scale, 0.01f);
  EXPECT_EQ(a.zero_point, -128);
  const QParams b = int8_params_for_range(-1.0, 1.0);
  EXPECT_FLOAT_EQ(b.scale, 2.0f / 255.0f);
  EXPECT_EQ(b.zero_point, -1);  // -128 + 127.5 = -0.5, rounded away from zero
  const QParams c = int8_params_for_range(1.0, 2.0);  // widened to hold 0
  EXPECT_FLOAT_EQ(c.scale, 2.0f / 255.0f);
  EXPECT_EQ(c.zero_point, -128);
  const QParams d = int8_params_for_range(-3.0, -1.0);
  EXPECT_EQ(d.zero_point, 127);
  EXPECT_GT(int8_params_for_range(0.0, 0.0).scale, 0.0f);
  EXPECT_EQ(quantize_value(0.0f, b), -1);
  EXPECT_EQ(quantize_value(1.0f, b), 126);  // 1 / (2/255) = 127.5 in float is 127.49999, - 1
  EXPECT_EQ(quantize_value(5.0f, b), 127);  // saturates
  EXPECT_EQ(quantize_value(-5.0f, b), -128);
  test::expect_error_containing([] { int8_params_for_range(1.0, 0.0); }, "range");
}

// One pixel, so only the centre tap sees the image: worked out by hand.
TEST(Conv2dInt8, OnePixelByHand) {
  QConv c;
  c.k = 3, c.cin = 2, c.cout = 1, c.relu = true;
  c.weights.assign(18, 0);
  c.weights[4 * 2 + 0] = 3;  // centre tap (ky 1, kx 1)
  c.weights[4 * 2 + 1] = -4;
  c.weights[0] = 100;  // a corner tap: outside the image, must not count
  c.weight_scales = {1.0f};
  c.bias = {6};
  c.multipliers = {quantize_multiplier(0.5)};
  const QParams xq{1.0f, 2}, yq{1.0f, -10};
  c.out_min = -10;
  const int8_t x[2] = {10, -3};
  // (10 - 2) * 3 + (-3 - 2) * -4 = 44; + 6 = 50; * 0.5 = 25; - 10 = 15.
  for (auto fn : {conv2d_int8_ref, conv2d_int8_fast}) {
    int8_t y = 0;
    fn(c, xq, yq, 1, 1, 1, x, &y);
    EXPECT_EQ(y, 15);
  }
  c.bias = {-200};  // (44 - 200) * 0.5 - 10 = -88, clamped by the ReLU at the zero point -10
  for (auto fn : {conv2d_int8_ref, conv2d_int8_fast}) {
    int8_t y = 0;
    fn(c, xq, yq, 1, 1, 1, x, &y);
    EXPECT_EQ(y, -10);
  }
}

// Every fast variant against the reference, bit-exact, over odd channel
// counts, the 8/16-channel block edges, pixel tiles and their remainders
// (up to 16 pixels per tile in VNNI and AMX, 12 in VNNI's two-block tiles), exactly 8 output channels
// (half a VNNI block: the f=8 U-Net's first level), batch 1 and 2, VNNI's 3x3
// tiles that share each broadcast across kx (cin 8, 16, 24, 40, 64; at cout
// 1, 5, 8 the tiles of quad pairs) and its plain ones (cin 1, 3, 17; k 1);
// for AMX, kernel
// rows (k * cin bytes) under one 64-byte chunk, of one chunk and a tail
// (cin 24, 40 at k 3), and of whole chunks (cin 64 at k 1, 3).
TEST(Conv2dInt8, FastIsBitExactWithReference) {
  using Fn = void (*)(const QConv&, QParams, QParams, int, int, int, const int8_t*, int8_t*);
  std::vector<std::pair<const char*, Fn>> variants = {{"avx2", conv2d_int8_avx2}, {"fast", conv2d_int8_fast}};
  if (int8_vnni_available()) variants.push_back({"vnni", conv2d_int8_vnni});
  else fmt::print("this CPU has no AVX-512 VNNI: the vnni variant is not tested here\n");
  if (int8_amx_available()) variants.push_back({"amx", conv2d_int8_amx});
  else fmt::print("this CPU (or OS) has no AMX-INT8: the amx variant is not tested here\n");
  Rng rng(3);
  int cases = 0;
  for (int k : {1, 3})
    for (int cin : {1, 3, 8, 16, 17, 24, 40, 64})
      for (int cout : {1, 5, 8, 16, 17, 33})
        for (auto [n, h, w] : {std::array<int, 3>{1, 1, 1}, {1, 2, 7}, {2, 5, 6}, {1, 4, 13}, {1, 3, 12}, {1, 2, 35},
                               {2, 3, 16}, {1, 2, 25}}) {
          const QParams xq{float(rng.uniform(0.01, 0.1)), int32_t(rng.below(256)) - 128};
          const QParams yq{float(rng.uniform(0.05, 0.5)), int32_t(rng.below(256)) - 128};
          QConv c = random_conv(rng, k, cin, cout, cases % 2 == 0, xq, yq);
          if (cases % 3 == 0)  // multipliers above 1 (a left shift first), the rest mixed in
            for (auto& m : c.multipliers)
              if (rng.below(2)) m = quantize_multiplier(rng.uniform(1.0, 6.0) / 4096.0 * double(1 << rng.below(13)));
          const std::vector<int8_t> x = random_int8(rng, size_t(n) * h * w * cin);
          std::vector<int8_t> ref(size_t(n) * h * w * cout);
          conv2d_int8_ref(c, xq, yq, n, h, w, x.data(), ref.data());
          for (auto [name, fn] : variants) {
            std::vector<int8_t> fast(ref.size(), 99);
            fn(c, xq, yq, n, h, w, x.data(), fast.data());
            ASSERT_EQ(ref, fast) << fmt::format("{}: k {} cin {} cout {} n {} h {} w {}", name, k, cin, cout, n, h, w);
          }
          // Packed once (as prepare() does), and packed for another input
          // zero point, which the kernel must notice and not use.
          QConv packed = c, stale = c;
          packed.packed = pack_conv_int8_fast(c, xq);
          stale.packed = pack_conv_int8_fast(c, {xq.scale, xq.zero_point == 127 ? 126 : xq.zero_point + 1});
          for (const auto& [name, conv] : {std::pair<const char*, const QConv*>{"prepacked", &packed}, {"stale pack", &stale}}) {
            std::vector<int8_t> fast(ref.size(), 99);
            conv2d_int8_fast(*conv, xq, yq, n, h, w, x.data(), fast.data());
            ASSERT_EQ(ref, fast) << fmt::format("{}: k {} cin {} cout {} n {} h {} w {}", name, k, cin, cout, n, h, w);
          }
          ++cases;
        }
  EXPECT_EQ(cases, 2 * 8 * 6 * 8);
}

// The decoder's upsample + concat + convolution in one (the fused input of
// the VNNI and AMX kernels, the formed one elsewhere) against the three ops
// by the reference: bit-exact over channel splits of whole quads, pairs of
// quads and neither (8 + 8, 16 + 16, 24 + 8, 3 + 5, 1 + 16), 8 and 16 output
// channels (the quad-pair tiles and the blocks), k 1 and 3, batch 1 and 2,
// widths across a pixel tile; odd sizes and splits outside the input refused.
TEST(Conv2dInt8, UpsampleConcatIsBitExact) {
  Rng rng(21);
  int cases = 0;
  for (auto [c_low, c_skip] : {std::array<int, 2>{8, 8}, {16, 16}, {24, 8}, {3, 5}, {1, 16}})
    for (int cout : {8, 16})
      for (int k : {1, 3})
        for (auto [n, h, w] : {std::array<int, 3>{1, 2, 2}, {2, 6, 10}, {1, 4, 36}}) {
          const int cin = c_low + c_skip;
          const QParams xq{float(rng.uniform(0.01, 0.1)), int32_t(rng.below(256)) - 128};
          const QParams yq{float(rng.uniform(0.05, 0.5)), int32_t(rng.below(256)) - 128};
          const QConv c = random_conv(rng, k, cin, cout, cases % 2 == 0, xq, yq);
          const std::vector<int8_t> low = random_int8(rng, size_t(n) * (h / 2) * (w / 2) * c_low);
          const std::vector<int8_t> skip = random_int8(rng, size_t(n) * h * w * c_skip);
          const std::vector<int8_t> ref = upsample_concat_conv_ref(c, xq, yq, n, h, w, low, c_low, skip);
          QConv packed = c;
          packed.packed = pack_conv_int8_fast(c, xq);  // as prepare() does
          const QConv& prepacked = packed;
          for (const QConv* conv : {&c, &prepacked}) {
            std::vector<int8_t> fused(ref.size(), 99);
            conv2d_int8_upsample_concat_fast(*conv, xq, yq, n, h, w, low.data(), c_low, skip.data(), fused.data());
            ASSERT_EQ(ref, fused) << fmt::format("{}+{} -> {} k {} n {} h {} w {}", c_low, c_skip, cout, k, n, h, w);
          }
          ++cases;
        }
  EXPECT_EQ(cases, 5 * 2 * 2 * 3);
  const QConv c = random_conv(rng, 3, 16, 8, false, {0.05f, 0}, {0.1f, 0});
  std::vector<int8_t> buf(size_t(6) * 6 * 16);
  test::expect_error_containing(
      [&] {
        conv2d_int8_upsample_concat_fast(c, {0.05f, 0}, {0.1f, 0}, 1, 5, 6, buf.data(), 8, buf.data(), buf.data());
      },
      "5x6");
  test::expect_error_containing(
      [&] {
        conv2d_int8_upsample_concat_fast(c, {0.05f, 0}, {0.1f, 0}, 1, 6, 6, buf.data(), 16, buf.data(), buf.data());
      },
      "16 upsampled of 16");
}

// The last layer's form, a 1x1 convolution to one channel, which the VNNI
// variants run by their own kernel when 64 / cin pixels fill a vector (cin
// 4, 8, 16, 32, 64): bit-exact with the reference over pixel counts around
// its 16-pixel blocks (1, 15, 16, 17, 66, 130 pixels) and its 1024-pixel
// parallel chunks (1073: two chunks, a one-pixel tail), with and without
// ReLU, multipliers above 1, and packed once as prepare() does; cin 12 and
// 24 (not dividing 64) take the tiles.
TEST(Conv2dInt8, PointwiseToOneChannelIsBitExact) {
  Rng rng(11);
  int cases = 0;
  for (int cin : {4, 8, 12, 16, 24, 32, 64})
    for (auto [n, h, w] :
         {std::array<int, 3>{1, 1, 1}, {1, 3, 5}, {1, 4, 4}, {1, 1, 17}, {2, 3, 11}, {1, 10, 13}, {1, 37, 29}}) {
      const QParams xq{float(rng.uniform(0.01, 0.1)), int32_t(rng.below(256)) - 128};
      const QParams yq{float(rng.uniform(0.05, 0.5)), int32_t(rng.below(256)) - 128};
      QConv c = random_conv(rng, 1, cin, 1, cases % 2 == 0, xq, yq);
      if (cases % 3 == 0) c.multipliers[0] = quantize_multiplier(rng.uniform(1.0, 6.0));
      const std::vector<int8_t> x = random_int8(rng, size_t(n) * h * w * cin);
      std::vector<int8_t> ref(size_t(n) * h * w);
      conv2d_int8_ref(c, xq, yq, n, h, w, x.data(), ref.data());
      QConv packed = c;
      packed.packed = pack_conv_int8_fast(c, xq);
      for (const QConv* conv : {&c, &packed}) {
        std::vector<int8_t> fast(ref.size() + 1, 99);  // one byte past the output: must stay untouched
        conv2d_int8_fast(*conv, xq, yq, n, h, w, x.data(), fast.data());
        ASSERT_EQ(fast.back(), 99) << fmt::format("cin {} n {} h {} w {}: wrote past the output", cin, n, h, w);
        fast.pop_back();
        ASSERT_EQ(ref, fast) << fmt::format("cin {} n {} h {} w {} ({})", cin, n, h, w,
                                            conv == &c ? "packed on the fly" : "prepacked");
      }
      ++cases;
    }
  EXPECT_EQ(cases, 7 * 7);
}

// Each thread builds the padded input rows its output rows read (padded_rows.h):
// bit-exact whatever the split of the rows among threads, a thread's first
// row in the middle of an image or at an image's start, plain and fused
// (upsample + concat) inputs, every variant.
TEST(Conv2dInt8, RowWindowsAtAnyThreadCount) {
  Rng rng(31);
  const int n = 3, h = 7, w = 9, c_low = 8, c_skip = 8, cin = c_low + c_skip;
  const QParams xq{0.05f, -7}, yq{0.2f, 3};
  const int before = max_threads();
  for (int k : {1, 3, 5})
    for (int cout : {8, 16, 17}) {
      const QConv c = random_conv(rng, k, cin, cout, true, xq, yq);
      const std::vector<int8_t> x = random_int8(rng, size_t(n) * h * w * cin);
      std::vector<int8_t> ref(size_t(n) * h * w * cout);
      conv2d_int8_ref(c, xq, yq, n, h, w, x.data(), ref.data());
      // The fused input at an even size (8 x 10) against the formed one.
      const int he = h + 1, we = w + 1;
      const std::vector<int8_t> low = random_int8(rng, size_t(n) * (he / 2) * (we / 2) * c_low);
      const std::vector<int8_t> skip = random_int8(rng, size_t(n) * he * we * c_skip);
      const std::vector<int8_t> ref_cat = upsample_concat_conv_ref(c, xq, yq, n, he, we, low, c_low, skip);
      for (int threads : {1, 2, 3, 5, 8}) {
        set_threads(threads);
        std::vector<int8_t> out(ref.size(), 99), avx2(ref.size(), 99), fused(ref_cat.size(), 99);
        conv2d_int8_fast(c, xq, yq, n, h, w, x.data(), out.data());
        conv2d_int8_avx2(c, xq, yq, n, h, w, x.data(), avx2.data());
        conv2d_int8_upsample_concat_fast(c, xq, yq, n, he, we, low.data(), c_low, skip.data(), fused.data());
        set_threads(before);
        const std::string what = fmt::format("k {} cout {}, {} threads", k, cout, threads);
        ASSERT_EQ(ref, out) << what;
        ASSERT_EQ(ref, avx2) << what << " (avx2)";
        ASSERT_EQ(ref_cat, fused) << what << " (upsample + concat)";
      }
    }
}

// The 2x2 stride-2 transposed convolution by hand: one input pixel, two
// input channels, one output channel; each tap of the filter lands on its
// own output pixel (TFLite's TRANSPOSE_CONV: no overlap at stride 2).
TEST(TransposedConv2x2Int8, OnePixelByHand) {
  QConv c;
  c.k = 2, c.cin = 2, c.cout = 1;
  c.weights = {1, 2, /* tap (0, 1) */ -3, 0, /* (1, 0) */ 0, 5, /* (1, 1) */ 7, -7};
  c.weight_scales = {1.0f};
  c.bias = {0};
  c.multipliers = {quantize_multiplier(0.5)};
  const QParams xq{1.0f, 2}, yq{1.0f, -10};
  const int8_t x[2] = {10, -3};  // minus the zero point: 8, -5
  // Taps: 8 - 10 = -2; -24; -25; 56 + 35 = 91. Halved (the doubling high
  // multiply's ties go toward +infinity: -12.5 -> -12), plus -10:
  const std::vector<int8_t> want = {-11, -22, -22, 36};  // row 0: taps (0,0), (0,1); row 1: (1,0), (1,1)
  for (auto fn : {transposed_conv2x2_int8_ref, transposed_conv2x2_int8_fast}) {
    std::vector<int8_t> y(4, 99);
    fn(c, xq, yq, 1, 1, 1, x, y.data());
    EXPECT_EQ(y, want);
  }
}

// Fast (the 1x1 convolution to 4 * cout on the fast int8 kernel, then the
// move) against TFLite's reference loop, bit-exact: odd sizes, batch 1 and 2,
// channel counts at the kernels' block edges, with the 1x1 form prepared once
// (as prepare() does) and made on the fly.
TEST(TransposedConv2x2Int8, FastIsBitExactWithReference) {
  Rng rng(12);
  int cases = 0;
  for (int cin : {1, 3, 8, 17, 64})
    for (int cout : {1, 4, 5, 8, 16, 33})
      for (auto [n, h, w] : {std::array<int, 3>{1, 1, 1}, {2, 3, 5}, {1, 2, 7}, {1, 4, 16}}) {
        const QParams xq{float(rng.uniform(0.01, 0.1)), int32_t(rng.below(256)) - 128};
        const QParams yq{float(rng.uniform(0.05, 0.5)), int32_t(rng.below(256)) - 128};
        QConv c = random_conv(rng, 2, cin, cout, false, xq, yq);
        const std::vector<int8_t> x = random_int8(rng, size_t(n) * h * w * cin);
        std::vector<int8_t> ref(size_t(n) * 4 * h * w * cout, 99);
        transposed_conv2x2_int8_ref(c, xq, yq, n, h, w, x.data(), ref.data());
        QConv prepared = c;
        prepared.pointwise = pointwise_of_transposed(c, xq);
        for (const QConv* conv : {&c, &prepared}) {
          std::vector<int8_t> fast(ref.size(), 99);
          transposed_conv2x2_int8_fast(*conv, xq, yq, n, h, w, x.data(), fast.data());
          ASSERT_EQ(ref, fast) << fmt::format("{}: cin {} cout {} n {} h {} w {}",
                                              conv == &c ? "on the fly" : "prepared", cin, cout, n, h, w);
        }
        ++cases;
      }
  EXPECT_EQ(cases, 5 * 6 * 4);
}

TEST(MovementInt8, PoolUpsampleConcatByHand) {
  // 1 x 2 x 4 x 2: pooling takes the max of each 2x2 window per channel.
  const std::vector<int8_t> x = {1, -1, 5, 2, -3, 7, 0, 0, /* row 2 */ 4, -9, 2, 3, 8, -128, -1, 127};
  std::vector<int8_t> p(4);
  maxpool2x2_int8(1, 2, 4, 2, x.data(), p.data());
  EXPECT_EQ(p, (std::vector<int8_t>{5, 3, 8, 127}));
  std::vector<int8_t> u(16);
  upsample2x_int8(1, 1, 2, 2, p.data(), u.data());
  EXPECT_EQ(u, (std::vector<int8_t>{5, 3, 5, 3, 8, 127, 8, 127, 5, 3, 5, 3, 8, 127, 8, 127}));
  const std::vector<int8_t> a = {1, 2, 3, 4}, b = {9, 8};
  std::vector<int8_t> y(6);
  concat_int8(2, 2, 1, a.data(), b.data(), y.data());
  EXPECT_EQ(y, (std::vector<int8_t>{1, 2, 9, 3, 4, 8}));
}

// Wide channel counts, copied in 8-byte words (multiples of 8) and not (12,
// 27), against the definitions: pooling takes the max of each 2x2
// window per channel; y[b][2i+di][2j+dj][ch] = x[b][i][j][ch]; concat puts
// a's channels, then b's, per pixel.
TEST(MovementInt8, PoolUpsampleConcatAtWideChannelCounts) {
  Rng rng(9);
  for (int c : {8, 12, 16, 24, 27, 64}) {
    SCOPED_TRACE(c);
    const int n = 2, h = 3, w = 5;
    const std::vector<int8_t> big = random_int8(rng, size_t(n) * 2 * h * 2 * w * c);
    std::vector<int8_t> pooled(size_t(n) * h * w * c, 0);
    maxpool2x2_int8(n, 2 * h, 2 * w, c, big.data(), pooled.data());
    for (int b = 0; b < n; ++b)
      for (int oy = 0; oy < h; ++oy)
        for (int ox = 0; ox < w; ++ox)
          for (int ch = 0; ch < c; ++ch) {
            int8_t m = -128;
            for (int dy = 0; dy < 2; ++dy)
              for (int dx = 0; dx < 2; ++dx)
                m = std::max(m, big[((size_t(b) * 2 * h + 2 * oy + dy) * 2 * w + 2 * ox + dx) * c + ch]);
            ASSERT_EQ(pooled[((size_t(b) * h + oy) * w + ox) * c + ch], m);
          }
    const std::vector<int8_t> x = random_int8(rng, size_t(n) * h * w * c);
    std::vector<int8_t> u(size_t(n) * 4 * h * w * c, 0);
    upsample2x_int8(n, h, w, c, x.data(), u.data());
    for (int b = 0; b < n; ++b)
      for (int oy = 0; oy < 2 * h; ++oy)
        for (int ox = 0; ox < 2 * w; ++ox)
          for (int ch = 0; ch < c; ++ch)
            ASSERT_EQ(u[((size_t(b) * 2 * h + oy) * 2 * w + ox) * c + ch],
                      x[((size_t(b) * h + oy / 2) * w + ox / 2) * c + ch]);
    const size_t pixels = size_t(n) * h * w;
    const std::vector<int8_t> a = random_int8(rng, pixels * c), bb = random_int8(rng, pixels * 8);
    std::vector<int8_t> y(pixels * (c + 8), 0);
    concat_int8(pixels, c, 8, a.data(), bb.data(), y.data());
    for (size_t p = 0; p < pixels; ++p)
      for (int ch = 0; ch < c + 8; ++ch)
        ASSERT_EQ(y[p * (c + 8) + ch], ch < c ? a[p * c + ch] : bb[p * 8 + ch - c]);
  }
}

namespace {

struct TrainedNet {
  UNet net;
  Checkpoint ck;
  Dataset train_set, val_set;
};

// A small U-Net trained briefly on synthetic frames (once per test binary and upsampling).
TrainedNet train_small(Upsampling up) {
  TrainedNet r;
  const Dataset all = make_synthetic({64, 64, 5, 0.05}, 160);
  std::tie(r.train_set, r.val_set) = split(all, 0.25, 1);
  TrainConfig cfg;
  cfg.model = {8, 3, 1, 1, up};
  cfg.batch = 8;
  cfg.epochs = 4;
  cfg.optimizer.lr = 1e-2;
  cfg.schedule.kind = LrSchedule::cosine;
  cfg.seed = 2;
  cfg.augment.enabled = false;
  auto backend = make_backend("fast");
  r.net = build_unet(cfg.model);
  r.ck = train(cfg, r.train_set, r.val_set, *backend).last;
  return r;
}

const TrainedNet& trained(Upsampling up = Upsampling::nearest) {
  if (up == Upsampling::transposed) {
    static const TrainedNet t = train_small(Upsampling::transposed);
    return t;
  }
  static const TrainedNet t = train_small(Upsampling::nearest);
  return t;
}

QModel quantize_trained(const std::string& method, Upsampling up = Upsampling::nearest) {
  const TrainedNet& t = trained(up);
  auto backend = make_backend("fast");
  Weights w = t.ck.weights;
  CalibrationConfig cfg;
  cfg.method = method;
  const Calibration cal = calibrate(t.net, w, *backend, t.train_set, cfg);
  return quantize_unet(fold_unet(t.net, t.ck.weights), cal.ranges, 64, 64, cal.description);
}

constexpr Upsampling kUpsamplings[] = {Upsampling::nearest, Upsampling::transposed};

std::vector<int8_t> quantized_images(const QModel& m, const Dataset& d) {
  std::vector<float> f(d.size() * d.image_values());
  d.input_f32(0, d.size(), f.data());
  return quantize_input(m, f.data(), f.size());
}

}  // namespace

TEST(Int8Network, SharedScalesAndFixedEdges) {
  const QModel m = quantize_trained("minmax");
  for (const DeployOp& op : m.ops)
    if (op.kind == DeployOpKind::concat) {
      EXPECT_EQ(m.tensors[size_t(op.in0)].q.scale, m.tensors[size_t(op.out)].q.scale) << op.name;
      EXPECT_EQ(m.tensors[size_t(op.in1)].q.zero_point, m.tensors[size_t(op.out)].q.zero_point) << op.name;
    }
  EXPECT_FLOAT_EQ(m.tensors[size_t(m.input)].q.scale, 1.0f / 255.0f);
  EXPECT_EQ(m.tensors[size_t(m.output)].q.zero_point, -128);
  EXPECT_EQ(m.convs.size(), size_t(2 * 3 + 1 + 3 * 2 + 1 + 1));  // encoder, bottleneck, decoder, final, head
  // TFLite's sigmoid table is monotone and centred: logit 0 maps to 1/2.
  for (int v = -127; v <= 127; ++v) EXPECT_LE(m.sigmoid_table[uint8_t(int8_t(v - 1))], m.sigmoid_table[uint8_t(int8_t(v))]);
  const QParams lq = m.tensors[size_t(m.logits)].q;
  EXPECT_EQ(m.sigmoid_table[uint8_t(int8_t(lq.zero_point))], 0);  // (0 + 128) / 256 = 0.5
}

TEST(Int8Network, FastIsBitExactWithReferenceEverywhere) {
  for (Upsampling up : kUpsamplings) {
    SCOPED_TRACE(upsampling_name(up));
    const QModel m = quantize_trained("minmax", up);
    const std::vector<int8_t> x = quantized_images(m, subset(trained(up).val_set, {0, 1, 2}));
    const auto ref = run_int8_all(m, x.data(), 3, false);
    const auto fast = run_int8_all(m, x.data(), 3, true);
    for (size_t t = 0; t < ref.size(); ++t) EXPECT_EQ(ref[t], fast[t]) << m.tensors[t].name;
    // The fused decoder (upsample + concat + convolution as one op) gives the same output.
    EXPECT_EQ(run_int8(m, x.data(), 3, true), ref[size_t(m.output)]);
  }
}

// The transposed upsampling's int8 form: per output channel one weight scale
// over its four taps (TFLite's TRANSPOSE_CONV, quantized dimension 0), no
// bias, and its output in the scale its concatenation shares.
TEST(Int8Network, TransposedUpsamplingIsQuantizedAsTfliteWantsIt) {
  const QModel m = quantize_trained("minmax", Upsampling::transposed);
  int seen = 0;
  for (size_t i = 0; i < m.ops.size(); ++i) {
    const DeployOp& op = m.ops[i];
    if (op.kind != DeployOpKind::transposed_conv) continue;
    ++seen;
    const QConv& c = m.convs[size_t(op.conv)];
    EXPECT_EQ(c.k, 2);
    EXPECT_FALSE(c.relu);
    EXPECT_EQ(c.bias, std::vector<int32_t>(size_t(c.cout), 0));
    ASSERT_EQ(c.weight_scales.size(), size_t(c.cout));
    for (int o = 0; o < c.cout; ++o) {  // max |w| over the four taps is 127: the scale is the channel's
      int amax = 0;
      for (int j = 0; j < 4 * c.cin; ++j) amax = std::max(amax, std::abs(int(c.weights[size_t(o) * 4 * c.cin + j])));
      EXPECT_EQ(amax, 127) << op.name << " channel " << o;
    }
    ASSERT_LT(i + 1, m.ops.size());
    ASSERT_EQ(m.ops[i + 1].kind, DeployOpKind::concat);
    EXPECT_EQ(m.tensors[size_t(op.out)].q.scale, m.tensors[size_t(m.ops[i + 1].out)].q.scale) << op.name;
    EXPECT_EQ(m.tensors[size_t(op.out)].q.zero_point, m.tensors[size_t(m.ops[i + 1].out)].q.zero_point) << op.name;
  }
  EXPECT_EQ(seen, 3);  // one per decoder level
  QModel bad = m;
  for (QConv& c : bad.convs)
    if (c.k == 2) c.bias[0] = 1;
  test::expect_error_containing([&] { prepare(bad); }, "has a bias or a ReLU");
}

// Int8 keeps the accuracy: its Dice is within 0.02 of fp32's on held-out frames.
TEST(Int8Network, DiceWithinTwoPointsOfFp32) {
  for (Upsampling up : kUpsamplings) {
    SCOPED_TRACE(upsampling_name(up));
    const TrainedNet& t = trained(up);
    auto backend = make_backend("fast");
    Weights w = t.ck.weights;
    const double dice32 = evaluate(t.net, w, *backend, Policy::fp32, t.val_set, 8).dice_mean;
    for (const char* method : {"minmax", "percentile"}) {
      const QModel m = quantize_trained(method, up);
      const std::vector<int8_t> x = quantized_images(m, t.val_set);
      const std::vector<float> p = dequantize_output(m, run_int8(m, x.data(), int(t.val_set.size())));
      MetricsAccumulator acc;
      std::vector<float> centred(t.val_set.pixels());
      for (size_t i = 0; i < t.val_set.size(); ++i) {
        for (size_t j = 0; j < centred.size(); ++j) centred[j] = p[i * centred.size() + j] - 0.5f;
        acc.add_image(centred.data(), t.val_set.mask(i).data(), centred.size());
      }
      const double dice8 = acc.finish().dice_mean;
      fmt::print("{} upsampling, {}: fp32 dice {:.4f}, int8 dice {:.4f}\n", upsampling_name(up), method, dice32, dice8);
      EXPECT_GT(dice32, 0.9);
      EXPECT_NEAR(dice8, dice32, 0.02) << method;
    }
  }
}

TEST(Int8Network, SaveLoadRoundTripAndErrors) {
  const auto dir = test::temp_dir("qmodel");
  const std::string path = (dir / "m.int8.safetensors").string();
  for (Upsampling up : kUpsamplings) {
    SCOPED_TRACE(upsampling_name(up));
    const QModel m = quantize_trained("percentile", up);
    save_qmodel(path, m);
    const QModel back = load_qmodel(path);
    EXPECT_EQ(back.calibration, m.calibration);
    ASSERT_EQ(back.ops.size(), m.ops.size());
    for (size_t i = 0; i < m.ops.size(); ++i) EXPECT_EQ(back.ops[i].kind, m.ops[i].kind) << m.ops[i].name;
    const std::vector<int8_t> x = quantized_images(m, subset(trained(up).val_set, {0}));
    EXPECT_EQ(run_int8(m, x.data(), 1), run_int8(back, x.data(), 1));
  }
  // A float checkpoint is not an int8 model; a truncated file is named.
  const std::string ck = (dir / "float.safetensors").string();
  save_checkpoint(ck, trained().net, trained().ck);
  test::expect_error_containing([&] { load_qmodel(ck); }, "mixseg quantize");
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  test::expect_error_containing([&] { load_qmodel(path); }, path);
  std::filesystem::remove_all(dir);
}

// A model file whose graph the engine could not run safely (sizes that do not
// follow from the ops, reads before writes, inputs and outputs of the wrong
// size) is refused when it is prepared or loaded, naming what is wrong.
TEST(Int8Network, MalformedGraphIsRefused) {
  const QModel good = quantize_trained("minmax");
  auto first_op = [&](DeployOpKind k) {
    for (size_t i = 0; i < good.ops.size(); ++i)
      if (good.ops[i].kind == k) return i;
    throw std::runtime_error("no such op");
  };
  auto refused = [&](const std::function<void(QModel&)>& change, const std::string& message) {
    QModel m = good;
    change(m);
    test::expect_error_containing([&] { prepare(m); }, message);
  };
  QModel copy = good;
  EXPECT_NO_THROW(prepare(copy));
  refused([&](QModel& m) { m.tensors[size_t(m.ops[first_op(DeployOpKind::maxpool)].out)].level -= 1; }, "turns level");
  refused([&](QModel& m) { m.tensors[size_t(m.ops[first_op(DeployOpKind::upsample)].out)].level += 1; }, "turns level");
  refused([&](QModel& m) { m.tensors[size_t(m.ops[first_op(DeployOpKind::concat)].out)].channels -= 1; }, "turns level");
  refused([&](QModel& m) { m.tensors[size_t(m.ops[first_op(DeployOpKind::sigmoid)].in0)].channels = 2; },
          "output tensor head.conv is level 0 with 2 channels");
  refused([&](QModel& m) { std::swap(m.ops[0], m.ops[1]); }, "no earlier op wrote");
  refused([&](QModel& m) { m.ops[1].out = m.ops[0].out; }, "already written");
  refused([&](QModel& m) { m.tensors[size_t(m.input)].channels = 3; }, "input tensor");
  refused([&](QModel& m) { m.output = m.ops[0].out; }, "output tensor");
  refused([&](QModel& m) { m.tensors[size_t(m.ops[0].out)].level = 9; }, "level 9");
  refused([&](QModel& m) { m.ops[0].in0 = int(m.tensors.size()); }, "refers to tensor");
  refused([&](QModel& m) { m.height = 1 << 20; }, "exceeds 32768");
  refused([&](QModel& m) { m.width = 60; }, "multiple of 2^depth");
  // A bias that can take the int32 accumulator past its range (found by fuzz_qmodel: undefined in the reference).
  refused([&](QModel& m) { m.convs[0].bias[0] = std::numeric_limits<int32_t>::min(); }, "overflow its int32 accumulator");
  refused([&](QModel& m) { m.convs[0].bias[0] = std::numeric_limits<int32_t>::max() - 1000; }, "channel 0 can overflow");
  // Through a file: the loader names it.
  const auto dir = test::temp_dir("qmodel_bad");
  const std::string path = (dir / "bad.int8.safetensors").string();
  QModel bad = good;
  std::swap(bad.ops[0], bad.ops[1]);
  save_qmodel(path, bad);
  test::expect_error_containing([&] { load_qmodel(path); }, path);
  std::filesystem::remove_all(dir);
}
