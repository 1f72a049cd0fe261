// One op test over all backends (ggml's pattern): every op of the Backend
// interface, through each backend and each float storage dtype, against the
// double-precision reference kernels on the same rounded inputs, with the
// tolerance of ops/tolerance.h. Shapes include batch 1, odd H and W, and
// channel counts off the kernels' blocks (and oneDNN's).
#include <gtest/gtest.h>
#include <xmmintrin.h>

#include <cmath>
#include <cstring>

#include "core/backend.h"
#include "cpu/conv2d_winograd.h"
#include "ops/batchnorm_ref.h"
#include "ops/concat_ref.h"
#include "ops/conv2d_ref.h"
#include "ops/depth_to_space_ref.h"
#include "ops/loss_ref.h"
#include "ops/maxpool_ref.h"
#include "ops/upsample_ref.h"
#include "test_util.h"

using namespace mixseg;
using namespace mixseg::test;

namespace {

struct Case {
  std::string backend;
  DType dtype;
  ConvAlgorithm inference = ConvAlgorithm::fastest;  // the fast backend's convolutions
};
std::string case_name(const Case& c);
// GoogleTest prints the parameter next to each test's name (ctest's list too).
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

std::vector<double> round_to(DType dt, const std::vector<double>& v) {
  return dispatch_float(dt, [&]<class T>() { return rounded<T>(v); });
}

std::string case_name(const Case& c) {
  const char* algo = c.inference == ConvAlgorithm::direct        ? "_direct"
                     : c.inference == ConvAlgorithm::winograd    ? "_winograd"
                     : c.inference == ConvAlgorithm::winograd_f2 ? "_winograd_f2"
                     : c.inference == ConvAlgorithm::direct_banded ? "_direct_banded"
                                                                 : "";
  return c.backend + "_" + std::string(dtype_name(c.dtype)) + algo;
}

}  // namespace

class BackendOps : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (GetParam().backend == "cuda" && !gpu_available()) GTEST_SKIP() << "no CUDA GPU here (or no CUDA build)";
    be = GetParam().backend == "fast" ? make_fast_backend(GetParam().inference) : make_backend(GetParam().backend);
  }
  void batchnorm_and_relu(const Shape& s);
  void pool_upsample_concat_add(int channels);
  std::unique_ptr<Backend> be;
};

TEST_P(BackendOps, Convolutions) {
  const DType dt = GetParam().dtype;
  // The last two: batch 1 with heights the banded weight gradient cuts
  // (bands of 1 row: all halo; and 12 rows, which any band count up to 4
  // and 6 or 12 divide).
  for (const ConvShape s : {ConvShape{1, 7, 5, 3, 8, 3}, ConvShape{2, 6, 9, 16, 32, 3}, ConvShape{1, 5, 3, 24, 1, 1},
                            ConvShape{3, 4, 4, 5, 7, 3}, ConvShape{1, 16, 8, 1, 8, 3}, ConvShape{1, 2, 5, 4, 4, 3},
                            ConvShape{1, 12, 7, 8, 16, 3}}) {
    const Shape xs{s.n, s.h, s.w, s.cin}, ys{s.n, s.h, s.w, s.cout}, ws{s.cout, s.k, s.k, s.cin};
    const auto x = round_to(dt, random_vec(xs.numel(), 1)), w = round_to(dt, random_vec(ws.numel(), 2));
    const auto g = round_to(dt, random_vec(ys.numel(), 3));
    DeviceTensor X(*be, dt, xs, x), W(*be, dt, ws, w), G(*be, dt, ys, g), Y(*be, dt, ys), DX(*be, dt, xs),
        DW(*be, DType::f32, ws);
    std::vector<double> y_ref(ys.numel()), dx_ref(xs.numel()), dw_ref(ws.numel());
    conv2d_fwd_ref<double>(s, x.data(), w.data(), y_ref.data());
    conv2d_bwd_data_ref<double>(s, g.data(), w.data(), dx_ref.data());
    conv2d_bwd_weights_ref<double>(s, x.data(), g.data(), dw_ref.data());
    be->conv2d_fwd(X.t, W.t, Y.t);
    be->conv2d_bwd_data(G.t, W.t, DX.t);
    be->conv2d_bwd_weights(X.t, G.t, DW.t);
    const std::string what = "conv " + to_string(xs) + " k" + std::to_string(s.k) + " -> " + std::to_string(s.cout);
    expect_close(Y.download(), y_ref, Op::conv2d_fwd, dt, size_t(s.k) * s.k * s.cin, what + " fwd");
    expect_close(DX.download(), dx_ref, Op::conv2d_bwd_data, dt, size_t(s.k) * s.k * s.cout, what + " bwd data");
    // cuDNN writes weight gradients in the inputs' type (cuda/conv2d.h): one more rounding.
    const DType dw_rounding = GetParam().backend == "cuda" ? dt : DType::f32;
    expect_close(DW.download(), dw_ref, Op::conv2d_bwd_weights, dw_rounding, ys.pixels(), what + " bwd weights");
  }
  if (GetParam().inference == ConvAlgorithm::direct_banded) {  // it really ran
    const auto choices = be->choices();
    EXPECT_TRUE(std::any_of(choices.begin(), choices.end(),
                            [](const std::string& c) { return c.find("bwd_weights") == 0 && c.ends_with("direct_banded"); }));
  }
}

