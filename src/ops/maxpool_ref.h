// Reference max pooling, 2x2 window, stride 2, on NHWC. x: [N,H,W,C] with even
// H and W, y: [N,H/2,W/2,C]. The backward recomputes each window's argmax from
// x (the first maximum in row-major window order gets the gradient, as in
// cuDNN and PyTorch), so no index tensor is kept.
#pragma once
#include "core/tensor.h"
#include "ops/kernel_types.h"

namespace mixseg {

// Throws naming the shape unless H and W are even.
void check_maxpool2x2_shape(const Shape& x_shape);

template <class T>
void maxpool2x2_fwd_ref(const Shape& x_shape, const T* x, T* y);
// accumulate: dx += the gradient (each element rounded once, as writing it
// and adding would), else dx = the gradient.
template <class T>
void maxpool2x2_bwd_ref(const Shape& x_shape, const T* x, const T* dy, T* dx, bool accumulate = false);

}  // namespace mixseg
