// The CPU reference backend (see backend_ref.h).
#include "ops/backend_ref.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/arena.h"
#include "core/error.h"
#include "cuda/backend_cuda.h"
#include "ops/add_ref.h"
#include "ops/batchnorm_ref.h"
#include "ops/concat_ref.h"
#include "ops/conv2d_ref.h"
#include "ops/depth_to_space_ref.h"
#include "ops/loss_ref.h"
#include "ops/maxpool_ref.h"
#include "ops/optimizer_step_ref.h"
#include "ops/relu_ref.h"
#include "ops/upsample_ref.h"

namespace mixseg {

namespace {

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype != b.dtype) fail("{}: dtype mismatch ({} vs {})", op, dtype_name(a.dtype), dtype_name(b.dtype));
}

}  // namespace

BatchNormShape bn_shape(const Tensor& x) { return {x.shape.pixels(), x.shape.c, kBatchNormEps, kBatchNormMomentum}; }

ConvShape conv_shape(const Tensor& x, const Tensor& w) {
  if (w.shape.h != w.shape.w || w.shape.h % 2 != 1) fail("conv2d: kernel {} is not square and odd", to_string(w.shape));
  if (x.shape.c != w.shape.c) fail("conv2d: input has {} channels, weights expect {}", x.shape.c, w.shape.c);
  return {x.shape.n, x.shape.h, x.shape.w, w.shape.c, w.shape.n, w.shape.h};
}

void check_depth_to_space(const Tensor& x, const Tensor& y, const char* op) {
  check_same(x, y, op);
  const Shape& s = x.shape;
  if (s.c % 4 != 0 || y.shape != Shape{s.n, 2 * s.h, 2 * s.w, s.c / 4})
    fail("{}: {} does not move to {} (2x2 depth-to-space needs [N,H,W,4C] -> [N,2H,2W,C])", op, to_string(s),
         to_string(y.shape));
}

