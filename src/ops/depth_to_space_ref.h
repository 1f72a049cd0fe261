// Reference 2x2 depth-to-space on NHWC: x [N,H,W,4C] -> y [N,2H,2W,C],
// y(2i+a, 2j+b, c) = x(i, j, (2a+b)C + c). It is what turns a 1x1
// convolution to 4C channels into a 2x2 stride-2 transposed convolution
// (whose four outputs per input pixel are disjoint): the decoder's learned
// upsampling. The backward is the inverse move; both are exact copies.
// y (and the backward's dy) may be a channel slice of a wider tensor: its
// pixel stride y_stride (elements) at least C (training's zero-copy concat).
#pragma once
#include "core/tensor.h"
#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void depth_to_space2x2_fwd_ref(const Shape& x_shape, const T* x, T* y, size_t y_stride);
template <class T>
void depth_to_space2x2_bwd_ref(const Shape& x_shape, const T* dy, size_t dy_stride, T* dx);

}  // namespace mixseg
