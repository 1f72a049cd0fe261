// The U-Net schedule and its execution: output shapes for several depths and
// sizes, clear errors for sizes not divisible by 2^depth, the parameter count
// against the closed form, the whole network's gradient against a finite
// difference, activation memory halving in 16-bit policies, and the
// precision plan.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/network.h"
#include "ops/backend_ref.h"
#include "ops/batchnorm_ref.h"
#include "ops/concat_ref.h"
#include "ops/conv2d_ref.h"
#include "ops/depth_to_space_ref.h"
#include "ops/maxpool_ref.h"
#include "ops/tolerance.h"
#include "ops/upsample_ref.h"
#include "precision/plan.h"
#include "test_util.h"

using namespace mixseg;

namespace {

std::vector<float> random_images(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.uniform());
  return v;
}

}  // namespace

struct ShapeCase {
  int depth, h, w, batch;
};
void PrintTo(const ShapeCase& c, std::ostream* os) {
  *os << "depth " << c.depth << ", " << c.h << "x" << c.w << ", batch " << c.batch;
}

class UNetShapes : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(UNetShapes, ForwardGivesOneLogitPerPixel) {
  const ShapeCase c = GetParam();
  const UNet net = build_unet({2, c.depth, 1, 1});
  auto backend = make_ref_backend();
  Weights wt = init_weights(net, 1);
  auto ws = make_workspace(net, *backend, Policy::fp32, c.batch, c.h, c.w, false);
  upload_weights(net, wt, *ws);
  set_input(net, *ws, random_images(size_t(c.batch) * c.h * c.w, 2).data());
  forward(net, *ws);
  EXPECT_EQ(ws->act[net.logits].shape, (Shape{c.batch, c.h, c.w, 1}));
  const auto logits = logits_f32(net, *ws);
  ASSERT_EQ(logits.size(), size_t(c.batch) * c.h * c.w);
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  // The deepest value is the bottleneck at H / 2^depth.
  int deepest = 0;
  for (const auto& v : net.values) deepest = std::max(deepest, v.level);
  EXPECT_EQ(deepest, c.depth);
}

INSTANTIATE_TEST_SUITE_P(Sizes, UNetShapes,
                         ::testing::Values(ShapeCase{1, 2, 6, 1}, ShapeCase{2, 8, 12, 2}, ShapeCase{3, 16, 8, 1},
                                           ShapeCase{4, 32, 16, 3}, ShapeCase{4, 16, 48, 1}),
                         [](const ::testing::TestParamInfo<ShapeCase>& i) {
                           const ShapeCase& c = i.param;
                           return "depth" + std::to_string(c.depth) + "_" + std::to_string(c.h) + "x" +
                                  std::to_string(c.w) + "_batch" + std::to_string(c.batch);
                         });

TEST(UNet, SizesNotDivisibleByTwoToTheDepthAreRefused) {
  const UNet net = build_unet({4, 4, 1, 1});
  auto backend = make_ref_backend();
  try {
    make_workspace(net, *backend, Policy::fp32, 1, 100, 64, false);
    FAIL() << "100x64 accepted at depth 4";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("100x64"), std::string::npos) << msg;
    EXPECT_NE(msg.find("multiple of 2^depth = 16"), std::string::npos) << msg;
  }
  EXPECT_THROW(make_workspace(net, *backend, Policy::fp32, 1, 64, 0, false), Error);
  EXPECT_NO_THROW(make_workspace(net, *backend, Policy::fp32, 1, 64, 48, false));
  EXPECT_THROW(build_unet({0, 4, 1, 1}), Error);
  EXPECT_THROW(build_unet({8, 0, 1, 1}), Error);
}

TEST(UNet, ParameterCountMatchesClosedForm) {
  for (int f : {4, 8, 16})
    for (int depth : {2, 4}) {
      size_t n = 0;
      auto block = [&](size_t cin, size_t c) { n += 9 * cin * c + 2 * c; };  // conv + BatchNorm gamma, beta
      size_t cin = 1;
      for (int b = 0; b < depth; ++b) {
        const size_t c = size_t(f) << b;
        block(cin, c);
        block(c, c);
        cin = c;
      }
      block(cin, size_t(f) << depth);
      for (int b = depth - 1; b >= 0; --b) {
        const size_t c = size_t(f) << b;
        block(2 * c, c);  // from the level below (2c channels)
        block(2 * c, c);  // after concat with the skip: c + c
      }
      block(size_t(f), size_t(f));
      n += size_t(f);  // 1x1 head
      EXPECT_EQ(build_unet({f, depth, 1, 1}).param_numel, n) << "f=" << f << " depth=" << depth;
      for (int b = 0; b < depth; ++b) n += 4 * (size_t(f) << b) * (size_t(f) << b);  // transposed: 1x1 conv c -> 4c
      EXPECT_EQ(build_unet({f, depth, 1, 1, Upsampling::transposed}).param_numel, n) << "f=" << f << " transposed";
    }
}