void* RefBackend::allocate(size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }
void RefBackend::deallocate(void* p) { std::free(p); }
void RefBackend::copy_in(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void RefBackend::copy_out(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
// The reference kernels take dense tensors only: every op checks (require_dense).
bool RefBackend::supports(Op op, DType t) const { return op != Op::channel_slices && traits(t).is_float; }

void RefBackend::conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) {
  require_dense("conv2d_fwd", {&x, &y});
  check_same(x, w, "conv2d_fwd");
  const ConvShape s = conv_shape(x, w);
  dispatch_float(x.dtype, [&]<class T>() { conv2d_fwd_ref<T>(s, x.as<T>(), w.as<T>(), y.as<T>()); });
}
void RefBackend::conv2d_fwd_bias(const Tensor& x, const Tensor& w, const float* bias, const Tensor& y, bool relu) {
  require_dense("conv2d_fwd_bias", {&x, &y});
  check_same(x, w, "conv2d_fwd_bias");
  const ConvShape s = conv_shape(x, w);
  dispatch_float(x.dtype, [&]<class T>() { conv2d_fwd_ref<T>(s, x.as<T>(), w.as<T>(), y.as<T>(), bias, relu); });
}
void RefBackend::conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) {
  require_dense("conv2d_bwd_data", {&dy, &dx});
  check_same(dy, w, "conv2d_bwd_data");
  const ConvShape s = conv_shape(dx, w);
  dispatch_float(dy.dtype, [&]<class T>() { conv2d_bwd_data_ref<T>(s, dy.as<T>(), w.as<T>(), dx.as<T>()); });
}
void RefBackend::conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) {
  require_dense("conv2d_bwd_weights", {&x, &dy});
  check_same(x, dy, "conv2d_bwd_weights");
  if (dw.dtype != DType::f32) fail("conv2d_bwd_weights: weight gradients are f32, got {}", dtype_name(dw.dtype));
  const ConvShape s = conv_shape(x, dw);
  dispatch_float(x.dtype, [&]<class T>() {
    if constexpr (std::is_same_v<acc_t<T>, float>) conv2d_bwd_weights_ref<T>(s, x.as<T>(), dy.as<T>(), dw.as<float>());
  });
}
void RefBackend::batchnorm_fwd_train(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) {
  require_dense("batchnorm_fwd_train", {&x, &y});
  dispatch_float(x.dtype, [&]<class T>() {
    batchnorm_fwd_train_ref<T>(bn_shape(x), x.as<T>(), bn.gamma, bn.beta, y.as<T>(), bn.save_mean, bn.save_invstd,
                               bn.running_mean, bn.running_var, relu);
  });
}
void RefBackend::batchnorm_fwd_infer(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) {
  require_dense("batchnorm_fwd_infer", {&x, &y});
  dispatch_float(x.dtype, [&]<class T>() {
    batchnorm_fwd_infer_ref<T>(bn_shape(x), x.as<T>(), bn.gamma, bn.beta, bn.running_mean, bn.running_var, y.as<T>(),
                               relu);
  });
}
void RefBackend::batchnorm_bwd(const Tensor& dy, const Tensor* relu_y, const Tensor& x, const BatchNormState& bn,
                               const Tensor& dx, float* dgamma, float* dbeta) {
  require_dense("batchnorm_bwd", {&dy, relu_y, &x, &dx});
  dispatch_float(x.dtype, [&]<class T>() {
    batchnorm_bwd_ref<T>(bn_shape(x), dy.as<T>(), x.as<T>(), bn.save_mean, bn.save_invstd, bn.gamma, dx.as<T>(), dgamma,
                         dbeta, relu_y ? relu_y->as<T>() : nullptr);
  });
}
void RefBackend::relu_fwd(const Tensor& x, const Tensor& y) {
  require_dense("relu_fwd", {&x, &y});
  dispatch_float(x.dtype, [&]<class T>() { relu_fwd_ref<T>(x.numel(), x.as<T>(), y.as<T>()); });
}
void RefBackend::relu_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) {
  require_dense("relu_bwd", {&dy, &y, &dx});
  dispatch_float(y.dtype, [&]<class T>() { relu_bwd_ref<T>(y.numel(), dy.as<T>(), y.as<T>(), dx.as<T>()); });
}
void RefBackend::maxpool_fwd(const Tensor& x, const Tensor& y) {
  require_dense("maxpool_fwd", {&x, &y});
  dispatch_float(x.dtype, [&]<class T>() { maxpool2x2_fwd_ref<T>(x.shape, x.as<T>(), y.as<T>()); });
}
void RefBackend::maxpool_bwd(const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) {
  require_dense("maxpool_bwd", {&x, &dy, &dx});
  dispatch_float(x.dtype,
                 [&]<class T>() { maxpool2x2_bwd_ref<T>(x.shape, x.as<T>(), dy.as<T>(), dx.as<T>(), accumulate); });
}
void RefBackend::upsample_fwd(const Tensor& x, const Tensor& y) {
  require_dense("upsample_fwd", {&x, &y});
  dispatch_float(x.dtype, [&]<class T>() { upsample2x_fwd_ref<T>(x.shape, x.as<T>(), y.as<T>()); });
}
void RefBackend::upsample_bwd(const Tensor& dy, const Tensor& dx) {
  require_dense("upsample_bwd", {&dy, &dx});
  dispatch_float(dx.dtype, [&]<class T>() { upsample2x_bwd_ref<T>(dx.shape, dy.as<T>(), dx.as<T>()); });
}
// The move takes y (and the backward dy) as a channel slice where the backend
// says it takes slices (the fast backend, derived from this one, runs this kernel).
void RefBackend::depth_to_space_fwd(const Tensor& x, const Tensor& y) {
  require_dense("depth_to_space_fwd", {&x, supports(Op::channel_slices, y.dtype) ? nullptr : &y});
  check_depth_to_space(x, y, "depth_to_space_fwd");
  dispatch_float(x.dtype,
                 [&]<class T>() { depth_to_space2x2_fwd_ref<T>(x.shape, x.as<T>(), y.as<T>(), size_t(y.stride())); });
}
void RefBackend::depth_to_space_bwd(const Tensor& dy, const Tensor& dx) {
  require_dense("depth_to_space_bwd", {supports(Op::channel_slices, dy.dtype) ? nullptr : &dy, &dx});
  check_depth_to_space(dx, dy, "depth_to_space_bwd");
  dispatch_float(dx.dtype,
                 [&]<class T>() { depth_to_space2x2_bwd_ref<T>(dx.shape, dy.as<T>(), size_t(dy.stride()), dx.as<T>()); });
}
void RefBackend::concat_fwd(const Tensor& a, const Tensor& b, const Tensor& y) {
  require_dense("concat_fwd", {&a, &b, &y});
  dispatch_float(a.dtype, [&]<class T>() {
    concat_fwd_ref<T>(a.shape.pixels(), a.shape.c, b.shape.c, a.as<T>(), b.as<T>(), y.as<T>());
  });
}
void RefBackend::upsample_concat_fwd(const Tensor& x, const Tensor& skip, const Tensor& y) {
  require_dense("upsample_concat_fwd", {&x, &skip, &y});
  check_same(x, skip, "upsample_concat_fwd");
  if (skip.shape.n != x.shape.n || skip.shape.h != 2 * x.shape.h || skip.shape.w != 2 * x.shape.w ||
      y.shape.c != x.shape.c + skip.shape.c)
    fail("upsample_concat_fwd: shapes {} (x2) + {} do not make {}", to_string(x.shape), to_string(skip.shape),
         to_string(y.shape));
  dispatch_float(x.dtype, [&]<class T>() {
    upsample2x_concat_fwd_ref<T>(x.shape, x.as<T>(), skip.as<T>(), skip.shape.c, y.as<T>());
  });
}
void RefBackend::concat_bwd(const Tensor& dy, const Tensor& da, const Tensor& db) {
  require_dense("concat_bwd", {&dy, &da, &db});
  dispatch_float(dy.dtype, [&]<class T>() {
    concat_bwd_ref<T>(da.shape.pixels(), da.shape.c, db.shape.c, dy.as<T>(), da.as<T>(), db.as<T>());
  });
}
void RefBackend::loss(const Tensor& logits, const uint8_t* target, LossWeights w, StepControl* ctl,
                      const Tensor* dlogits) {
  require_dense("loss", {&logits, dlogits});
  const size_t n = logits.numel();
  dispatch_float(logits.dtype, [&]<class T>() {
    loss_sums_ref<T>(n, logits.as<T>(), target, ctl->loss_sums);
    loss_finish(*ctl, double(n), w.bce, w.dice, kDiceSmooth);
    if (dlogits)
      loss_grad_ref<T>(n, logits.as<T>(), target, ctl->loss_den, ctl->loss_num, w, ctl->scale, dlogits->as<T>());
  });
}
void RefBackend::add_inplace(const Tensor& x, const Tensor& y) {
  require_dense("add_inplace", {&x, &y});
  dispatch_float(x.dtype, [&]<class T>() { add_inplace_ref<T>(x.numel(), x.as<T>(), y.as<T>()); });
}
void RefBackend::convert(const Tensor& x, const Tensor& y) {
  require_dense("convert", {&x, &y});
  if (x.numel() != y.numel()) fail("convert: {} values into {}", x.numel(), y.numel());
  if (x.dtype == y.dtype) {
    std::memcpy(y.data, x.data, x.bytes());
  } else if (x.dtype == DType::f32) {
    dispatch_float(y.dtype, [&]<class T>() { narrow_parallel(x.as<float>(), y.as<T>(), x.numel()); });
  } else if (y.dtype == DType::f32) {
    dispatch_float(x.dtype, [&]<class T>() { widen_parallel(x.as<T>(), y.as<float>(), x.numel()); });
  } else {
    fail("convert: {} to {} (one side must be f32)", dtype_name(x.dtype), dtype_name(y.dtype));
  }
}
void RefBackend::optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m,
                                float* v, size_t n, const Tensor& storage) {
  optimizer_step_ref(rule, *ctl, params, grads, m, v, n, storage);
}

