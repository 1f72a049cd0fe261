// Each reference op in f32, f16 and bf16 storage against the same op in
// double on the same rounded inputs, with the tolerance of ops/tolerance.h.
// This checks that 16-bit storage rounds where the design says it does
// (inputs, outputs) and nowhere else (accumulation stays f32). Sizes include
// odd widths, batch 1 and channel counts that are not multiples of the
// kernels' channel blocks.
#include <gtest/gtest.h>

#include "ops/add_ref.h"
#include "ops/batchnorm_ref.h"
#include "ops/concat_ref.h"
#include "ops/conv2d_ref.h"
#include "ops/loss_ref.h"
#include "ops/maxpool_ref.h"
#include "ops/relu_ref.h"
#include "ops/upsample_ref.h"
#include "test_util.h"

using namespace mixseg;
using namespace mixseg::test;

template <class T>
class OpPrecision : public ::testing::Test {};
using StorageTypes = ::testing::Types<float, f16, bf16>;
TYPED_TEST_SUITE(OpPrecision, StorageTypes);

TYPED_TEST(OpPrecision, Conv) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  for (const ConvShape s : {ConvShape{1, 7, 5, 3, 8, 3}, ConvShape{2, 4, 6, 16, 32, 3}, ConvShape{2, 5, 3, 24, 1, 1},
                            ConvShape{1, 3, 9, 5, 7, 3}}) {
    const auto x = random_vec(size_t(s.n) * s.h * s.w * s.cin, 1), w = random_vec(s.weight_numel(), 2);
    const auto g = random_vec(size_t(s.n) * s.h * s.w * s.cout, 3);
    const auto xt = to_storage<T>(x), wt = to_storage<T>(w), gt = to_storage<T>(g);
    const auto xr = to_double(xt), wr = to_double(wt), gr = to_double(gt);
    std::vector<T> y(g.size()), dx(x.size());
    std::vector<acc_t<T>> dw(w.size());
    std::vector<double> y_ref(g.size()), dx_ref(x.size()), dw_ref(w.size());
    conv2d_fwd_ref<T>(s, xt.data(), wt.data(), y.data());
    conv2d_fwd_ref<double>(s, xr.data(), wr.data(), y_ref.data());
    expect_close(to_double(y), y_ref, Op::conv2d_fwd, dt, size_t(s.k) * s.k * s.cin, "conv fwd");
    conv2d_bwd_data_ref<T>(s, gt.data(), wt.data(), dx.data());
    conv2d_bwd_data_ref<double>(s, gr.data(), wr.data(), dx_ref.data());
    expect_close(to_double(dx), dx_ref, Op::conv2d_bwd_data, dt, size_t(s.k) * s.k * s.cout, "conv bwd data");
    conv2d_bwd_weights_ref<T>(s, xt.data(), gt.data(), dw.data());
    conv2d_bwd_weights_ref<double>(s, xr.data(), gr.data(), dw_ref.data());
    // Weight gradients are stored in f32 whatever T is: only accumulation error.
    expect_close(to_double(dw), dw_ref, Op::conv2d_bwd_weights, DType::f32, size_t(s.n) * s.h * s.w, "conv bwd weights");
  }
}

TYPED_TEST(OpPrecision, BatchNorm) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const BatchNormShape s{3 * 5 * 7, 5};
  const auto xr = rounded<T>(random_vec(s.pixels * s.c, 4, -3, 5));
  const auto gr = rounded<T>(random_vec(s.pixels * s.c, 5));
  const std::vector<float> gamma = {1.0f, 0.5f, 2.0f, 1.5f, 0.75f}, beta = {0.0f, 0.1f, -0.2f, 0.3f, 1.0f};
  const std::vector<double> gamma_d(gamma.begin(), gamma.end()), beta_d(beta.begin(), beta.end());
  const auto xt = to_storage<T>(xr), gt = to_storage<T>(gr);
  std::vector<T> y(xr.size()), dx(xr.size());
  std::vector<float> mean(s.c), invstd(s.c), dgamma(s.c), dbeta(s.c);
  std::vector<double> y_ref(xr.size()), dx_ref(xr.size()), mean_d(s.c), invstd_d(s.c), dgamma_d(s.c), dbeta_d(s.c);
  batchnorm_fwd_train_ref<T>(s, xt.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(), nullptr, nullptr);
  batchnorm_fwd_train_ref<double>(s, xr.data(), gamma_d.data(), beta_d.data(), y_ref.data(), mean_d.data(),
                                  invstd_d.data(), nullptr, nullptr);
  expect_close(to_double(y), y_ref, Op::batchnorm_fwd_train, dt, s.pixels, "batchnorm fwd");
  batchnorm_bwd_ref<T>(s, gt.data(), xt.data(), mean.data(), invstd.data(), gamma.data(), dx.data(), dgamma.data(),
                       dbeta.data());
  batchnorm_bwd_ref<double>(s, gr.data(), xr.data(), mean_d.data(), invstd_d.data(), gamma_d.data(), dx_ref.data(),
                            dgamma_d.data(), dbeta_d.data());
  expect_close(to_double(dx), dx_ref, Op::batchnorm_bwd, dt, s.pixels, "batchnorm bwd dx");
  expect_close(to_double(dgamma), dgamma_d, Op::batchnorm_bwd, DType::f32, s.pixels, "batchnorm dgamma");
  expect_close(to_double(dbeta), dbeta_d, Op::batchnorm_bwd, DType::f32, s.pixels, "batchnorm dbeta");
}