// Inference convolution with a folded BatchNorm's bias and the fused ReLU,
// on shapes where oneDNN has Winograd (channels multiples of 16) and where
// it has not; the forced-Winograd cases check that algorithm's accuracy.
TEST_P(BackendOps, ConvolutionWithBiasAndRelu) {
  const DType dt = GetParam().dtype;
  for (const ConvShape s : {ConvShape{1, 7, 5, 3, 8, 3}, ConvShape{2, 12, 20, 32, 32, 3}, ConvShape{1, 9, 7, 16, 48, 3},
                            ConvShape{1, 5, 3, 24, 1, 1}, ConvShape{1, 8, 8, 64, 128, 3}}) {
    const Shape xs{s.n, s.h, s.w, s.cin}, ys{s.n, s.h, s.w, s.cout}, ws{s.cout, s.k, s.k, s.cin};
    const auto x = round_to(dt, random_vec(xs.numel(), 11)), w = round_to(dt, random_vec(ws.numel(), 12));
    const auto bias_d = round_to(DType::f32, random_vec(size_t(s.cout), 13));
    const std::vector<float> bias(bias_d.begin(), bias_d.end());
    DeviceTensor X(*be, dt, xs, x), W(*be, dt, ws, w), Y(*be, dt, ys), B(*be, DType::f32, {1, 1, 1, s.cout}, bias_d);
    for (bool relu : {false, true}) {
      std::vector<double> y_ref(ys.numel());
      conv2d_fwd_ref<double>(s, x.data(), w.data(), y_ref.data(), bias.data(), relu);
      be->conv2d_fwd_bias(X.t, W.t, B.t.as<float>(), Y.t, relu);
      const std::string what = "conv+bias" + std::string(relu ? "+relu " : " ") + to_string(xs) + " k" +
                               std::to_string(s.k) + " -> " + std::to_string(s.cout);
      expect_close(Y.download(), y_ref, Op::conv2d_fwd_bias, dt, size_t(s.k) * s.k * s.cin, what);
      // Again after new weights: a backend caching transformed weights must see them.
      const auto w2 = round_to(dt, random_vec(ws.numel(), 14));
      W.upload(w2);
      conv2d_fwd_ref<double>(s, x.data(), w2.data(), y_ref.data(), bias.data(), relu);
      be->conv2d_fwd_bias(X.t, W.t, B.t.as<float>(), Y.t, relu);
      expect_close(Y.download(), y_ref, Op::conv2d_fwd_bias, dt, size_t(s.k) * s.k * s.cin, what + " new weights");
      W.upload(w);
    }
    // Without a bias.
    std::vector<double> y_ref(ys.numel());
    conv2d_fwd_ref<double>(s, x.data(), w.data(), y_ref.data(), nullptr, true);
    be->conv2d_fwd_bias(X.t, W.t, nullptr, Y.t, true);
    expect_close(Y.download(), y_ref, Op::conv2d_fwd_bias, dt, size_t(s.k) * s.k * s.cin, "conv+relu, no bias");
  }
  // Forced Winograd must really have run where oneDNN has it (AVX-512 CPUs),
  // and so must the own kernel where this CPU runs it.
  const auto choices = be->choices();
  auto chose = [&](const std::string& what) {
    return std::any_of(choices.begin(), choices.end(),
                       [&](const std::string& c) { return c.find(what) != std::string::npos; });
  };
  if (GetParam().inference == ConvAlgorithm::winograd && __builtin_cpu_supports("avx512f")) {
    EXPECT_TRUE(chose("winograd"));
  }
  if (GetParam().inference == ConvAlgorithm::winograd_f2 && winograd_f2_available()) {
    EXPECT_TRUE(chose("winograd_f2"));
  }
}

// Channel counts: 12 (no fast path), 8 and 32 (the fast CPU kernels' compile-time
// counts); 126 and 130 pixels cross the fast kernels' 64-pixel blocks, ending in a partial one;
// 300 channels take two chunks of the CUDA kernels' 256-channel tiling, the second partial.
TEST_P(BackendOps, BatchNormAndRelu) {
  for (const Shape s : {Shape{2, 5, 3, 12}, Shape{2, 9, 7, 8}, Shape{1, 10, 13, 32}, Shape{1, 3, 5, 300}}) {
    SCOPED_TRACE(to_string(s));
    batchnorm_and_relu(s);
  }
}

