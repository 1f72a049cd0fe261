// Fast CPU nearest 2x upsampling backward on NHWC: each input pixel's
// gradient is the sum of its 2x2 block of dy, in the reference's order
// (upper left, upper right, lower left, lower right) in f32 and rounded once,
// so it equals upsample2x_bwd_ref bit for bit. With C a multiple of 8 the
// channels go 8 to a vector (cpu/f32x8.h: the 16-bit conversions in the
// loads and stores); other channel counts run the reference kernel.
#pragma once
#include "core/tensor.h"

namespace mixseg {

template <class T>
void upsample2x_bwd_fast(const Shape& x_shape, const T* dy, T* dx);

}  // namespace mixseg