// The executor's wiring (which gradient goes where, the skip connection's
// fan-in, BatchNorm state) against the same kernels composed by hand for a
// depth-1 U-Net: results must be bit-identical. Together with the per-op
// finite-difference tests this checks the whole network's gradient (a
// finite difference of the whole network in f32 is too noisy at ReLU kinks
// to be a sharp test).
TEST(UNet, BackwardEqualsHandComposedKernels) {
  const int f = 3, b = 2, h = 6, w = 10;
  const UNet net = build_unet({f, 1, 1, 1});
  auto backend = make_ref_backend();
  Weights wt = init_weights(net, 3);
  auto ws = make_workspace(net, *backend, Policy::fp32, b, h, w, true);
  const auto images = random_images(size_t(b) * h * w, 4);
  std::vector<uint8_t> target(images.size());
  for (size_t i = 0; i < target.size(); ++i) target[i] = images[i] > 0.6f;
  Weights wt_net = wt;
  upload_weights(net, wt_net, *ws);
  set_input(net, *ws, images.data());
  forward(net, *ws);
  compute_loss(*backend, ws->act[net.logits], target.data(), {}, 1.0, &ws->grad[net.logits]);
  backward(net, *ws);
  const float* g_net = ws->param_grads.as<float>();
  // Its one fan-in (the skip connection) needs no scratch: max pooling adds in place.
  EXPECT_EQ(ws->scratch.data, nullptr);

  // By hand: tensors as plain vectors, same kernels, same order of ops.
  Backend& be = *backend;
  auto T = [](std::vector<float>& v, Shape s) { return Tensor{v.data(), DType::f32, s}; };
  auto P = [&](const std::string& name) -> const ParamInfo& {
    for (const auto& p : net.params)
      if (p.name == name) return p;
    throw std::runtime_error(name);
  };
  std::vector<float> grads(net.param_numel, 0.0f);
  struct Block {
    std::vector<float> z, a, mean, invstd, rm, rv;
  };
  auto block_fwd = [&](const std::string& name, std::vector<float>& x, Shape xs, int c, Block& bl) {
    const Shape ys{xs.n, xs.h, xs.w, c};
    const ParamInfo& pw = P(name + ".conv.weight");
    std::vector<float> wv(wt.params.begin() + long(pw.offset), wt.params.begin() + long(pw.offset + pw.numel()));
    bl.z.resize(ys.numel());
    bl.a.resize(ys.numel());
    bl.mean.resize(c);
    bl.invstd.resize(c);
    bl.rm.assign(c, 0.0f);
    bl.rv.assign(c, 1.0f);
    be.conv2d_fwd(T(x, xs), T(wv, pw.shape), T(bl.z, ys));
    const BatchNormState st{wt.params.data() + P(name + ".bn.weight").offset, wt.params.data() + P(name + ".bn.bias").offset,
                            bl.rm.data(), bl.rv.data(), bl.mean.data(), bl.invstd.data()};
    be.batchnorm_fwd_train(T(bl.z, ys), st, T(bl.a, ys), false);
    be.relu_fwd(T(bl.a, ys), T(bl.a, ys));
  };
  // returns dx (empty when x is the network input)
  auto block_bwd = [&](const std::string& name, std::vector<float>& x, Shape xs, Block& bl, std::vector<float> da,
                       bool need_dx) {
    const int c = int(bl.mean.size());
    const Shape ys{xs.n, xs.h, xs.w, c};
    be.relu_bwd(T(da, ys), T(bl.a, ys), T(da, ys));
    const BatchNormState st{wt.params.data() + P(name + ".bn.weight").offset, wt.params.data() + P(name + ".bn.bias").offset,
                            bl.rm.data(), bl.rv.data(), bl.mean.data(), bl.invstd.data()};
    std::vector<float> dz(ys.numel());
    be.batchnorm_bwd(T(da, ys), nullptr, T(bl.z, ys), st, T(dz, ys), grads.data() + P(name + ".bn.weight").offset,
                     grads.data() + P(name + ".bn.bias").offset);
    const ParamInfo& pw = P(name + ".conv.weight");
    std::vector<float> wv(wt.params.begin() + long(pw.offset), wt.params.begin() + long(pw.offset + pw.numel()));
    be.conv2d_bwd_weights(T(x, xs), T(dz, ys), {grads.data() + pw.offset, DType::f32, pw.shape});
    std::vector<float> dx;
    if (need_dx) {
      dx.resize(xs.numel());
      be.conv2d_bwd_data(T(dz, ys), T(wv, pw.shape), T(dx, xs));
    }
    return dx;
  };
  std::vector<float> x(images);
  const Shape s0{b, h, w, 1}, s1{b, h, w, f}, p1{b, h / 2, w / 2, f}, s2{b, h / 2, w / 2, 2 * f}, c1{b, h, w, 2 * f};
  Block e0, e1, bn, d0, d1, fin;
  block_fwd("enc0.0", x, s0, f, e0);
  block_fwd("enc0.1", e0.a, s1, f, e1);
  std::vector<float> pool(p1.numel()), up(s1.numel()), cat(c1.numel()), logits(size_t(b) * h * w);
  be.maxpool_fwd(T(e1.a, s1), T(pool, p1));
  block_fwd("bottleneck", pool, p1, 2 * f, bn);
  block_fwd("dec0.0", bn.a, s2, f, d0);
  be.upsample_fwd(T(d0.a, p1), T(up, s1));
  be.concat_fwd(T(up, s1), T(e1.a, s1), T(cat, c1));
  block_fwd("dec0.1", cat, c1, f, d1);
  block_fwd("final", d1.a, s1, f, fin);
  const ParamInfo& ph = P("head.conv.weight");
  std::vector<float> wh(wt.params.begin() + long(ph.offset), wt.params.begin() + long(ph.offset + ph.numel()));
  be.conv2d_fwd(T(fin.a, s1), T(wh, ph.shape), T(logits, s0));
  std::vector<float> dlogits(logits.size()), dfin(s1.numel());
  const Tensor dl{dlogits.data(), DType::f32, s0};
  compute_loss(be, T(logits, s0), target.data(), {}, 1.0, &dl);
  be.conv2d_bwd_weights(T(fin.a, s1), T(dlogits, s0), {grads.data() + ph.offset, DType::f32, ph.shape});
  be.conv2d_bwd_data(T(dlogits, s0), T(wh, ph.shape), T(dfin, s1));
  auto dd1 = block_bwd("final", d1.a, s1, fin, dfin, true);
  auto dcat = block_bwd("dec0.1", cat, c1, d1, dd1, true);
  std::vector<float> dup(s1.numel()), dskip(s1.numel()), dd0(p1.numel());
  be.concat_bwd(T(dcat, c1), T(dup, s1), T(dskip, s1));
  be.upsample_bwd(T(dup, s1), T(dd0, p1));
  auto dbn = block_bwd("dec0.0", bn.a, s2, d0, dd0, true);
  auto dpool = block_bwd("bottleneck", pool, p1, bn, dbn, true);
  std::vector<float> dskip2(s1.numel());
  be.maxpool_bwd(T(e1.a, s1), T(dpool, p1), T(dskip2, s1), false);
  be.add_inplace(T(dskip2, s1), T(dskip, s1));  // the skip connection's two gradients
  auto de0 = block_bwd("enc0.1", e0.a, s1, e1, dskip, true);
  block_bwd("enc0.0", x, s0, e0, de0, false);

  for (const auto& p : net.params)
    for (size_t i = 0; i < p.numel(); ++i)
      ASSERT_EQ(g_net[p.offset + i], grads[p.offset + i]) << p.name << " element " << i;
}

