// Reference BatchNorm over the channels of an NHWC tensor viewed as
// [pixels, C]. Statistics, the affine transform and all parameters are
// acc_t<T> (f32) whatever the storage type T; statistics are summed in double
// in fixed chunks, so they are exact to f32 and independent of thread count.
// Running statistics follow PyTorch: r = (1 - momentum) r + momentum * batch,
// with the unbiased variance for running_var.
#pragma once
#include <cstddef>

#include "ops/kernel_types.h"

namespace mixseg {

struct BatchNormShape {
  size_t pixels;  // N * H * W
  int c;
  double eps = 1e-5;
  double momentum = 0.1;
};

// Training: normalises with batch statistics, saves mean and 1/sqrt(var+eps)
// for the backward pass, updates the running statistics (if non-null).
// With relu, y = max(batchnorm(x), 0) (the fused convblock tail).
template <class T>
void batchnorm_fwd_train_ref(const BatchNormShape& s, const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, T* y,
                             acc_t<T>* save_mean, acc_t<T>* save_invstd, acc_t<T>* running_mean,
                             acc_t<T>* running_var, bool relu = false);
// Inference: normalises with the running statistics (then ReLU if asked).
template <class T>
void batchnorm_fwd_infer_ref(const BatchNormShape& s, const T* x, const acc_t<T>* gamma, const acc_t<T>* beta,
                             const acc_t<T>* running_mean, const acc_t<T>* running_var, T* y, bool relu = false);
// Backward of the training forward: dx, and dgamma, dbeta (overwritten).
// relu_y: null, or the fused forward's output, whose zeros mask dy (ReLU's backward).
template <class T>
void batchnorm_bwd_ref(const BatchNormShape& s, const T* dy, const T* x, const acc_t<T>* save_mean,
                       const acc_t<T>* save_invstd, const acc_t<T>* gamma, T* dx, acc_t<T>* dgamma, acc_t<T>* dbeta,
                       const T* relu_y = nullptr);

}  // namespace mixseg
