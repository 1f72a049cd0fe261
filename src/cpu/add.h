// Fast CPU in-place add y += x on NHWC where y is a channel slice of a wider
// tensor (a gradient that fans in, kept inside its concat's gradient; its
// pixels y_stride values apart); dense tensors take the reference kernel.
// Each value widened, summed in f32 and rounded once, as add_inplace_ref.
#pragma once
#include "core/tensor.h"

namespace mixseg {

template <class T>
void add_inplace_fast(const Shape& s, const T* x, T* y, size_t y_stride);

}  // namespace mixseg