// Another backend's ops, with dense tensors only (Op::channel_slices not
// supported): the network as it runs there without its zero-copy concats.
class DenseOnly final : public Backend {
 public:
  explicit DenseOnly(Backend& b) : b_(b) {}
  std::string_view name() const override { return b_.name(); }
  void* allocate(size_t n) override { return b_.allocate(n); }
  void deallocate(void* p) override { b_.deallocate(p); }
  void copy_in(void* d, const void* s, size_t n) override { b_.copy_in(d, s, n); }
  void* allocate_host(size_t n) override { return b_.allocate_host(n); }
  void deallocate_host(void* p) override { b_.deallocate_host(p); }
  void copy_out(void* d, const void* s, size_t n) override { b_.copy_out(d, s, n); }
  void copy_in_async(void* d, const void* s, size_t n) override { b_.copy_in_async(d, s, n); }
  void synchronize() override { b_.synchronize(); }
  bool host_memory() const override { return b_.host_memory(); }
  bool supports(Op op, DType t) const override { return op != Op::channel_slices && b_.supports(op, t); }
  void allow_tf32(bool a) override { b_.allow_tf32(a); }
  void conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) override { b_.conv2d_fwd(x, w, y); }
  void conv2d_fwd_bias(const Tensor& x, const Tensor& w, const float* bias, const Tensor& y, bool relu) override {
    b_.conv2d_fwd_bias(x, w, bias, y, relu);
  }
  void conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) override { b_.conv2d_bwd_data(dy, w, dx); }
  void conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) override {
    b_.conv2d_bwd_weights(x, dy, dw);
  }
  void batchnorm_fwd_train(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override {
    b_.batchnorm_fwd_train(x, bn, y, relu);
  }
  void batchnorm_fwd_infer(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override {
    b_.batchnorm_fwd_infer(x, bn, y, relu);
  }
  void batchnorm_bwd(const Tensor& dy, const Tensor* relu_y, const Tensor& x, const BatchNormState& bn,
                     const Tensor& dx, float* dgamma, float* dbeta) override {
    b_.batchnorm_bwd(dy, relu_y, x, bn, dx, dgamma, dbeta);
  }
  void relu_fwd(const Tensor& x, const Tensor& y) override { b_.relu_fwd(x, y); }
  void relu_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override { b_.relu_bwd(dy, y, dx); }
  void maxpool_fwd(const Tensor& x, const Tensor& y) override { b_.maxpool_fwd(x, y); }
  void maxpool_bwd(const Tensor& x, const Tensor& dy, const Tensor& dx, bool acc) override {
    b_.maxpool_bwd(x, dy, dx, acc);
  }
  void upsample_fwd(const Tensor& x, const Tensor& y) override { b_.upsample_fwd(x, y); }
  void upsample_bwd(const Tensor& dy, const Tensor& dx) override { b_.upsample_bwd(dy, dx); }
  void depth_to_space_fwd(const Tensor& x, const Tensor& y) override { b_.depth_to_space_fwd(x, y); }
  void depth_to_space_bwd(const Tensor& dy, const Tensor& dx) override { b_.depth_to_space_bwd(dy, dx); }
  void concat_fwd(const Tensor& a, const Tensor& b, const Tensor& y) override { b_.concat_fwd(a, b, y); }
  void upsample_concat_fwd(const Tensor& x, const Tensor& skip, const Tensor& y) override {
    b_.upsample_concat_fwd(x, skip, y);
  }
  void concat_bwd(const Tensor& dy, const Tensor& da, const Tensor& db) override { b_.concat_bwd(dy, da, db); }
  void loss(const Tensor& logits, const uint8_t* target, LossWeights w, StepControl* ctl,
            const Tensor* dlogits) override {
    b_.loss(logits, target, w, ctl, dlogits);
  }
  void add_inplace(const Tensor& x, const Tensor& y) override { b_.add_inplace(x, y); }
  void convert(const Tensor& x, const Tensor& y) override { b_.convert(x, y); }
  void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m, float* v,
                      size_t n, const Tensor& storage) override {
    b_.optimizer_step(rule, ctl, params, grads, m, v, n, storage);
  }

 private:
  Backend& b_;
};

