// The own Winograd F(2x2,3x3) kernel (cpu/conv2d_winograd.h) against the
// double-precision reference convolution, per storage dtype (f32, f16, bf16), with the one
// tolerance function: tile edges (odd H and W, 1-pixel images), batch 1 and
// several images (chunks of tiles span images), channel counts off the
// 16-lane vectors on both sides, with and without bias and ReLU.
#include <gtest/gtest.h>

#include <limits>

#include "core/threads.h"
#include "cpu/conv2d_winograd.h"
#include "ops/tolerance.h"
#include "ops/upsample_ref.h"
#include "test_util.h"

using namespace mixseg;
using namespace mixseg::test;

namespace {

// bf16_products: bf16 with the bf16 dot product (winograd_f2_bf16_products_available).
template <class T>
void check_shape(const ConvShape& s, bool with_bias, bool relu, uint64_t seed, bool bf16_products) {
  const DType dt = dtype_of<T>();
  const size_t nx = size_t(s.n) * s.h * s.w * s.cin, ny = size_t(s.n) * s.h * s.w * s.cout;
  const auto x = rounded<T>(random_vec(nx, seed)), w = rounded<T>(random_vec(s.weight_numel(), seed + 1));
  const auto bias_d = rounded<float>(random_vec(size_t(s.cout), seed + 2));
  const std::vector<float> bias(bias_d.begin(), bias_d.end());
  std::vector<double> ref(ny);
  conv2d_fwd_ref<double>(s, x.data(), w.data(), ref.data(), with_bias ? bias.data() : nullptr, relu);
  const auto xs = to_storage<T>(x), ws = to_storage<T>(w);
  // Output pre-filled with a marker: every element must be written.
  std::vector<T> y(ny, from_f32<T>(1e4f));
  const WinogradF2Weights u = winograd_f2_transform_weights(s, dt, ws.data(), false, bf16_products);
  {
    const ScopedFlushDenormals ftz;
    conv2d_winograd_f2(s, dt, xs.data(), u, with_bias ? bias.data() : nullptr, y.data(), relu);
  }
  const std::string what =
      fmt::format("winograd {}{} {}x{}x{}x{} -> {}{}{}", dtype_name(dt), bf16_products ? " (bf16 products)" : "", s.n,
                  s.h, s.w, s.cin, s.cout, with_bias ? " +bias" : "", relu ? " +relu" : "");
  expect_close(to_double(y), ref, Op::conv2d_fwd_bias, dt, size_t(9) * s.cin, what);
}

// Backward-data as the forward convolution of dy with the transposed,
// flipped weights.
template <class T>
void check_backward_data(const ConvShape& s, uint64_t seed, bool bf16_products) {
  const DType dt = dtype_of<T>();
  const size_t nx = size_t(s.n) * s.h * s.w * s.cin, ny = size_t(s.n) * s.h * s.w * s.cout;
  const auto dy = rounded<T>(random_vec(ny, seed)), w = rounded<T>(random_vec(s.weight_numel(), seed + 1));
  std::vector<double> ref(nx);
  conv2d_bwd_data_ref<double>(s, dy.data(), w.data(), ref.data());
  const auto dys = to_storage<T>(dy), ws = to_storage<T>(w);
  std::vector<T> dx(nx, from_f32<T>(1e4f));
  const WinogradF2Weights u = winograd_f2_transform_weights(s, dt, ws.data(), true, bf16_products);
  {
    const ScopedFlushDenormals ftz;
    conv2d_winograd_f2(ConvShape{s.n, s.h, s.w, s.cout, s.cin, 3}, dt, dys.data(), u, nullptr, dx.data(), false);
  }
  expect_close(to_double(dx), ref, Op::conv2d_bwd_data, dt, size_t(9) * s.cout,
               fmt::format("winograd bwd data {}{} {}x{}x{}x{} -> {}", dtype_name(dt),
                           bf16_products ? " (bf16 products)" : "", s.n, s.h, s.w, s.cin, s.cout));
}

// Weight gradient (F(3x3,2x2) on the same input transform), f32 result:
// held to f32's tolerance (exact bf16 or f16 products in f32), or to bf16's
// with bf16 products (the transformed operands rounded to bf16). Returns the
// gradient for the determinism check.
template <class T>
std::vector<float> check_backward_weights(const ConvShape& s, uint64_t seed, bool bf16_products = false) {
  const DType dt = dtype_of<T>();
  return check_weight_gradient<T>(s, seed, bf16_products ? DType::bf16 : DType::f32,
                                  fmt::format("winograd bwd weights {}{} {}x{}x{}x{} -> {}", dtype_name(dt),
                                              bf16_products ? " (bf16 products)" : "", s.n, s.h, s.w, s.cin, s.cout),
                                  [&](const T* x, const T* dy, float* dw) {
                                    conv2d_winograd_f2_backward_weights(s, dt, x, dy, dw, bf16_products);
                                  });
}

// The decoder's fused form against upsample+concat then convolution.
template <class T>
void check_upsample_concat(int n, int h, int w, int c_low, int c_skip, int cout, uint64_t seed,
                           bool bf16_products = false) {
  const DType dt = dtype_of<T>();
  const ConvShape s{n, h, w, c_low + c_skip, cout, 3};
  const Shape low_shape{n, h / 2, w / 2, c_low};
  const auto low = rounded<T>(random_vec(low_shape.numel(), seed));
  const auto skip = rounded<T>(random_vec(size_t(n) * h * w * c_skip, seed + 1));
  const auto wts = rounded<T>(random_vec(s.weight_numel(), seed + 2));
  const auto bias_d = rounded<float>(random_vec(size_t(cout), seed + 3));
  const std::vector<float> bias(bias_d.begin(), bias_d.end());
  std::vector<double> cat(size_t(n) * h * w * s.cin), ref(size_t(n) * h * w * cout);
  upsample2x_concat_fwd_ref<double>(low_shape, low.data(), skip.data(), c_skip, cat.data());
  conv2d_fwd_ref<double>(s, cat.data(), wts.data(), ref.data(), bias.data(), true);
  const auto lows = to_storage<T>(low), skips = to_storage<T>(skip), ws = to_storage<T>(wts);
  std::vector<T> y(ref.size(), from_f32<T>(1e4f));
  const WinogradF2Weights u = winograd_f2_transform_weights(s, dt, ws.data(), false, bf16_products);
  {
    const ScopedFlushDenormals ftz;
    conv2d_winograd_f2_upsample_concat(s, dt, lows.data(), c_low, skips.data(), u, bias.data(), y.data(), true);
  }
  expect_close(to_double(y), ref, Op::conv2d_fwd_bias, dt, size_t(9) * s.cin,
               fmt::format("winograd upsample+concat {}{} {}x{}x{} ({}+{}) -> {}", dtype_name(dt),
                           bf16_products ? " (bf16 products)" : "", n, h, w, c_low, c_skip, cout));
}

template <class T>
void check_all(bool bf16_products = false) {
  uint64_t seed = 100;
  for (const ConvShape s : {ConvShape{1, 7, 5, 3, 8, 3}, ConvShape{2, 6, 9, 16, 32, 3}, ConvShape{1, 1, 1, 16, 16, 3},
                            ConvShape{1, 1, 9, 17, 24, 3}, ConvShape{3, 5, 3, 8, 8, 3}, ConvShape{1, 12, 20, 32, 32, 3},
                            ConvShape{1, 9, 7, 40, 48, 3}, ConvShape{1, 16, 8, 1, 16, 3}, ConvShape{1, 4, 6, 64, 64, 3},
                            ConvShape{2, 3, 11, 16, 33, 3}, ConvShape{1, 10, 52, 16, 1, 3},
                            // Point pairs (up to 8 output channels) over chunks that span rows and images.
                            ConvShape{2, 13, 27, 16, 8, 3}, ConvShape{1, 9, 11, 24, 5, 3}}) {
    for (int variant = 0; variant < 3; ++variant)
      check_shape<T>(s, variant != 1, variant != 0, seed += 7, bf16_products);
    check_backward_data<T>(s, seed += 7, bf16_products);
    check_backward_weights<T>(s, seed += 7, bf16_products);
  }
  // Weight gradients over many tiles: several tile groups, chunks that end
  // inside a group and span tile rows and images, odd sizes; output
  // channels in one to three slices (up to 64 channels each, the last narrower).
  for (const ConvShape s : {ConvShape{2, 41, 70, 16, 16, 3}, ConvShape{1, 64, 47, 3, 16, 3},
                            ConvShape{1, 33, 33, 32, 32, 3}, ConvShape{3, 20, 21, 24, 80, 3},
                            ConvShape{1, 24, 30, 40, 160, 3}})
    check_backward_weights<T>(s, seed += 7, bf16_products);
}

}  // namespace

