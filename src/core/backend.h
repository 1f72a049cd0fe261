// The one narrow backend interface: memory (allocate/free, copies, sync), a
// capability query, the U-Net op set forward and backward, the training
// step's loss and fused optimizer on a control block in backend memory
// (core/step_control.h), and recording (replaying a fixed op sequence as one
// unit). Activations are NHWC tensors of one float dtype (f32, f16 or bf16);
// conv weights are OHWI tensors of the same dtype; BatchNorm parameters,
// statistics and all weight gradients are f32. Implementations: the CPU
// reference (src/ops), the fast CPU backend (src/cpu) and CUDA (src/cuda).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/step_control.h"
#include "core/tensor.h"
#include "ops/loss_ref.h"

namespace mixseg {

enum class Op {
  conv2d_fwd,
  conv2d_fwd_bias,
  conv2d_bwd_data,
  conv2d_bwd_weights,
  batchnorm_fwd_train,
  batchnorm_fwd_infer,
  batchnorm_bwd,
  relu_fwd,
  relu_bwd,
  maxpool_fwd,
  maxpool_bwd,
  upsample_fwd,
  upsample_bwd,
  upsample_concat_fwd,
  depth_to_space_fwd,
  depth_to_space_bwd,
  concat_fwd,
  concat_bwd,
  loss,
  add,
  convert,
  optimizer_step,
  // Not an op: whether the ops a U-Net skip connection passes through take
  // channel slices (Tensor::pixel_stride) where they appear: batchnorm_fwd_train's
  // y, batchnorm_bwd's dy and relu_y, maxpool_fwd's x, maxpool_bwd's x and
  // dx, upsample_fwd's y, upsample_bwd's dy, depth_to_space_fwd's y,
  // depth_to_space_bwd's dy, add's y. A training workspace then keeps the skip
  // and the upsampled tensor in their concat buffer, and their gradients in
  // its gradient's (network.cpp): no concat copies.
  channel_slices,
};

// BatchNorm's f32 state for one layer (pointers in the backend's memory).
struct BatchNormState {
  const float* gamma;
  const float* beta;
  float* running_mean;
  float* running_var;
  float* save_mean;    // batch mean, kept for the backward pass
  float* save_invstd;  // 1 / sqrt(batch var + eps)
  // Training, optional: room for the forward's per-channel factors (f32;
  // before the ReLU y = x * scale + shift, one fused multiply-add, rounded
  // once). A backend may keep them there and take the fused ReLU's mask in
  // the backward from x and these instead of reading the forward's output
  // (the CUDA backend: two reads of a tensor less per BatchNorm backward).
  float* save_scale = nullptr;
  float* save_shift = nullptr;
};

inline constexpr double kBatchNormEps = 1e-5;
inline constexpr double kBatchNormMomentum = 0.1;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // Backend memory is written only by copy_in and the ops below (never
  // through a raw pointer, even where it is host memory): backends may cache
  // derived data, such as transformed inference weights, until then.
  // Null when the memory is not there (callers say how much, and for what).
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  virtual void copy_in(void* dst, const void* host_src, size_t bytes) = 0;
  // Host memory for staging data on its way in (the loader's batches). The
  // CPU backends give ordinary memory; a CUDA backend gives pinned
  // (page-locked) memory so copies run at full speed and asynchronously.
  virtual void* allocate_host(size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }
  virtual void deallocate_host(void* p) { std::free(p); }
  virtual void copy_out(void* host_dst, const void* src, size_t bytes) = 0;
  // A copy in that may still be running when this returns (a GPU's copy
  // engine): host_src must stay unchanged until the next synchronize() or
  // copy_out, which wait for it. The CPU backends copy at once.
  virtual void copy_in_async(void* dst, const void* host_src, size_t bytes) { copy_in(dst, host_src, bytes); }
  virtual void synchronize() = 0;
  // Whether backend memory is ordinary host memory (the CPU backends), which
  // callers may then read in place (after synchronize) instead of copying out.
  virtual bool host_memory() const { return true; }
  virtual bool supports(Op op, DType dtype) const = 0;
  // Whether f32 convolutions may round their inputs to TF32 on tensor cores
  // (the tf32 policy, set by the network before its ops); the CPU backends
  // compute f32 either way.
  virtual void allow_tf32(bool /*allowed*/) {}
  // What the backend chose on its own so far (an algorithm per convolution
  // pass and shape), one line each: for benchmark metadata, and for a later
  // run to follow (replay_choices).
  virtual std::vector<std::string> choices() const { return {}; }
  // How it ran beyond those choices (e.g. CUDA graphs recorded), for
  // benchmark metadata.
  virtual std::vector<std::string> notes() const { return {}; }
  // Makes the choices listed (lines as choices() writes them, e.g. from a
  // recorded run) instead of deciding again, for the shapes they name: the
  // same algorithms give the same bits on the same machine and thread count.
  // Throws naming a line this backend cannot follow; a backend that decides
  // nothing (the reference) follows only an empty list. (Inline, like every
  // member here: Backend has no out-of-line key function, so the fuzz
  // targets, which link part of the library, need no backend source for
  // its vtable.)
  virtual void replay_choices(const std::vector<std::string>& lines) {
    if (!lines.empty())
      fail("the {} backend makes no choices of its own; '{}' is not one of them", name(), lines.front());
  }

