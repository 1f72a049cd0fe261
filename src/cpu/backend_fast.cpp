// The fast CPU backend: the reference backend with its convolutions replaced
// by oneDNN's (see cpu/conv2d.h). The other ops are the reference kernels,
// which are already vectorised and threaded; they are where fusion goes next.
#include "core/error.h"
#include "cpu/conv2d.h"
#include "ops/backend_ref.h"

namespace mixseg {

namespace {

class FastBackend final : public RefBackend {
 public:
  std::string_view name() const override { return "fast"; }

  void conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) override {
    convs_.forward(conv_shape(x, w), x.dtype, x.data, w.data, y.data);
  }
  void conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    convs_.backward_data(conv_shape(dx, w), dy.dtype, dy.data, w.data, dx.data);
  }
  void conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) override {
    if (dw.dtype != DType::f32) fail("conv2d_bwd_weights: weight gradients are f32, got {}", dtype_name(dw.dtype));
    convs_.backward_weights(conv_shape(x, dw), x.dtype, x.data, dy.data, dw.as<float>());
  }

 private:
  DnnlConvolutions convs_;
};

}  // namespace

std::unique_ptr<Backend> make_fast_backend() { return std::make_unique<FastBackend>(); }

}  // namespace mixseg