// Training on a backend that takes channel slices keeps each concat's inputs
// (the skip connection, the upsampled tensor: nearest, or the transposed
// convolution's move) and their gradients inside the concat's buffers, so
// nothing is copied and less memory is used; the step's
// logits, weight gradients and running statistics are bit for bit those of
// the same backend copying (the same kernels on the same values, the
// convolution algorithms cached per shape in the one backend).
TEST(UNet, ZeroCopyConcatEqualsCopiedConcat) {
  std::vector<std::string> backends;
  for (const std::string name : {"ref", "fast", "cuda"}) {
    if (name == "cuda" && !test::gpu_available()) continue;
    if (make_backend(name)->supports(Op::channel_slices, DType::f32)) backends.push_back(name);
  }
  if (backends.empty()) GTEST_SKIP() << "no backend here takes channel slices (the CUDA backend does)";
  const int f = 4, b = 2, h = 16, w = 24;
  const auto images = random_images(size_t(b) * h * w, 6);
  std::vector<uint8_t> target(images.size());
  for (size_t i = 0; i < target.size(); ++i) target[i] = images[i] > 0.5f;
  for (Upsampling up : {Upsampling::nearest, Upsampling::transposed})
    for (const std::string& name : backends)
      for (Policy p : {Policy::fp32, Policy::mixed_fp16}) {
        SCOPED_TRACE(name + " " + std::string(policy_info(p).name) + " " + upsampling_name(up));
        const UNet net = build_unet({f, 2, 1, 1, up});
        const Weights wt = init_weights(net, 5);
        auto backend = make_backend(name);
        DenseOnly dense(*backend);
        auto step = [&](Backend& be, std::vector<float>& grads, std::vector<float>& running) {
          auto ws = make_workspace(net, be, p, b, h, w, true);
          upload_weights(net, wt, *ws);
          set_input(net, *ws, images.data());
          forward(net, *ws);
          compute_loss(be, ws->act[net.logits], target.data(), {}, 1.0, &ws->grad[net.logits]);
          backward(net, *ws);
          std::vector<float> tmp;
          const float* g = host_f32(*ws, ws->param_grads, tmp);
          grads.assign(g, g + net.param_numel);
          const float* r = host_f32(*ws, ws->bn_running, tmp);
          running.assign(r, r + net.running_numel);
          return ws;
        };
        std::vector<float> g_slices, g_dense, r_slices, r_dense;
        const auto ws_slices = step(*backend, g_slices, r_slices);
        const auto ws_dense = step(dense, g_dense, r_dense);
        int concats = 0;
        for (const Layer& l : net.layers) {
          if (l.kind != LayerKind::concat) continue;
          ++concats;
          const Tensor &cat = ws_slices->act[size_t(l.out)], &up_in = ws_slices->act[size_t(l.in0)],
                       &skip = ws_slices->act[size_t(l.in1)];
          EXPECT_EQ(up_in.data, cat.data) << l.name;
          EXPECT_EQ(skip.data, static_cast<std::byte*>(cat.data) + size_t(up_in.shape.c) * dtype_size(cat.dtype))
              << l.name;
          EXPECT_EQ(skip.stride(), cat.shape.c) << l.name;
          EXPECT_EQ(ws_slices->grad[size_t(l.in1)].stride(), cat.shape.c) << l.name;
          EXPECT_TRUE(ws_dense->act[size_t(l.in1)].dense()) << l.name;
        }
        EXPECT_EQ(concats, 2);
        EXPECT_LT(ws_slices->activations.capacity(), ws_dense->activations.capacity());
        EXPECT_EQ(logits_f32(net, *ws_slices), logits_f32(net, *ws_dense));
        EXPECT_EQ(g_slices, g_dense);
        EXPECT_EQ(r_slices, r_dense);
        EXPECT_EQ(first_nonfinite(net, *ws_slices), "");
      }
}