void BackendOps::batchnorm_and_relu(const Shape& s) {
  const DType dt = GetParam().dtype;
  const int C = s.c;
  const auto x = round_to(dt, random_vec(s.numel(), 4, -2, 3)), g = round_to(dt, random_vec(s.numel(), 5));
  // BatchNorm's f32 state lives in the backend's memory (device memory on a GPU).
  std::vector<double> gd(C), bd(C);
  for (int c = 0; c < C; ++c) gd[c] = 0.5 + 0.1 * c, bd[c] = 0.05 * c - 0.3;
  gd = round_to(DType::f32, gd), bd = round_to(DType::f32, bd);
  const Shape cs{1, 1, 1, C};
  DeviceTensor GAMMA(*be, DType::f32, cs, gd), BETA(*be, DType::f32, cs, bd),
      RM(*be, DType::f32, cs, std::vector<double>(C, 0.0)), RV(*be, DType::f32, cs, std::vector<double>(C, 1.0)),
      MEAN(*be, DType::f32, cs), INVSTD(*be, DType::f32, cs), DGAMMA(*be, DType::f32, cs), DBETA(*be, DType::f32, cs);
  DeviceTensor X(*be, dt, s, x), G(*be, dt, s, g), Y(*be, dt, s), DX(*be, dt, s);
  const BatchNormState st{GAMMA.t.as<float>(), BETA.t.as<float>(), RM.t.as<float>(),
                          RV.t.as<float>(),    MEAN.t.as<float>(), INVSTD.t.as<float>()};
  float* dgamma = DGAMMA.t.as<float>();
  float* dbeta = DBETA.t.as<float>();
  be->batchnorm_fwd_train(X.t, st, Y.t, false);
  be->batchnorm_bwd(G.t, nullptr, X.t, st, DX.t, dgamma, dbeta);
  const BatchNormShape bs{s.pixels(), s.c};
  std::vector<double> y_ref(s.numel()), dx_ref(s.numel()), m(C), is(C), dg(C), db(C);
  batchnorm_fwd_train_ref<double>(bs, x.data(), gd.data(), bd.data(), y_ref.data(), m.data(), is.data(), nullptr,
                                  nullptr);
  batchnorm_bwd_ref<double>(bs, g.data(), x.data(), m.data(), is.data(), gd.data(), dx_ref.data(), dg.data(),
                            db.data());
  expect_close(Y.download(), y_ref, Op::batchnorm_fwd_train, dt, s.pixels(), "batchnorm fwd");
  expect_close(DX.download(), dx_ref, Op::batchnorm_bwd, dt, s.pixels(), "batchnorm bwd");
  expect_close(DGAMMA.download(), dg, Op::batchnorm_bwd, DType::f32, s.pixels(), "dgamma");
  // ReLU alone (in place on the BatchNorm output), and its backward from the output.
  const auto y_bn = Y.download();
  be->relu_fwd(Y.t, Y.t);
  auto y_relu = y_bn;
  for (auto& v : y_relu) v = std::max(v, 0.0);
  expect_close(Y.download(), y_relu, Op::relu_fwd, dt, 1, "relu");
  DeviceTensor DR(*be, dt, s);
  be->relu_bwd(G.t, Y.t, DR.t);
  std::vector<double> dr(s.numel());
  for (size_t i = 0; i < dr.size(); ++i) dr[i] = y_relu[i] > 0 ? g[i] : 0.0;
  expect_close(DR.download(), dr, Op::relu_bwd, dt, 1, "relu bwd");
  // Fused BatchNorm + ReLU, forward and backward, against the reference of the fused op.
  std::vector<double> yf_ref(s.numel()), dxf_ref(s.numel());
  DeviceTensor YF(*be, dt, s), DXF(*be, dt, s);
  be->batchnorm_fwd_train(X.t, st, YF.t, true);
  const auto yf = YF.download();
  for (size_t i = 0; i < yf.size(); ++i) yf_ref[i] = std::max(y_ref[i], 0.0);
  expect_close(yf, yf_ref, Op::batchnorm_fwd_train, dt, s.pixels(), "batchnorm+relu fwd");
  be->batchnorm_bwd(G.t, &YF.t, X.t, st, DXF.t, dgamma, dbeta);
  // The mask comes from the backend's own forward output (exactly zero or not).
  batchnorm_bwd_ref<double>(bs, g.data(), x.data(), m.data(), is.data(), gd.data(), dxf_ref.data(), dg.data(), db.data(),
                            yf.data());
  expect_close(DXF.download(), dxf_ref, Op::batchnorm_bwd, dt, s.pixels(), "batchnorm+relu bwd");
  expect_close(DBETA.download(), db, Op::batchnorm_bwd, DType::f32, s.pixels(), "dbeta (fused)");
  // With room for the forward's factors (as training workspaces give), a
  // backend may take the mask from x and them instead of the output: the
  // same forward and the same gradients, bit for bit.
  const auto dxf = DXF.download(), dgf = DGAMMA.download(), dbf = DBETA.download();
  DeviceTensor SCALE(*be, DType::f32, cs), SHIFT(*be, DType::f32, cs), DXK(*be, dt, s), YK(*be, dt, s);
  BatchNormState kept = st;
  kept.save_scale = SCALE.t.as<float>();
  kept.save_shift = SHIFT.t.as<float>();
  be->batchnorm_fwd_train(X.t, kept, YK.t, true);
  EXPECT_EQ(YK.download(), yf) << "forward with the factors kept";
  be->batchnorm_bwd(G.t, &YK.t, X.t, kept, DXK.t, dgamma, dbeta);
  EXPECT_EQ(DXK.download(), dxf) << "backward, mask from the factors";
  EXPECT_EQ(DGAMMA.download(), dgf);
  EXPECT_EQ(DBETA.download(), dbf);
}

// 5 channels (one at a time in CUDA) and 16 (whole CUDA channel vectors, the
// fast CPU kernels' 8-channel vectors).
TEST_P(BackendOps, PoolUpsampleConcatAdd) {
  for (const int ch : {5, 16}) {
    SCOPED_TRACE(std::to_string(ch) + " channels");
    pool_upsample_concat_add(ch);
  }
}

void BackendOps::pool_upsample_concat_add(int ch) {
  const DType dt = GetParam().dtype;
  const Shape s{1, 6, 10, ch}, p{1, 3, 5, ch}, u{1, 12, 20, ch}, c{1, 6, 10, 2 * ch};
  const auto x = round_to(dt, random_vec(s.numel(), 6)), gp = round_to(dt, random_vec(p.numel(), 7));
  const auto gu = round_to(dt, random_vec(u.numel(), 8)), gc = round_to(dt, random_vec(c.numel(), 9));
  DeviceTensor X(*be, dt, s, x), GP(*be, dt, p, gp), GU(*be, dt, u, gu), GC(*be, dt, c, gc), P(*be, dt, p),
      DX(*be, dt, s), U(*be, dt, u), C(*be, dt, c), DA(*be, dt, s), DB(*be, dt, s);
  std::vector<double> p_ref(p.numel()), dx_ref(s.numel()), u_ref(u.numel()), du_ref(s.numel()), c_ref(c.numel()),
      da_ref(s.numel()), db_ref(s.numel());
  be->maxpool_fwd(X.t, P.t);
  maxpool2x2_fwd_ref<double>(s, x.data(), p_ref.data());
  expect_close(P.download(), p_ref, Op::maxpool_fwd, dt, 4, "maxpool");
  be->maxpool_bwd(X.t, GP.t, DX.t, false);
  maxpool2x2_bwd_ref<double>(s, x.data(), gp.data(), dx_ref.data());
  expect_close(DX.download(), dx_ref, Op::maxpool_bwd, dt, 4, "maxpool bwd");
  {  // accumulating: bit for bit the gradient written elsewhere, then added
    const auto d0 = round_to(dt, random_vec(s.numel(), 11));
    DeviceTensor ACC(*be, dt, s, d0), SUM(*be, dt, s, d0);
    be->maxpool_bwd(X.t, GP.t, ACC.t, true);
    be->add_inplace(DX.t, SUM.t);
    EXPECT_EQ(ACC.download(), SUM.download()) << "maxpool bwd, accumulating";
  }
  be->upsample_fwd(X.t, U.t);
  upsample2x_fwd_ref<double>(s, x.data(), u_ref.data());
  expect_close(U.download(), u_ref, Op::upsample_fwd, dt, 1, "upsample");
  be->upsample_bwd(GU.t, DX.t);
  upsample2x_bwd_ref<double>(s, gu.data(), du_ref.data());
  expect_close(DX.download(), du_ref, Op::upsample_bwd, dt, 4, "upsample bwd");
  {  // 16 channels (the fast CPU kernel's 8-channel vectors), two images
    const Shape s16{2, 3, 4, 16}, u16{2, 6, 8, 16};
    const auto g16 = round_to(dt, random_vec(u16.numel(), 10));
    DeviceTensor G16(*be, dt, u16, g16), D16(*be, dt, s16);
    std::vector<double> d16_ref(s16.numel());
    be->upsample_bwd(G16.t, D16.t);
    upsample2x_bwd_ref<double>(s16, g16.data(), d16_ref.data());
    expect_close(D16.download(), d16_ref, Op::upsample_bwd, dt, 4, "upsample bwd, 16 channels");
  }
  be->concat_fwd(X.t, DX.t, C.t);
  concat_fwd_ref<double>(s.pixels(), ch, ch, x.data(), DX.download().data(), c_ref.data());
  expect_close(C.download(), c_ref, Op::concat_fwd, dt, 1, "concat");
  be->concat_bwd(GC.t, DA.t, DB.t);
  concat_bwd_ref<double>(s.pixels(), ch, ch, gc.data(), da_ref.data(), db_ref.data());
  expect_close(DA.download(), da_ref, Op::concat_bwd, dt, 1, "concat bwd a");
  expect_close(DB.download(), db_ref, Op::concat_bwd, dt, 1, "concat bwd b");
  auto sum = da_ref;
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += db_ref[i];
  be->add_inplace(DA.t, DB.t);
  expect_close(DB.download(), sum, Op::add, dt, 2, "add");
}

