// Reference nearest-neighbour upsampling x2 on NHWC: x [N,H,W,C] ->
// y [N,2H,2W,C], y(2i+a, 2j+b) = x(i, j). The backward sums the four
// gradients of each source pixel in acc_t<T> and rounds once.
#pragma once
#include "core/tensor.h"
#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void upsample2x_fwd_ref(const Shape& x_shape, const T* x, T* y);
template <class T>
void upsample2x_bwd_ref(const Shape& x_shape, const T* dy, T* dx);

}  // namespace mixseg