TEST(UNet, SixteenBitPoliciesHalveActivationMemory) {
  const UNet net = build_unet({8, 4, 1, 1});
  auto backend = make_ref_backend();
  const auto f32 = make_workspace(net, *backend, Policy::fp32, 4, 128, 64, true);
  for (Policy p : {Policy::mixed_fp16, Policy::mixed_bf16}) {
    const auto half = make_workspace(net, *backend, p, 4, 128, 64, true);
    const double ratio = double(half->activations.capacity()) / double(f32->activations.capacity());
    EXPECT_GT(ratio, 0.49) << policy_info(p).name;
    EXPECT_LT(ratio, 0.51) << policy_info(p).name;  // BatchNorm's saved statistics stay f32
    EXPECT_EQ(half->act[net.input].dtype, policy_info(p).storage);
  }
  // Inference-only policies cannot train; int8 is not a float policy.
  EXPECT_THROW(make_workspace(net, *backend, Policy::fp16, 1, 32, 32, true), Error);
  EXPECT_THROW(parse_policy("int8"), Error);
  EXPECT_THROW(parse_policy("fp64"), Error);
}

// A backend with a memory limit: allocations past it fail, as a device's do.
class LimitedBackend : public RefBackend {
 public:
  explicit LimitedBackend(size_t limit) : limit_(limit) {}
  void* allocate(size_t bytes) override { return bytes > limit_ ? nullptr : RefBackend::allocate(bytes); }

 private:
  size_t limit_;
};

TEST(UNet, WorkspaceTooLargeForTheBackendSaysHowMuchAndWhat) {
  const UNet net = build_unet({8, 2, 1, 1});
  auto probe = make_ref_backend();
  const size_t need = make_workspace(net, *probe, Policy::fp32, 4, 64, 32, true)->activations.capacity();
  LimitedBackend fits(need), short_of(need - 64);
  EXPECT_NO_THROW(make_workspace(net, fits, Policy::fp32, 4, 64, 32, true));
  try {
    make_workspace(net, short_of, Policy::fp32, 4, 64, 32, true);
    ADD_FAILURE() << "no error";
  } catch (const OutOfMemory& e) {  // a benchmark sweep skips such a configuration on this type
    const std::string m = e.what();
    EXPECT_NE(m.find(fmt::format("could not allocate {:.1f} MiB", double(need) / (1 << 20))), std::string::npos) << m;
    EXPECT_NE(m.find(fmt::format("needs {:.1f} MiB of activations", double(need) / (1 << 20))), std::string::npos) << m;
    EXPECT_NE(m.find("the training workspace at batch 4, 64x32, fp32"), std::string::npos) << m;
    EXPECT_NE(m.find("or a 16-bit policy"), std::string::npos) << m;
  }
  // A 16-bit policy needs about half, so it fits where fp32 did not.
  EXPECT_NO_THROW(make_workspace(net, short_of, Policy::mixed_bf16, 4, 64, 32, true));
}

TEST(UNet, PrecisionPlanShowsEveryLayer) {
  const UNet net = build_unet({8, 2, 1, 1});
  const std::string plan = precision_plan(net, Policy::mixed_fp16);
  for (const auto& l : net.layers) EXPECT_NE(plan.find(l.name), std::string::npos) << l.name;
  EXPECT_NE(plan.find("f16 (f32 master)"), std::string::npos);
  EXPECT_NE(plan.find("dynamic loss scaling"), std::string::npos);
  const std::string plan32 = precision_plan(net, Policy::fp32);
  EXPECT_EQ(plan32.find("f16"), std::string::npos);
}

