// Every reference op's backward against central finite differences of its
// forward, all in double precision (the kernels' double instantiation), on
// odd sizes. For an op y = f(x) and a random upstream gradient g, the scalar
// L = sum(g * f(x)) has dL/dx = backward(g), which must equal
// (L(x + h e_i) - L(x - h e_i)) / 2h for every element i.
#include <gtest/gtest.h>

#include <functional>

#include "ops/batchnorm_ref.h"
#include "ops/concat_ref.h"
#include "ops/conv2d_ref.h"
#include "ops/loss_ref.h"
#include "ops/maxpool_ref.h"
#include "ops/relu_ref.h"
#include "ops/upsample_ref.h"
#include "test_util.h"

using namespace mixseg;
using mixseg::test::random_vec;

namespace {

constexpr double kStep = 1e-6;
constexpr double kRelTol = 1e-6;

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks analytic[i] against the central difference of L(x) = loss(x) for every i.
void check_gradient(std::vector<double> x, const std::function<double(const std::vector<double>&)>& loss,
                    const std::vector<double>& analytic, const char* what) {
  ASSERT_EQ(x.size(), analytic.size());
  double scale = 0;
  for (double a : analytic) scale = std::max(scale, std::fabs(a));
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    x[i] = xi + kStep;
    const double lp = loss(x);
    x[i] = xi - kStep;
    const double lm = loss(x);
    x[i] = xi;
    const double numeric = (lp - lm) / (2 * kStep);
    ASSERT_NEAR(analytic[i], numeric, kRelTol * (std::fabs(numeric) + scale) + 1e-9) << what << " element " << i;
  }
}

}  // namespace

class ConvGrad : public ::testing::TestWithParam<int> {};

TEST_P(ConvGrad, DataAndWeightsMatchFiniteDifferences) {
  const int k = GetParam();
  const ConvShape s{2, 5, 3, 3, 4, k};  // odd H and W, batch 2
  const auto x = random_vec(size_t(s.n) * s.h * s.w * s.cin, 1);
  const auto w = random_vec(s.weight_numel(), 2);
  const auto g = random_vec(size_t(s.n) * s.h * s.w * s.cout, 3);
  std::vector<double> dx(x.size()), dw(w.size()), y(g.size());
  conv2d_bwd_data_ref<double>(s, g.data(), w.data(), dx.data());
  conv2d_bwd_weights_ref<double>(s, x.data(), g.data(), dw.data());
  check_gradient(x, [&](const std::vector<double>& xv) {
    conv2d_fwd_ref<double>(s, xv.data(), w.data(), y.data());
    return dot(g, y);
  }, dx, "conv dx");
  check_gradient(w, [&](const std::vector<double>& wv) {
    conv2d_fwd_ref<double>(s, x.data(), wv.data(), y.data());
    return dot(g, y);
  }, dw, "conv dw");
}

INSTANTIATE_TEST_SUITE_P(Kernel, ConvGrad, ::testing::Values(1, 3));

TEST(OpGrad, ConvForwardMatchesDirectSum) {
  // The forward itself against the definition, with zero padding at the borders.
  const ConvShape s{1, 4, 5, 2, 3, 3};
  const auto x = random_vec(size_t(s.h) * s.w * s.cin, 4);
  const auto w = random_vec(s.weight_numel(), 5);
  std::vector<double> y(size_t(s.h) * s.w * s.cout);
  conv2d_fwd_ref<double>(s, x.data(), w.data(), y.data());
  for (int oy = 0; oy < s.h; ++oy)
    for (int ox = 0; ox < s.w; ++ox)
      for (int co = 0; co < s.cout; ++co) {
        double ref = 0;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx)
            for (int ci = 0; ci < s.cin; ++ci) {
              const int iy = oy + ky - 1, ix = ox + kx - 1;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              ref += x[(size_t(iy) * s.w + ix) * s.cin + ci] * w[((size_t(co) * 3 + ky) * 3 + kx) * s.cin + ci];
            }
        ASSERT_NEAR(y[(size_t(oy) * s.w + ox) * s.cout + co], ref, 1e-12);
      }
}

