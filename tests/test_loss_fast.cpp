// The fast CPU loss (cpu/loss.h: the reference's formulas with libmvec's
// vector exp and log1p) against the reference: the four sums within 1e-12
// relative, the gradient within the tolerance of the loss op (its rounding
// to the storage type), for counts below, at and off the four-element
// vectors and the fixed chunks, logits from 0 to far past where exp
// underflows in f32; the same sums for any thread count.
#include <gtest/gtest.h>

#include <cmath>

#include "core/threads.h"
#include "cpu/loss.h"
#include "test_util.h"

using namespace mixseg;
using namespace mixseg::test;

namespace {

template <class T>
void check_loss(size_t n, uint64_t seed) {
  const DType dt = dtype_of<T>();
  std::vector<double> z = rounded<T>(random_vec(n, seed, -12, 12));
  for (size_t i = 0; i < n; i += 97) z[i] = (i / 97) % 3 == 0 ? 0.0 : (i / 97) % 3 == 1 ? 40.0 : -40.0;
  z = rounded<T>(z);
  std::vector<uint8_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = z[i] + 3 * std::sin(double(i)) > 0;
  const auto zs = to_storage<T>(z);
  double ref[4], fast[4];
  loss_sums_ref<T>(n, zs.data(), t.data(), ref);
  loss_sums_fast<T>(n, zs.data(), t.data(), fast);
  for (int j = 0; j < 4; ++j)
    EXPECT_NEAR(fast[j], ref[j], 1e-12 * (std::fabs(ref[j]) + 1)) << "sum " << j << " n " << n << " " << dtype_name(dt);
  const double den = ref[1] + ref[2] + kDiceSmooth, num = 2 * ref[3] + kDiceSmooth;
  std::vector<T> g_ref(n), g_fast(n);
  loss_grad_ref<T>(n, zs.data(), t.data(), den, num, {}, 1024.0, g_ref.data());
  loss_grad_fast<T>(n, zs.data(), t.data(), den, num, {}, 1024.0, g_fast.data());
  expect_close(to_double(g_fast), to_double(g_ref), Op::loss, dt, 1,
               fmt::format("loss gradient n {} {}", n, dtype_name(dt)));
}

}  // namespace

TEST(LossFast, MatchesReference) {
  if (!loss_fast_vectorized()) fmt::print("built without libmvec: the fast loss is the reference's\n");
  uint64_t seed = 70;
  for (size_t n : {size_t(1), size_t(3), size_t(4), size_t(257), size_t(64 * 4 + 3), size_t(131075)}) {
    check_loss<float>(n, seed += 3);
    check_loss<f16>(n, seed += 3);
    check_loss<bf16>(n, seed += 3);
  }
}

TEST(LossFast, IndependentOfThreads) {
  const size_t n = 50001;
  const auto z = to_storage<float>(random_vec(n, 90, -6, 6));
  std::vector<uint8_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = i % 3 == 0;
  const int before = max_threads();
  double one[4], three[4];
  set_threads(1);
  loss_sums_fast<float>(n, z.data(), t.data(), one);
  set_threads(3);
  loss_sums_fast<float>(n, z.data(), t.data(), three);
  set_threads(before);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(one[j], three[j]) << j;
}