TEST(ConvWinogradF2, MatchesReferenceF32) {
  if (!winograd_f2_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  check_all<float>();
}

TEST(ConvWinogradF2, MatchesReferenceF16) {
  if (!winograd_f2_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  check_all<f16>();
}

TEST(ConvWinogradF2, MatchesReferenceBF16) {
  if (!winograd_f2_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  check_all<bf16>(false);
}

TEST(ConvWinogradF2, MatchesReferenceBF16WithBf16Products) {
  if (!winograd_f2_bf16_products_available()) GTEST_SKIP() << "this CPU lacks AVX512_BF16";
  check_all<bf16>(true);
  check_upsample_concat<bf16>(1, 6, 10, 16, 16, 16, 390, true);
  check_upsample_concat<bf16>(1, 10, 6, 5, 7, 3, 400, true);
  check_upsample_concat<bf16>(2, 8, 12, 24, 24, 33, 410, true);
  check_upsample_concat<bf16>(2, 10, 14, 8, 8, 8, 420, true);
}

TEST(ConvWinogradF2, UpsampleConcatMatchesReference) {
  if (!winograd_f2_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  // Splits at, below and inside a 16-channel vector; batch 1 and 2; tiles
  // chunked across rows.
  check_upsample_concat<float>(1, 6, 10, 16, 16, 16, 300);
  check_upsample_concat<float>(2, 4, 8, 8, 8, 8, 310);
  check_upsample_concat<float>(1, 10, 6, 5, 7, 3, 320);
  check_upsample_concat<float>(1, 8, 12, 24, 24, 33, 330);
  check_upsample_concat<f16>(1, 6, 10, 16, 16, 16, 340);
  check_upsample_concat<f16>(2, 4, 8, 8, 8, 8, 350);
  check_upsample_concat<f16>(1, 8, 12, 24, 24, 33, 360);
  check_upsample_concat<bf16>(1, 6, 10, 16, 16, 16, 370);
  check_upsample_concat<bf16>(1, 10, 6, 5, 7, 3, 380);
}

// The kernel's bf16 store rounds as f32_to_bf16 does, bit for bit: ties to
// even both ways, a carry into the exponent, overflow to inf, NaN kept NaN.
// A 1x1-pixel convolution with one centre tap of 1 passes x through the
// transforms exactly (B, G and A hold 0, +-1 and 1/2 on this path).
TEST(ConvWinogradF2, Bf16RoundingMatchesTheScalarConversion) {
  if (!winograd_f2_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  const ConvShape s{1, 1, 1, 1, 1, 3};
  std::vector<float> w(9, 0.0f);
  w[4] = 1.0f;
  const std::vector<bf16> wb = to_storage<bf16>(std::vector<double>(w.begin(), w.end()));
  const WinogradF2Weights u = winograd_f2_transform_weights(s, DType::bf16, wb.data());
  // The bias carries the value to round (x = 0): y = bias exactly in f32.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const float v : {1.0f + 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-7f, 1.0f + 0x1p-8f + 0x1p-20f, 1.0f - 0x1p-25f,
                        -3.0f - 0x1p-7f - 0x1p-9f, 0x1.ffffp127f, 1e-40f, inf, -inf, nan}) {
    const bf16 x = f32_to_bf16(0.0f);
    bf16 y{};
    conv2d_winograd_f2(s, DType::bf16, &x, u, &v, &y, false);
    EXPECT_EQ(y.bits, f32_to_bf16(v).bits) << v;
  }
}

// The weight gradient's summation order is fixed by the shape: the same
// bits with one thread and with several.
TEST(ConvWinogradF2, WeightGradientIndependentOfThreads) {
  if (!winograd_f2_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  const ConvShape s{2, 50, 66, 16, 48, 3};
  const int before = max_threads();
  set_threads(1);
  const std::vector<float> one = check_backward_weights<float>(s, 500);
  set_threads(3);
  const std::vector<float> three = check_backward_weights<float>(s, 500);
  std::vector<float> one_bf16, three_bf16;  // with bf16 products, where the CPU has them
  if (winograd_f2_bf16_products_available()) {
    set_threads(1);
    one_bf16 = check_backward_weights<bf16>(s, 510, true);
    set_threads(3);
    three_bf16 = check_backward_weights<bf16>(s, 510, true);
  }
  set_threads(before);
  EXPECT_EQ(one, three);
  EXPECT_EQ(one_bf16, three_bf16);
}

namespace {

// Training transforms the weights into the same buffers every step
// (winograd_f2_transform_weights into u): every element is written, so what
// a larger transform left there never shows, and the result is that of a
// fresh transform (same bits) for any thread count: odd input channels (a
// half-filled last pair with bf16 products), point pairs (up to 8 output
// channels), output channels below a vector, backward-data's transposition.
template <class T>
void check_transform_into_reused(bool bf16_products) {
  const DType dt = dtype_of<T>();
  const ConvShape big{1, 4, 4, 40, 48, 3};
  const auto wbig = to_storage<T>(rounded<T>(random_vec(big.weight_numel(), 600)));
  const int before = max_threads();
  uint64_t seed = 610;
  for (const ConvShape s : {ConvShape{1, 4, 4, 7, 5, 3}, ConvShape{1, 4, 4, 9, 24, 3}, ConvShape{1, 4, 4, 16, 8, 3},
                            ConvShape{1, 4, 4, 33, 17, 3}})
    for (bool backward_data : {false, true})
      for (int threads : {1, 3}) {
        const auto w = to_storage<T>(rounded<T>(random_vec(s.weight_numel(), seed++)));
        const WinogradF2Weights fresh = winograd_f2_transform_weights(s, dt, w.data(), backward_data, bf16_products);
        set_threads(threads);
        WinogradF2Weights reused;
        winograd_f2_transform_weights(reused, big, dt, wbig.data(), !backward_data, bf16_products);
        winograd_f2_transform_weights(reused, s, dt, w.data(), backward_data, bf16_products);
        set_threads(before);
        const std::string what =
            fmt::format("{} {}->{}{}{}, {} threads", dtype_name(dt), s.cin, s.cout,
                        backward_data ? " backward-data" : "", bf16_products ? " (bf16 products)" : "", threads);
        EXPECT_EQ(reused.cin, fresh.cin) << what;
        EXPECT_EQ(reused.cout_pad, fresh.cout_pad) << what;
        EXPECT_EQ(reused.point_pairs, fresh.point_pairs) << what;
        EXPECT_EQ(reused.u, fresh.u) << what;
        ASSERT_EQ(reused.u_pairs.size(), fresh.u_pairs.size()) << what;
        for (size_t i = 0; i < fresh.u_pairs.size(); ++i)
          ASSERT_EQ(reused.u_pairs[i].bits, fresh.u_pairs[i].bits) << what << " at " << i;
      }
}

}  // namespace

TEST(ConvWinogradF2, TransformIntoReusedBuffersIsFresh) {
  check_transform_into_reused<float>(false);
  check_transform_into_reused<bf16>(false);
  if (winograd_f2_bf16_products_available()) check_transform_into_reused<bf16>(true);
}

TEST(ConvWinogradF2, RejectsWhatItDoesNotTake) {
  const ConvShape one{1, 4, 4, 8, 8, 1};
  EXPECT_FALSE(winograd_f2_applies(one, DType::f32));
  EXPECT_FALSE(winograd_f2_applies(ConvShape{1, 4, 4, 8, 8, 3}, DType::i8));
  std::vector<float> w(one.weight_numel());
  expect_error_containing([&] { winograd_f2_transform_weights(one, DType::f32, w.data()); }, "3x3");
  if (!winograd_f2_available()) return;
  const ConvShape s{1, 4, 4, 8, 8, 3};
  std::vector<float> w3(s.weight_numel()), x(size_t(16) * 8), y(size_t(16) * 8);
  const WinogradF2Weights u = winograd_f2_transform_weights(s, DType::f32, w3.data());
  const ConvShape other{1, 4, 4, 8, 16, 3};
  expect_error_containing([&] { conv2d_winograd_f2(other, DType::f32, x.data(), u, nullptr, y.data(), false); },
                          "8->8");
  // bf16 products are for bf16 on CPUs that have them, and such weights for bf16 only.
  expect_error_containing([&] { winograd_f2_transform_weights(s, DType::f32, w3.data(), false, true); },
                          "bf16 products");
  if (!winograd_f2_bf16_products_available()) return;
  const std::vector<bf16> wb(s.weight_numel(), f32_to_bf16(0.5f));
  const WinogradF2Weights ub = winograd_f2_transform_weights(s, DType::bf16, wb.data(), false, true);
  expect_error_containing([&] { conv2d_winograd_f2(s, DType::f32, x.data(), ub, nullptr, y.data(), false); },
                          "bf16 products");
}