// The ops listed under Op::channel_slices, on channel slices of a wider
// tensor (how a training workspace keeps a skip connection and the upsampled
// tensor inside their concat buffer): bit for bit what the same backend
// computes on dense tensors (checked against the reference above), and the
// wider tensor's other channels untouched. Slices at channel 3 of 13, 260
// channels at 20 of 300 (two chunks of the CUDA channel tiling; whole CUDA
// channel vectors in f32 only), 32 at 16 of 64 (whole vectors in every
// dtype) and 8 at 4 of 24 (whole vectors, but 16-bit ones start off their
// 16-byte alignment: CUDA takes them one channel at a time). Where a
// backend takes no slices, or an operand is not one the list names, a slice
// is refused by name rather than read as if dense.
TEST_P(BackendOps, ChannelSlices) {
  const DType dt = GetParam().dtype;
  {
    DeviceTensor wide(*be, dt, {1, 4, 4, 6}), low_wide(*be, dt, {1, 2, 2, 6}), low(*be, dt, {1, 2, 2, 3}),
        full(*be, dt, {1, 4, 4, 3});
    const Tensor slice = wide.t.channels(3, 3), low_slice = low_wide.t.channels(3, 3);
    const std::string refused = "got a channel slice";
    expect_error_containing([&] { be->maxpool_fwd(full.t, low_slice); }, refused);   // y: never a slice
    expect_error_containing([&] { be->upsample_bwd(full.t, low_slice); }, refused);  // dx: never a slice
    DeviceTensor low12(*be, dt, {1, 2, 2, 12}), low_wide24(*be, dt, {1, 2, 2, 24});
    expect_error_containing([&] { be->depth_to_space_fwd(low_wide24.t.channels(0, 12), full.t); }, refused);  // x
    expect_error_containing([&] { be->depth_to_space_bwd(full.t, low_wide24.t.channels(0, 12)); }, refused);  // dx
    expect_error_containing([&] { be->relu_fwd(slice, full.t); }, refused);          // not a skip op
    expect_error_containing([&] { be->concat_fwd(slice, full.t, wide.t); }, refused);
    if (!be->supports(Op::channel_slices, dt)) {
      expect_error_containing([&] { be->maxpool_fwd(slice, low.t); }, refused);
      expect_error_containing([&] { be->upsample_fwd(low.t, slice); }, refused);
      expect_error_containing([&] { be->depth_to_space_fwd(low12.t, slice); }, refused);
      GTEST_SKIP() << "this backend takes dense tensors only (and refuses slices)";
    }
  }
  for (const auto& [c0, c, wide] :
       {std::tuple{3, 5, 13}, std::tuple{20, 260, 300}, std::tuple{16, 32, 64}, std::tuple{4, 8, 24}}) {
    SCOPED_TRACE("channels " + std::to_string(c0) + ".." + std::to_string(c0 + c) + " of " + std::to_string(wide));
    const Shape s{2, 6, 10, c}, sw{2, 6, 10, wide}, low{2, 3, 5, c};
    uint64_t seed = 40;
    auto values = [&](const Shape& sh) { return round_to(dt, random_vec(sh.numel(), ++seed, -2, 2)); };
    // The slice's values of a wide tensor's contents, and those contents with the slice's replaced.
    auto slice_of = [&](const std::vector<double>& w) {
      std::vector<double> v(s.numel());
      for (size_t p = 0; p < s.pixels(); ++p)
        for (int k = 0; k < c; ++k) v[p * size_t(c) + size_t(k)] = w[p * size_t(wide) + size_t(c0 + k)];
      return v;
    };
    auto with_slice = [&](std::vector<double> w, const std::vector<double>& v) {
      for (size_t p = 0; p < s.pixels(); ++p)
        for (int k = 0; k < c; ++k) w[p * size_t(wide) + size_t(c0 + k)] = v[p * size_t(c) + size_t(k)];
      return w;
    };
    const auto x = values(s), dy = values(s), dlow = values(low), xlow = values(low), w0 = values(sw), w1 = values(sw);
    DeviceTensor XW(*be, dt, sw, with_slice(w0, x)), DYW(*be, dt, sw, with_slice(w1, dy)), X(*be, dt, s, x),
        DY(*be, dt, s, dy), DLOW(*be, dt, low, dlow), XLOW(*be, dt, low, xlow);
    const Tensor xs = XW.t.channels(c0, c), dys = DYW.t.channels(c0, c);
    {  // max pooling reads x through the slice
      DeviceTensor PD(*be, dt, low), PS(*be, dt, low), DXD(*be, dt, s), DXS(*be, dt, s);
      be->maxpool_fwd(X.t, PD.t);
      be->maxpool_fwd(xs, PS.t);
      EXPECT_EQ(PS.download(), PD.download()) << "maxpool_fwd";
      be->maxpool_bwd(X.t, DLOW.t, DXD.t, false);
      be->maxpool_bwd(xs, DLOW.t, DXS.t, false);
      EXPECT_EQ(DXS.download(), DXD.download()) << "maxpool_bwd";
      // Accumulating into a slice (the skip's gradient inside its concat's).
      DeviceTensor AD(*be, dt, s, dy), AW(*be, dt, sw, with_slice(w1, dy));
      be->maxpool_bwd(X.t, DLOW.t, AD.t, true);
      be->maxpool_bwd(xs, DLOW.t, AW.t.channels(c0, c), true);
      EXPECT_EQ(AW.download(), with_slice(w1, AD.download())) << "maxpool_bwd, accumulating";
    }
    {  // upsampling writes its output into the slice and reads its gradient from one
      DeviceTensor UD(*be, dt, s), UW(*be, dt, sw, w0), DD(*be, dt, low), DS(*be, dt, low);
      be->upsample_fwd(XLOW.t, UD.t);
      be->upsample_fwd(XLOW.t, UW.t.channels(c0, c));
      EXPECT_EQ(UW.download(), with_slice(w0, UD.download())) << "upsample_fwd";
      be->upsample_bwd(DY.t, DD.t);
      be->upsample_bwd(dys, DS.t);
      EXPECT_EQ(DS.download(), DD.download()) << "upsample_bwd";
    }
    {  // the transposed upsampling's move likewise
      const Shape low4{2, 3, 5, 4 * c};
      DeviceTensor X4(*be, dt, low4, values(low4)), MD(*be, dt, s), MW(*be, dt, sw, w0), BD(*be, dt, low4),
          BS(*be, dt, low4);
      be->depth_to_space_fwd(X4.t, MD.t);
      be->depth_to_space_fwd(X4.t, MW.t.channels(c0, c));
      EXPECT_EQ(MW.download(), with_slice(w0, MD.download())) << "depth_to_space_fwd";
      be->depth_to_space_bwd(DY.t, BD.t);
      be->depth_to_space_bwd(dys, BS.t);
      EXPECT_EQ(BS.download(), BD.download()) << "depth_to_space_bwd";
    }
    {  // the gradient add accumulates into a slice
      DeviceTensor YD(*be, dt, s, dy), YW(*be, dt, sw, with_slice(w1, dy));
      be->add_inplace(X.t, YD.t);
      be->add_inplace(X.t, YW.t.channels(c0, c));
      EXPECT_EQ(YW.download(), with_slice(w1, YD.download())) << "add";
    }
    // BatchNorm + ReLU writes its output into the slice; its backward reads
    // dy (and the output for the mask) through slices, with and without the
    // forward's factors kept.
    std::vector<double> gd(static_cast<size_t>(c)), bd(static_cast<size_t>(c));
    for (int k = 0; k < c; ++k) gd[size_t(k)] = 0.5 + 0.01 * k, bd[size_t(k)] = 0.2 - 0.003 * k;
    const Shape cs{1, 1, 1, c};
    DeviceTensor GAMMA(*be, DType::f32, cs, round_to(DType::f32, gd)),
        BETA(*be, DType::f32, cs, round_to(DType::f32, bd)),
        RM(*be, DType::f32, cs, std::vector<double>(size_t(c), 0.0)),
        RV(*be, DType::f32, cs, std::vector<double>(size_t(c), 1.0)), MEAN(*be, DType::f32, cs),
        INVSTD(*be, DType::f32, cs), SCALE(*be, DType::f32, cs), SHIFT(*be, DType::f32, cs), DG(*be, DType::f32, cs),
        DB(*be, DType::f32, cs);
    for (const bool keep : {false, true}) {
      SCOPED_TRACE(keep ? "factors kept" : "mask from the output");
      BatchNormState st{GAMMA.t.as<float>(), BETA.t.as<float>(), RM.t.as<float>(),
                        RV.t.as<float>(),    MEAN.t.as<float>(), INVSTD.t.as<float>()};
      if (keep) st.save_scale = SCALE.t.as<float>(), st.save_shift = SHIFT.t.as<float>();
      DeviceTensor YD(*be, dt, s), YW(*be, dt, sw, w0), DXD(*be, dt, s), DXS(*be, dt, s);
      be->batchnorm_fwd_train(X.t, st, YD.t, true);
      be->batchnorm_fwd_train(X.t, st, YW.t.channels(c0, c), true);
      const auto yd = YD.download();
      EXPECT_EQ(YW.download(), with_slice(w0, yd)) << "batchnorm_fwd_train";
      be->batchnorm_bwd(DY.t, &YD.t, X.t, st, DXD.t, DG.t.as<float>(), DB.t.as<float>());
      const auto dgd = DG.download(), dbd = DB.download();
      const Tensor ys = YW.t.channels(c0, c);
      be->batchnorm_bwd(dys, &ys, X.t, st, DXS.t, DG.t.as<float>(), DB.t.as<float>());
      EXPECT_EQ(DXS.download(), DXD.download()) << "batchnorm_bwd dx";
      EXPECT_EQ(DG.download(), dgd) << "batchnorm_bwd dgamma";
      EXPECT_EQ(DB.download(), dbd) << "batchnorm_bwd dbeta";
      EXPECT_EQ(slice_of(YW.download()), yd);
    }
  }
}