TYPED_TEST(OpPrecision, ExactOps) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const Shape s{1, 6, 10, 3};
  const auto xr = rounded<T>(random_vec(s.numel(), 6));
  const auto xt = to_storage<T>(xr);
  std::vector<T> y(s.numel()), p(s.numel() / 4), up(s.numel() * 4), dx(s.numel());
  std::vector<double> y_ref(s.numel()), p_ref(p.size()), up_ref(up.size()), dx_ref(s.numel());
  relu_fwd_ref<T>(s.numel(), xt.data(), y.data());
  relu_fwd_ref<double>(s.numel(), xr.data(), y_ref.data());
  expect_close(to_double(y), y_ref, Op::relu_fwd, dt, 1, "relu");
  maxpool2x2_fwd_ref<T>(s, xt.data(), p.data());
  maxpool2x2_fwd_ref<double>(s, xr.data(), p_ref.data());
  expect_close(to_double(p), p_ref, Op::maxpool_fwd, dt, 4, "maxpool");
  const auto gr = rounded<T>(random_vec(p.size(), 7));
  const auto gt = to_storage<T>(gr);
  maxpool2x2_bwd_ref<T>(s, xt.data(), gt.data(), dx.data());
  maxpool2x2_bwd_ref<double>(s, xr.data(), gr.data(), dx_ref.data());
  expect_close(to_double(dx), dx_ref, Op::maxpool_bwd, dt, 4, "maxpool bwd");
  upsample2x_fwd_ref<T>(s, xt.data(), up.data());
  upsample2x_fwd_ref<double>(s, xr.data(), up_ref.data());
  expect_close(to_double(up), up_ref, Op::upsample_fwd, dt, 1, "upsample");
  std::vector<T> cat(s.numel() + p.size() * 0 + s.numel());
  std::vector<double> cat_ref(cat.size());
  concat_fwd_ref<T>(s.pixels(), s.c, s.c, xt.data(), y.data(), cat.data());
  concat_fwd_ref<double>(s.pixels(), s.c, s.c, xr.data(), y_ref.data(), cat_ref.data());
  expect_close(to_double(cat), cat_ref, Op::concat_fwd, dt, 1, "concat");
}

TYPED_TEST(OpPrecision, UpsampleBackwardAndAdd) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const Shape s{2, 3, 5, 4};
  const auto gr = rounded<T>(random_vec(s.numel() * 4, 8));
  const auto gt = to_storage<T>(gr);
  std::vector<T> dx(s.numel());
  std::vector<double> dx_ref(s.numel());
  upsample2x_bwd_ref<T>(s, gt.data(), dx.data());
  upsample2x_bwd_ref<double>(s, gr.data(), dx_ref.data());
  expect_close(to_double(dx), dx_ref, Op::upsample_bwd, dt, 4, "upsample bwd");
  std::vector<T> acc = dx;
  std::vector<double> acc_ref = to_double(dx);
  add_inplace_ref<T>(acc.size(), dx.data(), acc.data());
  add_inplace_ref<double>(acc_ref.size(), acc_ref.data(), acc_ref.data());
  expect_close(to_double(acc), acc_ref, Op::add, dt, 2, "add");
}

TYPED_TEST(OpPrecision, Loss) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const size_t n = 4096;
  const auto zr = rounded<T>(random_vec(n, 9, -6, 6));
  const auto zt = to_storage<T>(zr);
  std::vector<uint8_t> t(n);
  Rng r(10);
  for (auto& v : t) v = r.uniform() < 0.2;
  std::vector<T> dz(n);
  std::vector<double> dz_ref(n);
  // A loss scale keeps the tiny per-pixel gradients (~1/n) in f16's normal range.
  const double scale = 65536.0;
  const LossValue v = bce_dice_ref<T>(n, zt.data(), t.data(), {}, scale, dz.data());
  const LossValue v_ref = bce_dice_ref<double>(n, zr.data(), t.data(), {}, scale, dz_ref.data());
  EXPECT_NEAR(v.total, v_ref.total, 1e-12);  // computed in double from the same logits
  expect_close(to_double(dz), dz_ref, Op::loss, dt, 1, "loss gradient");
}
