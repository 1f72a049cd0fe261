// Reference nearest-neighbour upsampling x2 on NHWC: x [N,H,W,C] ->
// y [N,2H,2W,C], y(2i+a, 2j+b) = x(i, j). The backward sums the four
// gradients of each source pixel in acc_t<T> and rounds once.
#pragma once
#include "core/tensor.h"
#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void upsample2x_fwd_ref(const Shape& x_shape, const T* x, T* y);
// The decoder's upsample and concat in one pass (no upsampled tensor is
// stored): y [N,2H,2W,C+Cs] = concat(upsample2x(x), skip) on channels, with
// skip [N,2H,2W,Cs]. Exact, like the two ops it replaces.
template <class T>
void upsample2x_concat_fwd_ref(const Shape& x_shape, const T* x, const T* skip, int skip_channels, T* y);
template <class T>
void upsample2x_bwd_ref(const Shape& x_shape, const T* dy, T* dx);

}  // namespace mixseg
