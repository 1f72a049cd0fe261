// The own direct weight gradient for narrow layers (cpu/conv2d_bwd_weights_rows.h)
// against the double-precision reference, per storage dtype (f32, f16, bf16
// by pixel pairs and through f32 rows), with the one tolerance function
// (f32's: exact products summed in f32): odd widths (a last pair of one
// pixel), single rows and pixels, several images, input channels from 1 to
// the 32 it takes (one to six vectors per kernel row), output channels off
// the groups of 8 and 4 and up to 1024, chunks of rows that span images; the same bits
// whatever the thread count; the fast backend following a record of it;
// what it refuses.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/backend.h"
#include "core/threads.h"
#include "cpu/conv2d_bwd_weights_rows.h"
#include "ops/tolerance.h"
#include "test_util.h"

using namespace mixseg;
using namespace mixseg::test;

namespace {

template <class T>
std::vector<float> check_rows(const ConvShape& s, uint64_t seed, bool bf16_pairs) {
  const DType dt = dtype_of<T>();
  return check_weight_gradient<T>(
      s, seed, DType::f32,
      fmt::format("own direct bwd weights {}{} {}x{}x{}x{} -> {}", dtype_name(dt), bf16_pairs ? " (pixel pairs)" : "",
                  s.n, s.h, s.w, s.cin, s.cout),
      [&](const T* x, const T* dy, float* dw) { conv2d_bwd_weights_rows(s, dt, x, dy, dw, bf16_pairs); });
}

template <class T>
void check_all(bool bf16_pairs) {
  uint64_t seed = 900;
  for (const ConvShape s : {ConvShape{1, 1, 1, 8, 8, 3}, ConvShape{1, 7, 5, 3, 8, 3}, ConvShape{2, 6, 9, 16, 16, 3},
                            ConvShape{1, 1, 9, 17, 24, 3}, ConvShape{3, 5, 3, 8, 8, 3}, ConvShape{1, 16, 8, 1, 16, 3},
                            ConvShape{1, 9, 7, 32, 5, 3}, ConvShape{1, 4, 6, 24, 33, 3}, ConvShape{2, 3, 11, 16, 17, 3},
                            ConvShape{1, 10, 52, 5, 1, 3}, ConvShape{1, 2, 2, 11, 9, 3}})
    check_rows<T>(s, seed += 7, bf16_pairs);
  // Many rows: chunks of rows within and across images, odd and even widths;
  // 1024 outputs of 32 inputs: fewer chunks, for the accumulators' memory.
  for (const ConvShape s : {ConvShape{2, 300, 9, 8, 8, 3}, ConvShape{1, 523, 17, 16, 8, 3},
                            ConvShape{3, 70, 20, 32, 16, 3}, ConvShape{2, 100, 3, 32, 1024, 3}})
    check_rows<T>(s, seed += 7, bf16_pairs);
}

}  // namespace

TEST(ConvBwdWeightsRows, MatchesReferenceF32) {
  if (!conv2d_bwd_weights_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  check_all<float>(false);
}

TEST(ConvBwdWeightsRows, MatchesReferenceF16) {
  if (!conv2d_bwd_weights_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  check_all<f16>(false);
}

TEST(ConvBwdWeightsRows, MatchesReferenceBF16) {
  if (!conv2d_bwd_weights_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  check_all<bf16>(false);
}

TEST(ConvBwdWeightsRows, MatchesReferenceBF16ByPixelPairs) {
  if (!conv2d_bwd_weights_rows_pairs_available()) GTEST_SKIP() << "this CPU lacks AVX-512 with AVX512_BF16";
  check_all<bf16>(true);
}

// The fast backend runs it where a record says so (and names it), with the
// same bits as the kernel called directly.
TEST(ConvBwdWeightsRows, FollowedByTheFastBackend) {
  if (!conv2d_bwd_weights_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  const ConvShape s{1, 9, 7, 8, 8, 3};
  for (DType dt : {DType::f32, DType::bf16}) {
    auto be = make_fast_backend();
    const std::string line = fmt::format("bwd_weights {} 1x9x7x8->8 k3: direct_rows", dtype_name(dt));
    be->replay_choices({line});
    const Shape xs{s.n, s.h, s.w, s.cin}, ys{s.n, s.h, s.w, s.cout}, ws{s.cout, 3, 3, s.cin};
    const auto x = random_vec(xs.numel(), 31), dy = random_vec(ys.numel(), 32);  // rounded by the upload
    DeviceTensor X(*be, dt, xs, x), DY(*be, dt, ys, dy), DW(*be, DType::f32, ws);
    be->conv2d_bwd_weights(X.t, DY.t, DW.t);
    std::vector<float> direct(s.weight_numel());
    conv2d_bwd_weights_rows(s, dt, X.t.data, DY.t.data, direct.data());
    EXPECT_EQ(DW.download(), std::vector<double>(direct.begin(), direct.end())) << line;
    const std::vector<std::string> choices = be->choices();
    EXPECT_NE(std::find(choices.begin(), choices.end(), line), choices.end()) << line;
  }
}

// The summation order is fixed by the shape: the same bits with one thread and with several.
TEST(ConvBwdWeightsRows, IndependentOfThreads) {
  if (!conv2d_bwd_weights_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512";
  const ConvShape s{2, 90, 33, 16, 8, 3};
  const bool pairs = conv2d_bwd_weights_rows_pairs_available();
  const int before = max_threads();
  set_threads(1);
  const std::vector<float> one = check_rows<float>(s, 950, false), one_bf16 = check_rows<bf16>(s, 960, pairs);
  set_threads(3);
  const std::vector<float> three = check_rows<float>(s, 950, false), three_bf16 = check_rows<bf16>(s, 960, pairs);
  set_threads(before);
  EXPECT_EQ(one, three);
  EXPECT_EQ(one_bf16, three_bf16);
}

TEST(ConvBwdWeightsRows, RejectsWhatItDoesNotTake) {
  EXPECT_FALSE(conv2d_bwd_weights_rows_applies(ConvShape{1, 4, 4, 8, 8, 1}, DType::f32));
  EXPECT_FALSE(conv2d_bwd_weights_rows_applies(ConvShape{1, 4, 4, 33, 8, 3}, DType::f32));
  EXPECT_FALSE(conv2d_bwd_weights_rows_applies(ConvShape{1, 4, 4, 8, 8, 3}, DType::i8));
  EXPECT_TRUE(conv2d_bwd_weights_rows_applies(ConvShape{1, 4, 4, 32, 64, 3}, DType::f16));
  std::vector<float> x(16 * 33), dy(16 * 8);
  std::vector<float> dw(size_t(8) * 9 * 33);
  expect_error_containing(
      [&] {
        conv2d_bwd_weights_rows(ConvShape{1, 4, 4, 33, 8, 3}, DType::f32, x.data(), dy.data(), dw.data());
      },
      "up to 32 input channels");
  if (!conv2d_bwd_weights_rows_available()) return;
  expect_error_containing(
      [&] {
        conv2d_bwd_weights_rows(ConvShape{1, 4, 4, 8, 8, 3}, DType::f32, x.data(), dy.data(), dw.data(), true);
      },
      "pixel pairs is for bf16");
}