// The decoder's fused upsample + concat against the two reference ops, and
// concat alone, with channel counts across the 32-byte copy blocks (and 300,
// two chunks of the CUDA kernels' channel tiling).
TEST_P(BackendOps, UpsampleConcatFused) {
  const DType dt = GetParam().dtype;
  for (const auto& [cx, cs] : {std::pair{13, 24}, std::pair{1, 7}, std::pair{32, 16}, std::pair{200, 100}}) {
    const Shape xs{2, 3, 5, cx}, us{2, 6, 10, cx}, ss{2, 6, 10, cs}, ys{2, 6, 10, cx + cs};
    const auto x = round_to(dt, random_vec(xs.numel(), 21)), sk = round_to(dt, random_vec(ss.numel(), 22));
    DeviceTensor X(*be, dt, xs, x), S(*be, dt, ss, sk), Y(*be, dt, ys), U(*be, dt, us, round_to(dt, random_vec(us.numel(), 23))),
        C(*be, dt, ys);
    std::vector<double> u_ref(us.numel()), y_ref(ys.numel());
    upsample2x_fwd_ref<double>(xs, x.data(), u_ref.data());
    concat_fwd_ref<double>(us.pixels(), cx, cs, u_ref.data(), sk.data(), y_ref.data());
    be->upsample_concat_fwd(X.t, S.t, Y.t);
    const std::string what = "upsample+concat " + std::to_string(cx) + "+" + std::to_string(cs);
    expect_close(Y.download(), y_ref, Op::upsample_concat_fwd, dt, 1, what);
    U.upload(u_ref);
    be->concat_fwd(U.t, S.t, C.t);
    expect_close(C.download(), y_ref, Op::concat_fwd, dt, 1, "concat " + std::to_string(cx) + "+" + std::to_string(cs));
  }
}