TEST(OpGrad, BatchNormTraining) {
  const BatchNormShape s{2 * 3 * 5, 3};
  const auto x = random_vec(s.pixels * s.c, 6, -2, 3);
  const auto gamma = random_vec(s.c, 7, 0.5, 1.5), beta = random_vec(s.c, 8);
  const auto g = random_vec(x.size(), 9);
  std::vector<double> y(x.size()), mean(s.c), invstd(s.c), dx(x.size()), dgamma(s.c), dbeta(s.c);
  batchnorm_fwd_train_ref<double>(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(), nullptr,
                                  nullptr);
  batchnorm_bwd_ref<double>(s, g.data(), x.data(), mean.data(), invstd.data(), gamma.data(), dx.data(), dgamma.data(),
                            dbeta.data());
  auto loss = [&](const std::vector<double>& xv, const std::vector<double>& gv, const std::vector<double>& bv) {
    std::vector<double> yy(xv.size()), m(s.c), is(s.c);
    batchnorm_fwd_train_ref<double>(s, xv.data(), gv.data(), bv.data(), yy.data(), m.data(), is.data(), nullptr, nullptr);
    return dot(g, yy);
  };
  check_gradient(x, [&](const std::vector<double>& v) { return loss(v, gamma, beta); }, dx, "batchnorm dx");
  check_gradient(gamma, [&](const std::vector<double>& v) { return loss(x, v, beta); }, dgamma, "batchnorm dgamma");
  check_gradient(beta, [&](const std::vector<double>& v) { return loss(x, gamma, v); }, dbeta, "batchnorm dbeta");
}

TEST(OpGrad, BatchNormStatisticsAndInference) {
  const BatchNormShape s{7, 2, 1e-5, 0.1};
  const std::vector<double> x = {1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60, 7, 70};
  const std::vector<double> gamma = {1, 2}, beta = {0, 1};
  std::vector<double> y(x.size()), mean(2), invstd(2), rm = {0, 0}, rv = {1, 1};
  batchnorm_fwd_train_ref<double>(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(), rm.data(),
                                  rv.data());
  EXPECT_DOUBLE_EQ(mean[0], 4.0);
  EXPECT_DOUBLE_EQ(mean[1], 40.0);
  EXPECT_NEAR(invstd[0], 1 / std::sqrt(4.0 + 1e-5), 1e-12);  // biased variance of 1..7 is 4
  EXPECT_NEAR(rm[1], 4.0, 1e-12);                            // 0.9 * 0 + 0.1 * 40
  EXPECT_NEAR(rv[0], 0.9 + 0.1 * 4.0 * 7 / 6, 1e-12);        // unbiased variance in the running average
  // Inference with running statistics equal to the batch's reproduces the training output.
  std::vector<double> rmean = mean, rvar = {4.0, 400.0}, yi(x.size());
  batchnorm_fwd_infer_ref<double>(s, x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), yi.data());
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(yi[i], y[i], 1e-12);
}

TEST(OpGrad, Relu) {
  auto x = random_vec(37, 10);
  const auto g = random_vec(37, 11);
  std::vector<double> y(37), dx(37);
  relu_fwd_ref<double>(37, x.data(), y.data());
  relu_bwd_ref<double>(37, g.data(), y.data(), dx.data());
  check_gradient(x, [&](const std::vector<double>& v) {
    std::vector<double> yy(37);
    relu_fwd_ref<double>(37, v.data(), yy.data());
    return dot(g, yy);
  }, dx, "relu dx");
}