// The transposed upsampling with 1x1 weights that copy each channel to all
// four positions is nearest upsampling. So set, a transposed U-Net computes
// the nearest U-Net's logits, and in training the same gradients for every
// parameter the two share: the forward wiring (1x1 conv to 4C, the move,
// the concat) and the backward's (the move back, the conv's data gradient
// summing the four positions) both checked, on the ref and fast backends.
// Its up convs' weight gradients are the 1x1 conv's own, tested per op.
TEST(UNet, TransposedUpsamplingWithCopyWeightsIsNearest) {
  const int f = 4, b = 2, h = 16, w = 16;
  const UNet nearest = build_unet({f, 2, 1, 1}), transposed = build_unet({f, 2, 1, 1, Upsampling::transposed});
  const Weights wn = init_weights(nearest, 3);
  Weights wt = init_weights(transposed, 3);
  auto shared = [&](const std::string& name) -> const ParamInfo* {
    for (const ParamInfo& q : nearest.params)
      if (q.name == name) return &q;
    return nullptr;
  };
  int up_convs = 0;
  for (const ParamInfo& p : transposed.params) {
    float* dst = wt.params.data() + p.offset;
    if (const ParamInfo* q = shared(p.name)) {
      std::copy_n(wn.params.data() + q->offset, p.numel(), dst);
    } else {  // dec{b}.up.conv.weight, OHWI {4C, 1, 1, C}: output p*C + o takes input o
      ++up_convs;
      const int c = p.shape.c;
      ASSERT_EQ(p.shape, (Shape{4 * c, 1, 1, c})) << p.name;
      for (int o = 0; o < 4 * c; ++o)
        for (int i = 0; i < c; ++i) dst[size_t(o) * size_t(c) + size_t(i)] = o % c == i ? 1.0f : 0.0f;
    }
  }
  EXPECT_EQ(up_convs, 2);
  wt.running = wn.running;
  const auto images = random_images(size_t(b) * h * w, 4);
  std::vector<uint8_t> target(images.size());
  for (size_t i = 0; i < target.size(); ++i) target[i] = images[i] > 0.6f;
  std::vector<std::string> backends = {"ref", "fast"};
  if (test::gpu_available()) backends.push_back("cuda");
  for (const std::string& name : backends) {
    auto backend = make_backend(name);
    auto run = [&](const UNet& net, Weights weights) {
      auto ws = make_workspace(net, *backend, Policy::fp32, b, h, w, true);
      upload_weights(net, weights, *ws);
      set_input(net, *ws, images.data());
      forward(net, *ws);
      const auto logits = logits_f32(net, *ws);
      compute_loss(*backend, ws->act[net.logits], target.data(), {}, 1.0, &ws->grad[net.logits]);
      backward(net, *ws);
      std::vector<float> tmp;
      const float* g = host_f32(*ws, ws->param_grads, tmp);  // device memory on CUDA
      return std::pair{std::vector<double>(logits.begin(), logits.end()), std::vector<double>(g, g + net.param_numel)};
    };
    const auto [ln, gn] = run(nearest, wn);
    const auto [lt, gt] = run(transposed, wt);
    test::expect_within(lt, ln, 1e-6, DType::f32, name + " logits");
    for (const ParamInfo& p : transposed.params)
      if (const ParamInfo* q = shared(p.name))
        test::expect_within(
            std::vector<double>(gt.begin() + long(p.offset), gt.begin() + long(p.offset + p.numel())),
            std::vector<double>(gn.begin() + long(q->offset), gn.begin() + long(q->offset + q->numel())), 1e-4,
            DType::f32, name + " gradient of " + p.name);
  }
}

void folded_inference_equals_unfolded_schedule(Upsampling up);

// Inference folds each BatchNorm into its convolution (network.h). Against
// the schedule run unfolded in double precision (conv, BatchNorm with running
// statistics, ReLU, ...), on trained-looking state: random gamma, beta and
// running statistics. Errors may add up over the convolutions in sequence,
// hence the bound: the per-op tolerance times the number of conv layers.
TEST(UNet, FoldedInferenceEqualsUnfoldedSchedule) {
  for (Upsampling up : {Upsampling::nearest, Upsampling::transposed}) {
    SCOPED_TRACE(upsampling_name(up));
    folded_inference_equals_unfolded_schedule(up);
  }
}

