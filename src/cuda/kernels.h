// The CUDA backend's own kernels, as plain launch functions (no project
// types, so the .cu files compile as C++17 under nvcc while the backend in
// backend_cuda.cpp is C++20). Every pointer is device memory, activations are
// NHWC in one storage type (f32, f16 or bf16; BatchNorm parameters,
// statistics and weight gradients f32), and every launch goes to `stream`.
// Numerics follow the CPU reference (src/ops/*_ref): values widen to f32,
// results round once to the storage type (round to nearest even), BatchNorm
// and loss reductions accumulate in double.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/step_control.h"

namespace mixseg::cuda {

enum class FloatType : int { f32 = 0, f16 = 1, bf16 = 2 };

// The kernels over NHWC tensors take 16-byte channel vectors where the sizes
// allow (cuda_types.cuh) unless MIXSEG_CUDA_VECTORS=0 (to measure what they
// buy on a GPU: gpu-check.sh runs one configuration both ways).
inline bool vectors_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("MIXSEG_CUDA_VECTORS");
    return !e || std::strcmp(e, "0") != 0;
  }();
  return on;
}

// relu.cu: y = x where x > 0 (for 16-bit: positive non-zero bits), else +0; dx likewise masked by y.
void relu_fwd(FloatType t, size_t n, const void* x, void* y, cudaStream_t stream);
void relu_bwd(FloatType t, size_t n, const void* dy, const void* y, void* dx, cudaStream_t stream);
// The *_stride arguments: elements from one pixel to the next in a tensor
// that may be a channel slice of a wider one (Tensor::pixel_stride; the
// tensor's own channel count where it is dense).
// add.cu: y [pixels, c] = round(y + x).
void add_inplace(FloatType t, size_t pixels, int c, const void* x, void* y, int y_stride, cudaStream_t stream);
// maxpool.cu: 2x2, stride 2, x [n, h, w, c] (h, w even); the first maximum of a window gets the gradient
// (accumulate: dx += it, rounded once per element).
void maxpool_fwd(FloatType t, int n, int h, int w, int c, const void* x, int x_stride, void* y, cudaStream_t stream);
void maxpool_bwd(FloatType t, int n, int h, int w, int c, const void* x, int x_stride, const void* dy, void* dx,
                 int dx_stride, bool accumulate, cudaStream_t stream);
// upsample.cu: nearest 2x of x [n, h, w, c]; the backward sums each 2x2 block of dy [n, 2h, 2w, c];
// upsample_concat: y [n, 2h, 2w, c + cs] = concat(upsample(x), skip [n, 2h, 2w, cs]).
void upsample_fwd(FloatType t, int n, int h, int w, int c, const void* x, void* y, int y_stride, cudaStream_t stream);
void upsample_bwd(FloatType t, int n, int h, int w, int c, const void* dy, int dy_stride, void* dx,
                  cudaStream_t stream);
void upsample_concat_fwd(FloatType t, int n, int h, int w, int c, const void* x, int cs, const void* skip, void* y,
                         cudaStream_t stream);
// depth_to_space.cu: 2x2 depth-to-space, x [n, h, w, 4c] -> y [n, 2h, 2w, c]
// (ops/depth_to_space_ref.h); the backward moves dy back to dx [n, h, w, 4c].
// y and dy may be channel slices (pixel strides y_stride, dy_stride >= c).
void depth_to_space_fwd(FloatType t, int n, int h, int w, int c, const void* x, void* y, int y_stride,
                        cudaStream_t stream);
void depth_to_space_bwd(FloatType t, int n, int h, int w, int c, const void* dy, int dy_stride, void* dx,
                        cudaStream_t stream);
// concat.cu: channels of a [pixels, ca] then b [pixels, cb].
void concat_fwd(FloatType t, size_t pixels, int ca, int cb, const void* a, const void* b, void* y, cudaStream_t stream);
void concat_bwd(FloatType t, size_t pixels, int ca, int cb, const void* dy, void* da, void* db, cudaStream_t stream);
// conv2d_epilogue.cu: y = round(max(y + bias, 0)) per channel (bias f32 [c], or null; relu optional).
void bias_relu(FloatType t, size_t pixels, int c, const float* bias, bool relu, void* y, cudaStream_t stream);

// batchnorm.cu. scratch: batchnorm_scratch_bytes(c) of device memory; sums
// (training and backward): batchnorm_sums_bytes(c), all zero before its first
// use (each pass leaves it zero again: no memsets between passes).
size_t batchnorm_scratch_bytes(int c);
size_t batchnorm_sums_bytes(int c);
int batchnorm_max_channels();
// save_scale, save_shift: null, or where the forward keeps its factors (y = fma(x, scale, shift) before
// the ReLU) for the backward's mask.
void batchnorm_fwd_train(FloatType t, size_t pixels, int c, double eps, double momentum, const void* x,
                         const float* gamma, const float* beta, void* y, int y_stride, float* save_mean,
                         float* save_invstd, float* running_mean, float* running_var, float* save_scale,
                         float* save_shift, bool relu, void* scratch, void* sums, cudaStream_t stream);
void batchnorm_fwd_infer(FloatType t, size_t pixels, int c, double eps, const void* x, const float* gamma,
                         const float* beta, const float* running_mean, const float* running_var, void* y, bool relu,
                         void* scratch, cudaStream_t stream);
// relu_y: null, or the fused forward's output whose non-positive entries mask dy; with the
// forward's factors (non-null save_scale, save_shift) the mask is recomputed from x instead, bit
// for bit the same, and relu_y is not read.
void batchnorm_bwd(FloatType t, size_t pixels, int c, const void* dy, int dy_stride, const void* relu_y,
                   int relu_y_stride, const void* x, const float* save_mean, const float* save_invstd,
                   const float* save_scale, const float* save_shift, const float* gamma, void* dx, float* dgamma,
                   float* dbeta, void* scratch, void* sums, cudaStream_t stream);

// loss.cu: BCE on logits + soft Dice (ops/loss_ref.h) into the step's
// control block ctl: the four sums (double atomics), loss_finish on the
// device, then, when dlogits is non-null, the gradient times ctl->scale.
void loss(FloatType t, size_t n, const void* logits, const uint8_t* target, double w_bce, double w_dice, double smooth,
          StepControl* ctl, void* dlogits, cudaStream_t stream);

// convert.cu: y = x converted (f32 <-> f16/bf16, or a copy when the types are equal).
void convert(FloatType from, FloatType to, size_t n, const void* x, void* y, cudaStream_t stream);

// optimizer_step.cu: Backend::optimizer_step: the finite check, the decision
// (one thread: step_decide), the update of the masters and, when storage is
// non-null, their copy in storage_type.
void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m, float* v,
                    size_t n, FloatType storage_type, void* storage, cudaStream_t stream);

}  // namespace mixseg::cuda