// 2x2 depth-to-space (the transposed-convolution upsampling's move) and its
// backward: exactly the reference's output, and the backward gives the input
// back. Output channels 1, 3, 8 and 40 (CUDA moves 16-byte vectors where the
// channels allow, one value elsewhere), batch 1 and 2, odd sizes; shapes
// that are not [N,H,W,4C] -> [N,2H,2W,C] are refused by name.
TEST_P(BackendOps, DepthToSpace) {
  const DType dt = GetParam().dtype;
  for (const auto& [n, c] : {std::pair{1, 1}, std::pair{2, 3}, std::pair{1, 8}, std::pair{2, 40}}) {
    const Shape xs{n, 3, 5, 4 * c}, ys{n, 6, 10, c};
    const auto x = round_to(dt, random_vec(xs.numel(), 31));
    DeviceTensor X(*be, dt, xs, x), Y(*be, dt, ys), DX(*be, dt, xs);
    std::vector<double> y_ref(ys.numel());
    depth_to_space2x2_fwd_ref<double>(xs, x.data(), y_ref.data(), size_t(c));
    be->depth_to_space_fwd(X.t, Y.t);
    const std::string what = std::to_string(n) + "x3x5x" + std::to_string(4 * c);
    expect_close(Y.download(), y_ref, Op::depth_to_space_fwd, dt, 1, "depth_to_space " + what);
    be->depth_to_space_bwd(Y.t, DX.t);
    expect_close(DX.download(), x, Op::depth_to_space_bwd, dt, 1, "depth_to_space bwd " + what);
  }
  // The reference itself, on one pixel of 4 channels: positions (0,0), (0,1), (1,0), (1,1).
  const std::vector<double> px{1, 2, 3, 4};
  std::vector<double> block(4);
  depth_to_space2x2_fwd_ref<double>({1, 1, 1, 4}, px.data(), block.data(), 1);
  EXPECT_EQ(block, px) << "row-major 2x2 block: channel p goes to (p / 2, p % 2)";
  DeviceTensor X(*be, dt, {1, 3, 5, 6}), Y(*be, dt, {1, 6, 10, 2}), Z(*be, dt, {1, 6, 10, 3});
  test::expect_error_containing([&] { be->depth_to_space_fwd(X.t, Y.t); }, "depth_to_space_fwd");
  DeviceTensor X8(*be, dt, {1, 3, 5, 8});
  test::expect_error_containing([&] { be->depth_to_space_fwd(X8.t, Z.t); }, "does not move to");
}

// Inference's decoder step: upsample + concat + conv + bias + ReLU in one op
// (fused where the backend has a kernel for it, the default elsewhere).
TEST_P(BackendOps, UpsampleConcatConvolution) {
  const DType dt = GetParam().dtype;
  for (const auto& [cx, cs, cout] : {std::tuple{16, 16, 16}, std::tuple{8, 8, 8}, std::tuple{5, 7, 3}}) {
    const Shape xs{2, 3, 5, cx}, ss{2, 6, 10, cs}, cat_s{2, 6, 10, cx + cs}, ys{2, 6, 10, cout};
    const ConvShape c{2, 6, 10, cx + cs, cout, 3};
    const Shape ws_shape{cout, 3, 3, cx + cs};
    const auto x = round_to(dt, random_vec(xs.numel(), 31)), sk = round_to(dt, random_vec(ss.numel(), 32));
    const auto w = round_to(dt, random_vec(ws_shape.numel(), 33));
    const auto bias_d = round_to(DType::f32, random_vec(size_t(cout), 34));
    const std::vector<float> bias(bias_d.begin(), bias_d.end());
    DeviceTensor X(*be, dt, xs, x), S(*be, dt, ss, sk), CAT(*be, dt, cat_s), W(*be, dt, ws_shape, w), Y(*be, dt, ys),
        B(*be, DType::f32, {1, 1, 1, cout}, bias_d);
    std::vector<double> cat(cat_s.numel()), y_ref(ys.numel());
    upsample2x_concat_fwd_ref<double>(xs, x.data(), sk.data(), cs, cat.data());
    conv2d_fwd_ref<double>(c, cat.data(), w.data(), y_ref.data(), bias.data(), true);
    be->upsample_concat_conv2d_fwd_bias(X.t, S.t, CAT.t, W.t, B.t.as<float>(), Y.t, true);
    expect_close(Y.download(), y_ref, Op::conv2d_fwd_bias, dt, size_t(9) * (cx + cs),
                 "upsample+concat+conv " + std::to_string(cx) + "+" + std::to_string(cs) + " -> " + std::to_string(cout));
  }
}

TEST_P(BackendOps, Loss) {
  const DType dt = GetParam().dtype;
  const Shape s{2, 9, 7, 1};
  const auto z = round_to(dt, random_vec(s.numel(), 10, -5, 5));
  std::vector<uint8_t> t(s.numel());
  for (size_t i = 0; i < t.size(); ++i) t[i] = z[i] + 0.3 * std::sin(double(i)) > 0.5;
  DeviceTensor Z(*be, dt, s, z), DZ(*be, dt, s);
  std::vector<double> dz_ref(s.numel());
  const LossValue v = compute_loss(*be, Z.t, t.data(), {}, 1024.0, &DZ.t);
  const LossValue v_ref = bce_dice_ref<double>(s.numel(), z.data(), t.data(), {}, 1024.0, dz_ref.data());
  EXPECT_NEAR(v.total, v_ref.total, 1e-9);
  expect_close(DZ.download(), dz_ref, Op::loss, dt, 1, "loss gradient");
}