void folded_inference_equals_unfolded_schedule(Upsampling up) {
  const int f = 16, b = 2, h = 32, w = 16;
  const UNet net = build_unet({f, 2, 1, 1, up});
  Weights wt = init_weights(net, 5);
  Rng rng(6);
  for (const auto& p : net.params)
    if (p.kind != ParamKind::conv_weight)
      for (size_t i = 0; i < p.numel(); ++i)
        wt.params[p.offset + i] = float(p.kind == ParamKind::bn_gamma ? rng.uniform(0.5, 1.5) : rng.uniform(-0.3, 0.3));
  for (const auto& bn : net.bns)
    for (int c = 0; c < bn.channels; ++c) {
      wt.running[bn.running_offset + size_t(c)] = float(rng.uniform(-0.5, 0.5));
      wt.running[bn.running_offset + size_t(bn.channels + c)] = float(rng.uniform(0.5, 2.0));
    }
  const auto images = random_images(size_t(b) * h * w, 7);

  // The unfolded schedule in double.
  std::vector<std::vector<double>> v(net.values.size());
  v[size_t(net.input)].assign(images.begin(), images.end());
  int convs = 0;
  size_t k_max = 0;
  for (const Layer& l : net.layers) {
    const Shape xs = net.values[size_t(l.in0)].shape(b, h, w), ys = net.values[size_t(l.out)].shape(b, h, w);
    auto& y = v[size_t(l.out)];
    y.assign(ys.numel(), 0.0);
    const auto& x = v[size_t(l.in0)];
    switch (l.kind) {
      case LayerKind::conv: {
        const ParamInfo& p = net.params[size_t(l.param)];
        const std::vector<double> wd(wt.params.begin() + long(p.offset), wt.params.begin() + long(p.offset + p.numel()));
        conv2d_fwd_ref<double>({b, xs.h, xs.w, xs.c, ys.c, p.shape.h}, x.data(), wd.data(), y.data());
        ++convs;
        k_max = std::max(k_max, size_t(p.shape.h) * p.shape.w * size_t(xs.c));
        break;
      }
      case LayerKind::bn_relu: {
        const BatchNormInfo& bn = net.bns[size_t(l.bn)];
        auto d = [&](const float* src, size_t n) { return std::vector<double>(src, src + n); };
        const size_t c = size_t(bn.channels);
        const auto g = d(wt.params.data() + net.params[size_t(l.param)].offset, c);
        const auto be = d(wt.params.data() + net.params[size_t(l.param) + 1].offset, c);
        const auto rm = d(wt.running.data() + bn.running_offset, c), rv = d(wt.running.data() + bn.running_offset + c, c);
        batchnorm_fwd_infer_ref<double>({xs.pixels(), xs.c, kBatchNormEps, kBatchNormMomentum}, x.data(), g.data(),
                                        be.data(), rm.data(), rv.data(), y.data(), true);
        break;
      }
      case LayerKind::maxpool: maxpool2x2_fwd_ref<double>(xs, x.data(), y.data()); break;
      case LayerKind::upsample: upsample2x_fwd_ref<double>(xs, x.data(), y.data()); break;
      case LayerKind::depth_to_space: depth_to_space2x2_fwd_ref<double>(xs, x.data(), y.data(), size_t(ys.c)); break;
      case LayerKind::concat:
        concat_fwd_ref<double>(xs.pixels(), xs.c, net.values[size_t(l.in1)].channels, x.data(),
                               v[size_t(l.in1)].data(), y.data());
        break;
    }
  }
  const auto& ref = v[size_t(net.logits)];

  // On a backend that records (CUDA graphs) a workspace's first forward pass
  // runs as usual, the second is recorded and replayed, later ones replayed:
  // each of them must give the reference's logits for the input set just
  // before it (with a zero input in between, a replay that read stale
  // buffers would show).
  std::vector<std::string> backends = {"ref", "fast"};
  if (test::gpu_available()) backends.push_back("cuda");
  const std::vector<float> zeros(images.size(), 0.0f);
  for (const std::string& name : backends) {
    auto backend = make_backend(name);
    for (Policy p : {Policy::fp32, Policy::mixed_fp16, Policy::mixed_bf16}) {
      auto ws = make_workspace(net, *backend, p, b, h, w, false);
      upload_weights(net, wt, *ws);
      for (int pass = 1; pass <= 3; ++pass) {
        set_input(net, *ws, zeros.data());
        forward(net, *ws);
        set_input(net, *ws, images.data());
        forward(net, *ws);
        const auto got = logits_f32(net, *ws);
        const DType dt = policy_info(p).storage;
        const double tol = tolerance(Op::conv2d_fwd_bias, dt, k_max) * convs;
        test::expect_within(std::vector<double>(got.begin(), got.end()), ref, tol, dt,
                            fmt::format("{} {} folded inference, pass {}", name, policy_info(p).name, pass));
      }
    }
  }
}

// convolutions_only issues the pass's convolutions and nothing else: in
// training every conv's forward and weight gradient and every data gradient
// but the input's; in inference every conv's forward, the folded ones through
// the inference op without bias or ReLU.
namespace {
class ConvCountingBackend final : public RefBackend {
 public:
  int fwd = 0, fwd_bias = 0, bwd_data = 0, bwd_weights = 0, other = 0;
  void conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) override {
    ++fwd;
    RefBackend::conv2d_fwd(x, w, y);
  }
  void conv2d_fwd_bias(const Tensor& x, const Tensor& w, const float* bias, const Tensor& y, bool relu) override {
    ++fwd_bias;
    EXPECT_EQ(bias, nullptr);
    EXPECT_FALSE(relu);
    RefBackend::conv2d_fwd_bias(x, w, bias, y, relu);
  }
  void conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    ++bwd_data;
    RefBackend::conv2d_bwd_data(dy, w, dx);
  }
  void conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) override {
    ++bwd_weights;
    RefBackend::conv2d_bwd_weights(x, dy, dw);
  }
  void batchnorm_fwd_train(const Tensor&, const BatchNormState&, const Tensor&, bool) override { ++other; }
  void batchnorm_fwd_infer(const Tensor&, const BatchNormState&, const Tensor&, bool) override { ++other; }
  void batchnorm_bwd(const Tensor&, const Tensor*, const Tensor&, const BatchNormState&, const Tensor&, float*,
                     float*) override {
    ++other;
  }
  void maxpool_fwd(const Tensor&, const Tensor&) override { ++other; }
  void maxpool_bwd(const Tensor&, const Tensor&, const Tensor&, bool) override { ++other; }
  void upsample_concat_fwd(const Tensor&, const Tensor&, const Tensor&) override { ++other; }
  void concat_bwd(const Tensor&, const Tensor&, const Tensor&) override { ++other; }
  void add_inplace(const Tensor&, const Tensor&) override { ++other; }
};
}  // namespace

