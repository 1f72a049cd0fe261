// The fast CPU backend: the reference backend with its convolutions replaced
// by oneDNN's (see cpu/conv2d.h) and BatchNorm+ReLU by fused two-pass kernels
// (cpu/batchnorm.h), max pooling by row-wise vectorised kernels
// (cpu/maxpool.h), the upsampling's backward by 8-channel vectors
// (cpu/upsample.h), the loss with vector exp and log1p (cpu/loss.h),
// inference convolutions with the folded BatchNorm's bias
// and the ReLU as oneDNN post-ops (or the own Winograd kernel, which also
// reads the decoder's upsample+concat on the fly). The other ops are the reference kernels,
// which are vectorised and threaded already. Denormals are flushed to zero
// during its convolution and BatchNorm ops (see core/threads.h). It takes
// channel slices where Op::channel_slices lists them (training keeps the
// skip connections and the upsampled tensors inside their concat buffers);
// every other tensor must be dense.
#include "core/error.h"
#include "core/threads.h"
#include "cpu/add.h"
#include "cpu/batchnorm.h"
#include "cpu/conv2d.h"
#include "cpu/loss.h"
#include "cpu/maxpool.h"
#include "cpu/upsample.h"
#include "ops/backend_ref.h"

namespace mixseg {

namespace {

class FastBackend final : public RefBackend {
 public:
  explicit FastBackend(ConvAlgorithm convolutions) { convs_.set_algorithm(convolutions); }
  std::string_view name() const override { return "fast"; }
  bool supports(Op op, DType t) const override {
    return op == Op::channel_slices ? traits(t).is_float : RefBackend::supports(op, t);
  }
  std::vector<std::string> choices() const override { return convs_.chosen_algorithms(); }
  void replay_choices(const std::vector<std::string>& lines) override { convs_.replay_choices(lines); }
  // All writes into backend memory come through copy_in (the interface's
  // contract), so cached inference weights are dropped there.
  void copy_in(void* dst, const void* host_src, size_t bytes) override {
    RefBackend::copy_in(dst, host_src, bytes);
    convs_.invalidate_weights(dst, bytes);
  }
  void deallocate(void* p) override {
    convs_.invalidate_weights(nullptr, 0);
    RefBackend::deallocate(p);
  }
  // The two ops that may write weights (the updated masters and their
  // storage copy; a conversion into any tensor) drop the cached forms too.
  void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m, float* v,
                      size_t n, const Tensor& storage) override {
    RefBackend::optimizer_step(rule, ctl, params, grads, m, v, n, storage);
    convs_.invalidate_weights(params, n * sizeof(float));
    if (storage.data) convs_.invalidate_weights(storage.data, storage.bytes());
  }
  void convert(const Tensor& x, const Tensor& y) override {
    RefBackend::convert(x, y);
    convs_.invalidate_weights(y.data, y.bytes());
  }

