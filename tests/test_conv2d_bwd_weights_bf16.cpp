// The own bf16 weight gradient over pixel pairs (cpu/conv2d_bwd_weights_bf16.h)
// against the double-precision reference, with the one tolerance function
// (f32's: exact bf16 products summed in f32): odd widths (a last pair of one
// pixel), single rows and pixels, several images, input channels from 1 to
// the 32 it takes (one to six vectors per kernel row), output channels off
// the groups of 8 and 4, chunks of rows that span images; the same bits
// whatever the thread count; what it refuses.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/backend.h"
#include "core/threads.h"
#include "cpu/conv2d_bwd_weights_bf16.h"
#include "ops/tolerance.h"
#include "test_util.h"

using namespace mixseg;
using namespace mixseg::test;

namespace {

std::vector<float> check_pairs(const ConvShape& s, uint64_t seed) {
  const size_t nx = size_t(s.n) * s.h * s.w * s.cin, ny = size_t(s.n) * s.h * s.w * s.cout;
  const auto x = rounded<bf16>(random_vec(nx, seed)), dy = rounded<bf16>(random_vec(ny, seed + 1));
  std::vector<double> ref(s.weight_numel());
  conv2d_bwd_weights_ref<double>(s, x.data(), dy.data(), ref.data());
  const auto xs = to_storage<bf16>(x), dys = to_storage<bf16>(dy);
  std::vector<float> dw(ref.size(), 1e4f);  // overwritten, not accumulated into
  {
    const ScopedFlushDenormals ftz;
    conv2d_bwd_weights_bf16_pairs(s, xs.data(), dys.data(), dw.data());
  }
  expect_close(std::vector<double>(dw.begin(), dw.end()), ref, Op::conv2d_bwd_weights, DType::f32,
               size_t(s.n) * s.h * s.w,
               fmt::format("bf16 pairs bwd weights {}x{}x{}x{} -> {}", s.n, s.h, s.w, s.cin, s.cout));
  return dw;
}

}  // namespace

TEST(ConvBwdWeightsBf16Pairs, MatchesReference) {
  if (!conv2d_bwd_weights_bf16_pairs_available()) GTEST_SKIP() << "this CPU lacks AVX-512 with AVX512_BF16";
  uint64_t seed = 900;
  for (const ConvShape s : {ConvShape{1, 1, 1, 8, 8, 3}, ConvShape{1, 7, 5, 3, 8, 3}, ConvShape{2, 6, 9, 16, 16, 3},
                            ConvShape{1, 1, 9, 17, 24, 3}, ConvShape{3, 5, 3, 8, 8, 3}, ConvShape{1, 16, 8, 1, 16, 3},
                            ConvShape{1, 9, 7, 32, 5, 3}, ConvShape{1, 4, 6, 24, 33, 3}, ConvShape{2, 3, 11, 16, 17, 3},
                            ConvShape{1, 10, 52, 5, 1, 3}, ConvShape{1, 2, 2, 11, 9, 3}})
    check_pairs(s, seed += 7);
  // Many rows: chunks of rows within and across images, odd and even widths.
  for (const ConvShape s :
       {ConvShape{2, 300, 9, 8, 8, 3}, ConvShape{1, 523, 17, 16, 8, 3}, ConvShape{3, 70, 20, 32, 16, 3}})
    check_pairs(s, seed += 7);
}

// The fast backend runs it where a record says so (and names it), with the
// same bits as the kernel called directly.
TEST(ConvBwdWeightsBf16Pairs, FollowedByTheFastBackend) {
  if (!conv2d_bwd_weights_bf16_pairs_available()) GTEST_SKIP() << "this CPU lacks AVX-512 with AVX512_BF16";
  const ConvShape s{1, 9, 7, 8, 8, 3};
  auto be = make_fast_backend();
  be->replay_choices({"bwd_weights bf16 1x9x7x8->8 k3: direct_pairs"});
  const Shape xs{s.n, s.h, s.w, s.cin}, ys{s.n, s.h, s.w, s.cout}, ws{s.cout, 3, 3, s.cin};
  const auto x = rounded<bf16>(random_vec(xs.numel(), 31)), dy = rounded<bf16>(random_vec(ys.numel(), 32));
  DeviceTensor X(*be, DType::bf16, xs, x), DY(*be, DType::bf16, ys, dy), DW(*be, DType::f32, ws);
  be->conv2d_bwd_weights(X.t, DY.t, DW.t);
  const auto xb = to_storage<bf16>(x), dyb = to_storage<bf16>(dy);
  std::vector<float> direct(s.weight_numel());
  conv2d_bwd_weights_bf16_pairs(s, xb.data(), dyb.data(), direct.data());
  EXPECT_EQ(DW.download(), std::vector<double>(direct.begin(), direct.end()));
  const std::vector<std::string> choices = be->choices();
  EXPECT_NE(std::find(choices.begin(), choices.end(), "bwd_weights bf16 1x9x7x8->8 k3: direct_pairs"), choices.end());
}

// The summation order is fixed by the shape: the same bits with one thread and with several.
TEST(ConvBwdWeightsBf16Pairs, IndependentOfThreads) {
  if (!conv2d_bwd_weights_bf16_pairs_available()) GTEST_SKIP() << "this CPU lacks AVX-512 with AVX512_BF16";
  const ConvShape s{2, 90, 33, 16, 8, 3};
  const int before = max_threads();
  set_threads(1);
  const std::vector<float> one = check_pairs(s, 950);
  set_threads(3);
  const std::vector<float> three = check_pairs(s, 950);
  set_threads(before);
  EXPECT_EQ(one, three);
}

TEST(ConvBwdWeightsBf16Pairs, RejectsWhatItDoesNotTake) {
  EXPECT_FALSE(conv2d_bwd_weights_bf16_pairs_applies(ConvShape{1, 4, 4, 8, 8, 1}));
  EXPECT_FALSE(conv2d_bwd_weights_bf16_pairs_applies(ConvShape{1, 4, 4, 33, 8, 3}));
  EXPECT_TRUE(conv2d_bwd_weights_bf16_pairs_applies(ConvShape{1, 4, 4, 32, 64, 3}));
  std::vector<bf16> x(16 * 33), dy(16 * 8);
  std::vector<float> dw(size_t(8) * 9 * 33);
  expect_error_containing(
      [&] {
        conv2d_bwd_weights_bf16_pairs(ConvShape{1, 4, 4, 33, 8, 3}, x.data(), dy.data(), dw.data());
      },
      "up to 32 input channels");
}
