// Fast CPU nearest 2x upsampling on NHWC. The forward copies each input
// pixel's channels to its 2x2 block (fixed-size vector moves,
// copy_channels). The backward sums each 2x2 block of dy into its input
// pixel in the reference's order (upper left, upper right, lower left, lower
// right) in f32 and rounds once, so it equals upsample2x_bwd_ref bit for
// bit; channels go 8 to a vector (cpu/f32x8.h: the 16-bit conversions in the
// loads and stores), a tail of C % 8 one at a time. The upsampled side (y,
// dy) may be a channel slice of a wider tensor, its pixels y_stride values
// apart (the training workspace's decoder concat; the channel count when
// dense).
#pragma once
#include "core/tensor.h"

namespace mixseg {

template <class T>
void upsample2x_fwd_fast(const Shape& x_shape, const T* x, T* y, size_t y_stride);
template <class T>
void upsample2x_bwd_fast(const Shape& x_shape, const T* dy, size_t dy_stride, T* dx);

}  // namespace mixseg