  // Convolution, stride 1, same padding, kernel size from w's shape [Cout,K,K,Cin].
  virtual void conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) = 0;
  // Inference with BatchNorm folded into w: y = conv(x, w) + bias, then
  // max(y, 0) when relu is true, rounded once. bias: [Cout] f32 in the
  // backend's memory, or null.
  virtual void conv2d_fwd_bias(const Tensor& x, const Tensor& w, const float* bias, const Tensor& y, bool relu) = 0;
  virtual void conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) = 0;
  // dw: f32, OHWI [Cout,K,K,Cin], overwritten. Summed in f32; the CUDA
  // backend's pass through x's storage type on the way (cuDNN writes dw in
  // the inputs' type, as in other frameworks' mixed precision on GPUs).
  virtual void conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) = 0;
  // BatchNorm, fused with the ReLU that follows it in every convblock when
  // relu is true: y = max(batchnorm(x), 0).
  virtual void batchnorm_fwd_train(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) = 0;
  virtual void batchnorm_fwd_infer(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) = 0;
  // Backward of the training forward. relu_y: null, or the fused forward's
  // output y, whose zeros mask dy (ReLU's backward, done on the fly).
  virtual void batchnorm_bwd(const Tensor& dy, const Tensor* relu_y, const Tensor& x, const BatchNormState& bn,
                             const Tensor& dx, float* dgamma, float* dbeta) = 0;
  virtual void relu_fwd(const Tensor& x, const Tensor& y) = 0;                     // may be in place
  virtual void relu_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) = 0;  // may be in place
  virtual void maxpool_fwd(const Tensor& x, const Tensor& y) = 0;
  // accumulate: dx += the gradient, each element rounded once (what writing
  // it elsewhere and add_inplace would give: the skip connection's second
  // gradient without a pass through scratch memory), else dx = it.
  virtual void maxpool_bwd(const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) = 0;
  virtual void upsample_fwd(const Tensor& x, const Tensor& y) = 0;
  virtual void upsample_bwd(const Tensor& dy, const Tensor& dx) = 0;
  // 2x2 depth-to-space, x [N,H,W,4C] -> y [N,2H,2W,C] (ops/depth_to_space_ref.h):
  // with a 1x1 convolution to 4C channels before it, the transposed-convolution upsampling.
  virtual void depth_to_space_fwd(const Tensor& x, const Tensor& y) = 0;
  virtual void depth_to_space_bwd(const Tensor& dy, const Tensor& dx) = 0;
  virtual void concat_fwd(const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  // y = concat(upsample(x), skip) in one pass (the decoder's two ops fused).
  virtual void upsample_concat_fwd(const Tensor& x, const Tensor& skip, const Tensor& y) = 0;
  // Inference, the decoder's three ops: y = conv2d_fwd_bias(concat(
  // upsample(x), skip), w, bias, relu). cat is the concat buffer; this
  // default fills it and runs the convolution, a backend with a fused kernel
  // may leave it unwritten.
  virtual void upsample_concat_conv2d_fwd_bias(const Tensor& x, const Tensor& skip, const Tensor& cat, const Tensor& w,
                                               const float* bias, const Tensor& y, bool relu) {
    upsample_concat_fwd(x, skip, cat);
    conv2d_fwd_bias(cat, w, bias, y, relu);
  }
  virtual void concat_bwd(const Tensor& dy, const Tensor& da, const Tensor& db) = 0;
  // Loss of logits against 0/1 targets (same element count, in the
  // backend's memory), written into the step's control block `ctl` (backend
  // memory: loss_total, loss_bce, loss_dice and the sums); when dlogits is
  // non-null, the gradient times ctl->scale (the loss scale) goes there.
  // No value comes back to the host: a training step never waits for one.
  virtual void loss(const Tensor& logits, const uint8_t* target, LossWeights w, StepControl* ctl,
                    const Tensor* dlogits) = 0;
  virtual void add_inplace(const Tensor& x, const Tensor& y) = 0;  // y += x
  // y = x converted to y's dtype (f32 <-> f16/bf16, rounding to nearest even).
  virtual void convert(const Tensor& x, const Tensor& y) = 0;
  // The optimizer step of (mixed-precision) training in one op, on the
  // backend's memory: the finite check of the n f32 weight gradients (and of
  // ctl->loss_total), the loss scaler's decision (step_decide), and, when the
  // step is applied, the update of the f32 masters `params` with the moments
  // m and v (update_element: the loss scale divided out on the fly) and the
  // copy of the new masters in `storage`'s dtype (storage.data null: the
  // masters are the storage, fp32). Skipped steps change only ctl.
  virtual void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m,
                              float* v, size_t n, const Tensor& storage) = 0;

  // Recording: a backend that can replay a sequence of ops as one unit (CUDA
  // graphs) records the ops issued between begin_recording() and
  // end_recording() instead of running them, and replay() runs them again,
  // on the same buffers, reading their current contents. Recorded ops must
  // not need the host between them (no copy_out, no synchronize) and must
  // have run once before (so their one-time set-up is done). The CPU
  // backends do not record: begin_recording() returns false and the caller
  // runs the ops as usual.
  virtual bool begin_recording() { return false; }
  // The recording's handle, or -1 if it failed (the ops did not run; the
  // caller runs them as usual).
  virtual int end_recording() { return -1; }
  virtual void replay(int /*recording*/) {}
  virtual void release_recording(int /*recording*/) {}
};