TEST(UNet, ConvolutionsOnlyRunsThePassConvolutionsAndNothingElse) {
  const UNet net = build_unet({4, 2, 1, 1});
  int convs = 0, folded = 0;
  for (size_t i = 0; i < net.layers.size(); ++i)
    if (net.layers[i].kind == LayerKind::conv) {
      ++convs;
      folded += i + 1 < net.layers.size() && net.layers[i + 1].kind == LayerKind::bn_relu;
    }
  ASSERT_GT(folded, 0);
  const Weights wt = init_weights(net, 3);
  for (bool training : {true, false}) {
    ConvCountingBackend be;
    auto ws = make_workspace(net, be, Policy::fp32, 2, 16, 16, training);
    upload_weights(net, wt, *ws);
    convolutions_only(net, *ws);
    EXPECT_EQ(be.other, 0);
    if (training) {
      EXPECT_EQ(be.fwd, convs);
      EXPECT_EQ(be.fwd_bias, 0);
      EXPECT_EQ(be.bwd_weights, convs);
      EXPECT_EQ(be.bwd_data, convs - 1);  // not into the input
    } else {
      EXPECT_EQ(be.fwd_bias, folded);
      EXPECT_EQ(be.fwd, convs - folded);
      EXPECT_EQ(be.bwd_weights + be.bwd_data, 0);
    }
  }
}

// run_recorded: the first run as usual (set-up), the second recorded and
// replayed, later ones replayed; another key records anew; a backend that
// fails to record (or an op that cannot be recorded) gets the ops run as
// usual, then is never asked again.
TEST(UNet, RunRecordedRecordsTheSecondRunAndReplaysLaterOnes) {
  test::RecordingBackend be;
  int ran = 0, recorded = 0;
  {
    Workspace ws;
    ws.backend = &be;
    auto ops = [&] { (be.recording ? recorded : ran) += 1; };
    run_recorded(ws, 7, ops);
    EXPECT_EQ(ran, 1);
    EXPECT_EQ(be.begun, 0);
    run_recorded(ws, 7, ops);
    EXPECT_EQ(recorded, 1);
    EXPECT_EQ(be.replays, 1);
    run_recorded(ws, 7, ops);
    run_recorded(ws, 7, ops);
    EXPECT_EQ(ran, 1);
    EXPECT_EQ(recorded, 1);
    EXPECT_EQ(be.replays, 3);
    run_recorded(ws, 8, ops);  // new settings: the old recording goes, a new one is made
    EXPECT_EQ(be.released, 1);
    EXPECT_EQ(recorded, 2);
    EXPECT_EQ(be.replayed.back(), 2);
  }
  EXPECT_EQ(be.released, 2);  // the workspace released its recording

  test::RecordingBackend failing;
  failing.fail_end = true;
  Workspace ws;
  ws.backend = &failing;
  ran = recorded = 0;
  auto ops = [&] { (failing.recording ? recorded : ran) += 1; };
  for (int i = 0; i < 4; ++i) run_recorded(ws, 1, ops);
  EXPECT_EQ(failing.begun, 1);
  EXPECT_EQ(recorded, 1);
  EXPECT_EQ(ran, 4);  // every run's ops ran, the failed recording's included
  EXPECT_EQ(failing.replays, 0);

  // An op that fails only while recording: the recording ends, the ops run
  // as usual, now and from then on.
  test::RecordingBackend refusing;
  Workspace ws2;
  ws2.backend = &refusing;
  int ran2 = 0;
  auto refused = [&] {
    if (refusing.recording) fail("cannot be recorded");
    ++ran2;
  };
  for (int i = 0; i < 3; ++i) run_recorded(ws2, 1, refused);
  EXPECT_EQ(ran2, 3);
  EXPECT_FALSE(refusing.recording);
  EXPECT_EQ(refusing.begun, 1);
  // An error that is not the recording's reaches the caller.
  test::RecordingBackend throwing;
  Workspace ws3;
  ws3.backend = &throwing;
  run_recorded(ws3, 1, [] {});
  EXPECT_THROW(run_recorded(ws3, 1, [] { fail("op failed"); }), Error);
  EXPECT_FALSE(throwing.recording);
}