LossValue compute_loss(Backend& be, const Tensor& logits, const uint8_t* target, LossWeights w, double grad_scale,
                       const Tensor* dlogits) {
  const size_t n = logits.numel();
  auto free_on_exit = [&be](void* p) { be.deallocate(p); };
  const std::unique_ptr<void, decltype(free_on_exit)> target_mem(be.allocate(n), free_on_exit),
      ctl_mem(be.allocate(sizeof(StepControl)), free_on_exit);
  if (!target_mem || !ctl_mem) fail("out of memory: the {} backend could not allocate the loss's {}", be.name(), memory_size_text(n));
  StepControl c;
  c.scale = grad_scale;
  be.copy_in(target_mem.get(), target, n);
  be.copy_in(ctl_mem.get(), &c, sizeof c);
  be.loss(logits, static_cast<const uint8_t*>(target_mem.get()), w, static_cast<StepControl*>(ctl_mem.get()), dlogits);
  be.copy_out(&c, ctl_mem.get(), sizeof c);
  return {c.loss_total, c.loss_bce, c.loss_dice};
}

ConvAlgorithm parse_conv_algorithm(std::string_view name) {
  if (name == "fastest") return ConvAlgorithm::fastest;
  if (name == "direct") return ConvAlgorithm::direct;
  if (name == "winograd") return ConvAlgorithm::winograd;
  if (name == "winograd_f2") return ConvAlgorithm::winograd_f2;
  if (name == "direct_banded") return ConvAlgorithm::direct_banded;
  fail("unknown convolution algorithm '{}' (expected fastest, direct, winograd, winograd_f2 or direct_banded)", name);
}

std::unique_ptr<Backend> make_ref_backend() { return std::make_unique<RefBackend>(); }

std::unique_ptr<Backend> make_backend(std::string_view name) {
  if (name == "ref") return make_ref_backend();
  if (name == "fast") return make_fast_backend();
  if (name == "cuda") return make_cuda_backend();  // says so without a GPU or without CUDA
  fail("unknown backend '{}' (expected ref, fast or cuda)", name);
}

}  // namespace mixseg
