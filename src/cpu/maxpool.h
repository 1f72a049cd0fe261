// Fast CPU 2x2 max pooling, forward and backward, on NHWC (even H and W).
// Each output row reads its two input rows widened to f32 (the vectorised
// conversions of dtype.h; a plain load for f32), takes the maximum channel by
// channel in vector registers and rounds the row back, which is exact: the
// result is one of the inputs. The backward gives each window's gradient to
// its first maximum in row-major window order, like the reference (a later
// element wins only if strictly greater; a NaN first element keeps it), so
// both passes equal maxpool_ref bit for bit. With accumulate the backward
// adds to dx (each element rounded once, as the reference does). x and dx
// may be channel slices of wider tensors: their pixels lie x_stride and
// dx_stride values apart (the channel count when dense).
#pragma once
#include "core/tensor.h"

namespace mixseg {

template <class T>
void maxpool2x2_fwd_fast(const Shape& x_shape, const T* x, size_t x_stride, T* y);
template <class T>
void maxpool2x2_bwd_fast(const Shape& x_shape, const T* x, size_t x_stride, const T* dy, T* dx, size_t dx_stride,
                         bool accumulate);

}  // namespace mixseg