// Conversion f32 -> storage type -> f32, bit for bit against dtype.h's
// (round to nearest even): ties, values between the two 16-bit types'
// ranges, f16 subnormals, signed zeros, infinities and a NaN; odd length.
TEST_P(BackendOps, ConvertRoundsLikeTheReference) {
  const DType dt = GetParam().dtype;
  std::vector<float> x;
  for (double v : random_vec(997, 41, -3, 3)) x.push_back(float(v));
  const float specials[] = {1.0f + 0x1p-11f, 1.0f + 0x1p-8f,  1.0f + 3 * 0x1p-11f, 65504.0f, 65520.0f, 1e-7f,
                            -3e-6f,          0x1p-24f,        0.0f,                -0.0f,    1e30f,    -1e30f,
                            INFINITY,        -INFINITY,       NAN};
  x.insert(x.begin() + 5, std::begin(specials), std::end(specials));
  const Shape s{1, 1, 1, int(x.size())};
  DeviceTensor X(*be, DType::f32, s), Y(*be, dt, s), Z(*be, DType::f32, s);
  be->copy_in(X.t.data, x.data(), x.size() * sizeof(float));
  be->convert(X.t, Y.t);
  be->convert(Y.t, Z.t);
  dispatch_float(dt, [&]<class T>() {
    std::vector<T> y(x.size()), y_ref(x.size());
    std::vector<float> z(x.size()), z_ref(x.size());
    narrow(x.data(), y_ref.data(), x.size());
    widen(y_ref.data(), z_ref.data(), x.size());
    be->copy_out(y.data(), Y.t.data, y.size() * sizeof(T));
    be->copy_out(z.data(), Z.t.data, z.size() * sizeof(float));
    for (size_t i = 0; i < x.size(); ++i) {
      const bool nan = std::isnan(z_ref[i]);
      if (nan) {
        EXPECT_TRUE(std::isnan(z[i])) << "element " << i;
        continue;
      }
      EXPECT_EQ(std::memcmp(&y[i], &y_ref[i], sizeof(T)), 0) << dtype_name(dt) << " element " << i << " = " << x[i];
      EXPECT_EQ(f32_bits(z[i]), f32_bits(z_ref[i])) << dtype_name(dt) << " element " << i << " = " << x[i];
    }
  });
}

namespace {

// Adam in double on the same f32 inputs: the rule of core/step_control.h
// without its f32 arithmetic (its per-element constants are f32, as there;
// the bias corrections use the exact betas).
void adam_double(double lr, double b1, double b2, double eps, int64_t step, double gs, std::vector<double>& p,
                 const std::vector<double>& g, std::vector<double>& m, std::vector<double>& v) {
  const double bc1 = 1 - std::pow(b1, double(step)), bc2 = 1 - std::pow(b2, double(step));
  const double b1f = float(b1), b2f = float(b2), epsf = float(eps);
  for (size_t i = 0; i < p.size(); ++i) {
    const double gi = g[i] * gs;
    m[i] = b1f * m[i] + (1 - b1f) * gi;
    v[i] = b2f * v[i] + (1 - b2f) * gi * gi;
    p[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + epsf);
  }
}

}  // namespace

// The fused optimizer step (Backend::optimizer_step) over a flat buffer of
// odd length: applied steps against Adam in double (masters and moments),
// the storage copy equal to the new masters rounded; the loss scaler's
// decisions (growth after growth_interval clean steps, back-off and a skip
// leaving every value untouched on an inf gradient or a NaN loss).
TEST_P(BackendOps, OptimizerStepUpdatesAndDecides) {
  const DType dt = GetParam().dtype;
  const size_t n = 1001;
  const Shape flat{1, 1, 1, int(n)};
  const auto p0 = round_to(DType::f32, random_vec(n, 51)), g0 = round_to(DType::f32, random_vec(n, 52, -300, 300));
  DeviceTensor P(*be, DType::f32, flat, p0), G(*be, DType::f32, flat, g0), M(*be, DType::f32, flat, std::vector<double>(n, 0.0)),
      V(*be, DType::f32, flat, std::vector<double>(n, 0.0)), S(*be, dt, flat),
      C(*be, DType::u8, {1, 1, 1, int(sizeof(StepControl))});
  const Tensor storage = dt == DType::f32 ? Tensor{nullptr, dt, flat} : S.t;
  UpdateRule rule;
  rule.scaling = 1;
  rule.growth_interval = 2;
  StepControl c;
  c.lr = 1e-2;
  c.scale = 256;
  be->copy_in(C.t.data, &c, sizeof c);
  auto* ctl = static_cast<StepControl*>(C.t.data);
  auto step = [&] {
    be->optimizer_step(rule, ctl, P.t.as<float>(), G.t.as<float>(), M.t.as<float>(), V.t.as<float>(), n, storage);
    be->copy_out(&c, ctl, sizeof c);
  };
  std::vector<double> p = p0, m(n, 0.0), v(n, 0.0);
  for (int k = 1; k <= 3; ++k) {  // three clean steps: the scale grows after the second
    const double scale = c.scale;
    step();
    EXPECT_TRUE(c.applied && !c.nonfinite) << "step " << k;
    EXPECT_EQ(c.scale_used, scale);
    EXPECT_EQ(c.optimizer_steps, k);
    EXPECT_EQ(c.scale, k == 2 ? 512.0 : scale) << "step " << k;
    adam_double(1e-2, rule.beta1, rule.beta2, rule.eps, k, 1.0 / scale, p, g0, m, v);
    const std::string what = "Adam step " + std::to_string(k);
    expect_close(P.download(), p, Op::optimizer_step, DType::f32, 1, what + " masters");
    expect_close(M.download(), m, Op::optimizer_step, DType::f32, 1, what + " first moment");
    expect_close(V.download(), v, Op::optimizer_step, DType::f32, 1, what + " second moment");
    if (storage.data) {
      const auto masters = P.download();
      EXPECT_EQ(S.download(), round_to(dt, masters)) << what << " storage copy";
    }
  }
  const auto p_before = P.download(), m_before = M.download();
  // An inf gradient: skipped, the scale halves, nothing else changes.
  auto g_bad = g0;
  g_bad[n / 2] = INFINITY;
  G.upload(g_bad);
  step();
  EXPECT_TRUE(!c.applied && c.nonfinite);
  EXPECT_EQ(c.scale, 256.0);
  EXPECT_EQ(c.skipped_steps, 1);
  EXPECT_EQ(c.optimizer_steps, 3);
  EXPECT_EQ(P.download(), p_before);
  EXPECT_EQ(M.download(), m_before);
  // Finite gradients but a NaN loss: skipped as well.
  G.upload(g0);
  c.loss_total = NAN;
  be->copy_in(ctl, &c, sizeof c);
  step();
  EXPECT_TRUE(!c.applied && c.nonfinite);
  EXPECT_EQ(c.skipped_steps, 2);
  EXPECT_EQ(P.download(), p_before);
  // A NaN in the last gradient only (past the CUDA kernels' 4-wide vectors): skipped too.
  g_bad = g0;
  g_bad[n - 1] = NAN;
  G.upload(g_bad);
  c.loss_total = 0;
  be->copy_in(ctl, &c, sizeof c);
  step();
  EXPECT_TRUE(!c.applied && c.nonfinite);
  EXPECT_EQ(c.skipped_steps, 3);
  EXPECT_EQ(P.download(), p_before);
}