  void conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) override {
    require_dense("conv2d_fwd", {&x, &y});
    const ScopedFlushDenormals ftz;
    convs_.forward(conv_shape(x, w), x.dtype, x.data, w.data, y.data);
  }
  void conv2d_fwd_bias(const Tensor& x, const Tensor& w, const float* bias, const Tensor& y, bool relu) override {
    require_dense("conv2d_fwd_bias", {&x, &y});
    const ScopedFlushDenormals ftz;
    if (x.dtype != w.dtype) fail("conv2d_fwd_bias: dtype mismatch ({} vs {})", dtype_name(x.dtype), dtype_name(w.dtype));
    convs_.forward_bias(conv_shape(x, w), x.dtype, x.data, w.data, bias, y.data, relu);
  }
  void upsample_concat_conv2d_fwd_bias(const Tensor& x, const Tensor& skip, const Tensor& cat, const Tensor& w,
                                       const float* bias, const Tensor& y, bool relu) override {
    require_dense("upsample_concat_conv2d_fwd_bias", {&x, &skip, &cat, &y});
    {
      const ScopedFlushDenormals ftz;
      if (x.dtype == w.dtype && x.dtype == skip.dtype && cat.shape.c == x.shape.c + skip.shape.c &&
          cat.shape.h == 2 * x.shape.h && cat.shape.w == 2 * x.shape.w && skip.shape.h == cat.shape.h &&
          skip.shape.w == cat.shape.w &&
          convs_.forward_bias_upsample_concat(conv_shape(cat, w), x.dtype, x.data, x.shape.c, skip.data, w.data,
                                              bias, y.data, relu))
        return;
    }
    RefBackend::upsample_concat_conv2d_fwd_bias(x, skip, cat, w, bias, y, relu);  // checks and reports bad shapes
  }
  void conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    require_dense("conv2d_bwd_data", {&dy, &dx});
    const ScopedFlushDenormals ftz;
    convs_.backward_data(conv_shape(dx, w), dy.dtype, dy.data, w.data, dx.data);
  }
  void conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) override {
    require_dense("conv2d_bwd_weights", {&x, &dy});
    const ScopedFlushDenormals ftz;
    if (dw.dtype != DType::f32) fail("conv2d_bwd_weights: weight gradients are f32, got {}", dtype_name(dw.dtype));
    convs_.backward_weights(conv_shape(x, dw), x.dtype, x.data, dy.data, dw.as<float>());
  }

  // BatchNorm, pooling and upsampling: the operands Op::channel_slices lists
  // may be slices (their pixel strides go to the kernels), the rest dense.
  void batchnorm_fwd_train(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override {
    require_dense("batchnorm_fwd_train", {&x});
    const ScopedFlushDenormals ftz;
    dispatch_float(x.dtype, [&]<class T>() {
      batchnorm_fwd_train_fast<T>(bn_shape(x), x.as<T>(), bn.gamma, bn.beta, y.as<T>(), size_t(y.stride()),
                                  bn.save_mean, bn.save_invstd, bn.running_mean, bn.running_var, relu);
    });
  }
  void batchnorm_fwd_infer(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override {
    require_dense("batchnorm_fwd_infer", {&x, &y});
    const ScopedFlushDenormals ftz;
    dispatch_float(x.dtype, [&]<class T>() {
      batchnorm_fwd_infer_fast<T>(bn_shape(x), x.as<T>(), bn.gamma, bn.beta, bn.running_mean, bn.running_var, y.as<T>(),
                                  relu);
    });
  }
  void batchnorm_bwd(const Tensor& dy, const Tensor* relu_y, const Tensor& x, const BatchNormState& bn,
                     const Tensor& dx, float* dgamma, float* dbeta) override {
    require_dense("batchnorm_bwd", {&x, &dx});
    const ScopedFlushDenormals ftz;
    dispatch_float(x.dtype, [&]<class T>() {
      batchnorm_bwd_fast<T>(bn_shape(x), dy.as<T>(), size_t(dy.stride()), x.as<T>(), bn.save_mean, bn.save_invstd,
                            bn.gamma, dx.as<T>(), dgamma, dbeta, relu_y ? relu_y->as<T>() : nullptr,
                            relu_y ? size_t(relu_y->stride()) : 0);
    });
  }

  void maxpool_fwd(const Tensor& x, const Tensor& y) override {
    require_dense("maxpool_fwd", {&y});
    dispatch_float(x.dtype,
                   [&]<class T>() { maxpool2x2_fwd_fast<T>(x.shape, x.as<T>(), size_t(x.stride()), y.as<T>()); });
  }
  void maxpool_bwd(const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) override {
    require_dense("maxpool_bwd", {&dy});
    dispatch_float(x.dtype, [&]<class T>() {
      maxpool2x2_bwd_fast<T>(x.shape, x.as<T>(), size_t(x.stride()), dy.as<T>(), dx.as<T>(), size_t(dx.stride()),
                             accumulate);
    });
  }
  void upsample_fwd(const Tensor& x, const Tensor& y) override {
    require_dense("upsample_fwd", {&x});
    dispatch_float(x.dtype,
                   [&]<class T>() { upsample2x_fwd_fast<T>(x.shape, x.as<T>(), y.as<T>(), size_t(y.stride())); });
  }
  void upsample_bwd(const Tensor& dy, const Tensor& dx) override {
    require_dense("upsample_bwd", {&dx});
    dispatch_float(dx.dtype,
                   [&]<class T>() { upsample2x_bwd_fast<T>(dx.shape, dy.as<T>(), size_t(dy.stride()), dx.as<T>()); });
  }
  // y += x where y may be a slice (a gradient inside its concat's).
  void add_inplace(const Tensor& x, const Tensor& y) override {
    if (y.dense()) return RefBackend::add_inplace(x, y);
    require_dense("add_inplace", {&x});
    dispatch_float(x.dtype, [&]<class T>() { add_inplace_fast<T>(y.shape, x.as<T>(), y.as<T>(), size_t(y.stride())); });
  }

  // The reference's loss with vector exp and log1p (cpu/loss.h).
  void loss(const Tensor& logits, const uint8_t* target, LossWeights w, StepControl* ctl,
            const Tensor* dlogits) override {
    require_dense("loss", {&logits, dlogits});
    const size_t n = logits.numel();
    dispatch_float(logits.dtype, [&]<class T>() {
      loss_sums_fast<T>(n, logits.as<T>(), target, ctl->loss_sums);
      loss_finish(*ctl, double(n), w.bce, w.dice, kDiceSmooth);
      if (dlogits)
        loss_grad_fast<T>(n, logits.as<T>(), target, ctl->loss_den, ctl->loss_num, w, ctl->scale, dlogits->as<T>());
    });
  }

 private:
  DnnlConvolutions convs_;
};

}  // namespace

std::unique_ptr<Backend> make_fast_backend(ConvAlgorithm convolutions) {
  return std::make_unique<FastBackend>(convolutions);
}

}  // namespace mixseg