TEST(OpGrad, MaxPool) {
  const Shape s{2, 6, 4, 3};
  const auto x = random_vec(s.numel(), 12);
  const auto g = random_vec(s.numel() / 4, 13);
  std::vector<double> dx(x.size());
  maxpool2x2_bwd_ref<double>(s, x.data(), g.data(), dx.data());
  check_gradient(x, [&](const std::vector<double>& v) {
    std::vector<double> yy(g.size());
    maxpool2x2_fwd_ref<double>(s, v.data(), yy.data());
    return dot(g, yy);
  }, dx, "maxpool dx");
}

TEST(OpGrad, Upsample) {
  const Shape s{2, 3, 5, 2};
  const auto x = random_vec(s.numel(), 14);
  const auto g = random_vec(s.numel() * 4, 15);
  std::vector<double> dx(x.size());
  upsample2x_bwd_ref<double>(s, g.data(), dx.data());
  check_gradient(x, [&](const std::vector<double>& v) {
    std::vector<double> yy(g.size());
    upsample2x_fwd_ref<double>(s, v.data(), yy.data());
    return dot(g, yy);
  }, dx, "upsample dx");
}

TEST(OpGrad, Concat) {
  const size_t p = 11;
  const int ca = 3, cb = 2;
  const auto a = random_vec(p * ca, 16), b = random_vec(p * cb, 17), g = random_vec(p * (ca + cb), 18);
  std::vector<double> da(a.size()), db(b.size());
  concat_bwd_ref<double>(p, ca, cb, g.data(), da.data(), db.data());
  auto loss = [&](const std::vector<double>& av, const std::vector<double>& bv) {
    std::vector<double> yy(g.size());
    concat_fwd_ref<double>(p, ca, cb, av.data(), bv.data(), yy.data());
    return dot(g, yy);
  };
  check_gradient(a, [&](const std::vector<double>& v) { return loss(v, b); }, da, "concat da");
  check_gradient(b, [&](const std::vector<double>& v) { return loss(a, v); }, db, "concat db");
}

TEST(OpGrad, BceDiceLoss) {
  const size_t n = 53;
  const auto z = random_vec(n, 19, -4, 4);
  std::vector<uint8_t> t(n);
  Rng r(20);
  for (auto& v : t) v = r.uniform() < 0.3;
  for (const LossWeights w : {LossWeights{1, 0}, LossWeights{0, 1}, LossWeights{0.7, 1.3}}) {
    std::vector<double> dz(n), dz_scaled(n);
    bce_dice_ref<double>(n, z.data(), t.data(), w, 1.0, dz.data());
    check_gradient(z, [&](const std::vector<double>& v) {
      return bce_dice_ref<double>(n, v.data(), t.data(), w, 1.0, nullptr).total;
    }, dz, "bce+dice dz");
    // The loss scale multiplies the gradient and nothing else.
    const LossValue a = bce_dice_ref<double>(n, z.data(), t.data(), w, 1.0, nullptr);
    const LossValue b = bce_dice_ref<double>(n, z.data(), t.data(), w, 1024.0, dz_scaled.data());
    EXPECT_EQ(a.total, b.total);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(dz_scaled[i], 1024.0 * dz[i], 1e-12 * 1024);
  }
}

TEST(OpGrad, BceDiceValues) {
  // Perfect confident predictions: BCE ~ 0 and Dice loss ~ 0; inverted: large.
  const std::vector<double> good = {20, -20, 20, -20}, bad = {-20, 20, -20, 20};
  const std::vector<uint8_t> t = {1, 0, 1, 0};
  const LossValue g = bce_dice_ref<double>(4, good.data(), t.data(), {}, 1.0, nullptr);
  const LossValue b = bce_dice_ref<double>(4, bad.data(), t.data(), {}, 1.0, nullptr);
  EXPECT_NEAR(g.bce, 0.0, 1e-8);
  EXPECT_NEAR(g.dice, 0.0, 1e-6);
  EXPECT_NEAR(b.bce, 20.0, 1e-6);
  EXPECT_NEAR(b.dice, 1.0 - 1.0 / 5.0, 1e-6);  // (2*0 + 1) / (2 + 2 + 1)
}
