// The CPU reference backend: the Backend interface over the *_ref kernels,
// host memory, each op dispatched on the activation dtype. The fast CPU
// backend derives from it and replaces the ops it does better.
#pragma once
#include "core/backend.h"
#include "ops/batchnorm_ref.h"
#include "ops/conv2d_ref.h"

namespace mixseg {

class RefBackend : public Backend {
 public:
  std::string_view name() const override { return "ref"; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void copy_in(void* dst, const void* host_src, size_t bytes) override;
  void copy_out(void* host_dst, const void* src, size_t bytes) override;
  void synchronize() override {}
  bool supports(Op op, DType dtype) const override;

  void conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) override;
  void conv2d_fwd_bias(const Tensor& x, const Tensor& w, const float* bias, const Tensor& y, bool relu) override;
  void conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) override;
  void conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) override;
  void batchnorm_fwd_train(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override;
  void batchnorm_fwd_infer(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override;
  void batchnorm_bwd(const Tensor& dy, const Tensor* relu_y, const Tensor& x, const BatchNormState& bn, const Tensor& dx,
                     float* dgamma, float* dbeta) override;
  void relu_fwd(const Tensor& x, const Tensor& y) override;
  void relu_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override;
  void maxpool_fwd(const Tensor& x, const Tensor& y) override;
  void maxpool_bwd(const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) override;
  void upsample_fwd(const Tensor& x, const Tensor& y) override;
  void upsample_bwd(const Tensor& dy, const Tensor& dx) override;
  void depth_to_space_fwd(const Tensor& x, const Tensor& y) override;
  void depth_to_space_bwd(const Tensor& dy, const Tensor& dx) override;
  void concat_fwd(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void upsample_concat_fwd(const Tensor& x, const Tensor& skip, const Tensor& y) override;
  void concat_bwd(const Tensor& dy, const Tensor& da, const Tensor& db) override;
  void loss(const Tensor& logits, const uint8_t* target, LossWeights w, StepControl* ctl,
            const Tensor* dlogits) override;
  void add_inplace(const Tensor& x, const Tensor& y) override;
  void convert(const Tensor& x, const Tensor& y) override;
  void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m, float* v,
                      size_t n, const Tensor& storage) override;
};

// Checks shapes and returns the convolution's dimensions: x [N,H,W,Cin]
// activations, w [Cout,K,K,Cin] weights (or their gradient).
ConvShape conv_shape(const Tensor& x, const Tensor& w);
// BatchNorm's view of an NHWC tensor: [pixels, C], with the design's eps and momentum.
BatchNormShape bn_shape(const Tensor& x);
// Throws naming `op` unless x [N,H,W,4C] and y [N,2H,2W,C] share their dtype.
void check_depth_to_space(const Tensor& x, const Tensor& y, const char* op);

}  // namespace mixseg
