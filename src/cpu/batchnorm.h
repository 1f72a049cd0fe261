// Fast CPU BatchNorm (+ fused ReLU), forward and backward: two passes over
// memory each way instead of the reference's four. Pixels are processed in
// blocks of kBlock pixels of C channels: for the U-Net's channel counts (8 to
// 1024, powers of two) 8 channels to a vector, reading and writing f16/bf16
// directly (cpu/f32x8.h); other counts widen each block to f32 once per pass
// (cpu/f32_view.h). Statistics are summed in f32 within a block and in
// double across blocks, in fixed chunks added in order, so the results do
// not depend on the thread count. Same rounding points as the reference
// (output rounded once); the variance is E[x^2] - mean^2 in double. The
// training forward's y and the backward's dy and relu_y may be channel
// slices of wider tensors (a skip connection inside its concat buffer):
// their pixels lie *_stride values apart (C when dense).
#pragma once
#include "ops/batchnorm_ref.h"

namespace mixseg {

template <class T>
void batchnorm_fwd_train_fast(const BatchNormShape& s, const T* x, const float* gamma, const float* beta, T* y,
                              size_t y_stride, float* save_mean, float* save_invstd, float* running_mean,
                              float* running_var, bool relu);
template <class T>
void batchnorm_fwd_infer_fast(const BatchNormShape& s, const T* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, T* y, bool relu);
template <class T>
void batchnorm_bwd_fast(const BatchNormShape& s, const T* dy, size_t dy_stride, const T* x, const float* save_mean,
                        const float* save_invstd, const float* gamma, T* dx, float* dgamma, float* dbeta,
                        const T* relu_y, size_t y_stride);

}  // namespace mixseg