INSTANTIATE_TEST_SUITE_P(All, BackendOps,
                         ::testing::Values(Case{"ref", DType::f32}, Case{"ref", DType::f16}, Case{"ref", DType::bf16},
                                           Case{"fast", DType::f32}, Case{"fast", DType::f16},
                                           Case{"fast", DType::bf16},
                                           Case{"fast", DType::f32, ConvAlgorithm::direct},
                                           Case{"fast", DType::f32, ConvAlgorithm::winograd},
                                           Case{"fast", DType::f16, ConvAlgorithm::winograd},
                                           Case{"fast", DType::f32, ConvAlgorithm::winograd_f2},
                                           Case{"fast", DType::f16, ConvAlgorithm::winograd_f2},
                                           Case{"fast", DType::f32, ConvAlgorithm::direct_banded},
                                           Case{"fast", DType::bf16, ConvAlgorithm::direct_banded},
                                           Case{"cuda", DType::f32}, Case{"cuda", DType::f16},
                                           Case{"cuda", DType::bf16}),
                         [](const ::testing::TestParamInfo<Case>& i) { return case_name(i.param); });

// The fast backend flushes denormals only while its ops run: the caller's
// floating-point environment (MXCSR) is as it was afterwards, and a
// denormal still survives a bf16 round trip outside.
TEST(FastBackend, LeavesTheCallersDenormalModeAlone) {
  const unsigned before = _mm_getcsr();
  auto be = make_fast_backend();
  DeviceTensor X(*be, DType::f32, {1, 4, 4, 16}, random_vec(256, 1)), W(*be, DType::f32, {16, 3, 3, 16}, random_vec(2304, 2)),
      Y(*be, DType::f32, {1, 4, 4, 16});
  be->conv2d_fwd(X.t, W.t, Y.t);
  EXPECT_EQ(_mm_getcsr() & 0x8040u, before & 0x8040u);  // FTZ and DAZ (the other bits are sticky exception flags)
  const float denormal = 1e-40f;
  EXPECT_NE(bf16_to_f32(f32_to_bf16(denormal)), 0.0f);
}

// The fast max pooling equals the reference bit for bit in every dtype, on
// windows full of ties (values from five levels, +0 and -0 among them: the
// first maximum gets the gradient), a NaN, batch 2, and channel counts on
// and off the vector width; the backward also accumulating.
TEST(FastBackend, MaxPoolingEqualsTheReferenceBitForBit) {
  auto be = make_fast_backend();
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (const Shape s : {Shape{2, 6, 10, 5}, Shape{1, 4, 34, 16}, Shape{1, 2, 2, 17}, Shape{3, 8, 4, 33}}) {
      const Shape p{s.n, s.h / 2, s.w / 2, s.c};
      std::vector<double> x = random_vec(s.numel(), 21, 0, 5);
      const double levels[5] = {-1.0, -0.0, 0.0, 0.5, 2.0};
      for (double& v : x) v = levels[std::min(4, int(v))];
      x[3] = std::nan("");
      const auto g = round_to(dt, random_vec(p.numel(), 22));
      // Accumulating onto values with -0 and +0 among them (+0 + -0 and -0 + +0 must round as the reference's).
      auto d0 = round_to(dt, random_vec(s.numel(), 23));
      for (size_t i = 0; i < d0.size(); i += 3) d0[i] = i % 2 ? -0.0 : 0.0;
      DeviceTensor X(*be, dt, s, x), G(*be, dt, p, g), Y(*be, dt, p), DX(*be, dt, s), ACC(*be, dt, s, d0);
      be->maxpool_fwd(X.t, Y.t);
      be->maxpool_bwd(X.t, G.t, DX.t, false);
      be->maxpool_bwd(X.t, G.t, ACC.t, true);
      dispatch_float(dt, [&]<class T>() {
        const auto xs = to_storage<T>(x), gs = to_storage<T>(g);
        auto acc_ref = to_storage<T>(d0);
        std::vector<T> y_ref(p.numel()), dx_ref(s.numel()), y(p.numel()), dx(s.numel()), acc(s.numel());
        maxpool2x2_fwd_ref<T>(s, xs.data(), y_ref.data());
        maxpool2x2_bwd_ref<T>(s, xs.data(), gs.data(), dx_ref.data());
        maxpool2x2_bwd_ref<T>(s, xs.data(), gs.data(), acc_ref.data(), true);
        be->copy_out(y.data(), Y.t.data, y.size() * sizeof(T));
        be->copy_out(dx.data(), DX.t.data, dx.size() * sizeof(T));
        be->copy_out(acc.data(), ACC.t.data, acc.size() * sizeof(T));
        EXPECT_EQ(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(T)), 0) << dtype_name(dt) << " " << to_string(s);
        EXPECT_EQ(std::memcmp(dx.data(), dx_ref.data(), dx.size() * sizeof(T)), 0)
            << dtype_name(dt) << " " << to_string(s);
        EXPECT_EQ(std::memcmp(acc.data(), acc_ref.data(), acc.size() * sizeof(T)), 0)
            << dtype_name(dt) << " " << to_string(s) << " accumulating";
      });
    }
  DeviceTensor odd(*be, DType::f32, {1, 3, 4, 2}), out(*be, DType::f32, {1, 1, 2, 2});
  expect_error_containing([&] { be->maxpool_fwd(odd.t, out.t); }, "even height and width");
}