// The loss on host values, for callers outside a training step (tests):
// copies target in, runs the op with a control block holding
// grad_scale, and returns the loss (synchronising).
LossValue compute_loss(Backend& be, const Tensor& logits, const uint8_t* target, LossWeights w, double grad_scale,
                       const Tensor* dlogits);

// How the fast backend picks its convolutions: by timing each candidate once
// per shape and pass (fastest), or always one of them (tests, comparisons):
// oneDNN's direct or Winograd F(4x4,3x3) kernels, or the own Winograd
// kernels, F(2x2,3x3) for the forward and backward-data passes and
// F(3x3,2x2) for backward-weights (cpu/conv2d_winograd.h; the shapes they
// do not take fall back to the fastest of oneDNN's), or oneDNN's direct
// kernels with backward-weights run on the image cut into bands at batches
// below the thread count (direct_banded; cpu/conv2d.cpp).
enum class ConvAlgorithm { fastest, direct, winograd, winograd_f2, direct_banded };
// "fastest", "direct", "winograd", "winograd_f2" or "direct_banded"; the error lists the names.
ConvAlgorithm parse_conv_algorithm(std::string_view name);

std::unique_ptr<Backend> make_ref_backend();
std::unique_ptr<Backend> make_fast_backend(ConvAlgorithm convolutions = ConvAlgorithm::fastest);  // oneDNN (src/cpu)
// "ref" or "fast"; the error lists the names.
std::unique_ptr<Backend> make_backend(std::string_view name);

}  // namespace mixseg
