// Reference ReLU. The backward takes the forward's output y (y > 0 exactly
// where the input was > 0), so the forward may run in place and nothing else
// needs to be kept.
#pragma once
#include <cstddef>

#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void relu_fwd_ref(size_t n, const T* x, T* y);
template <class T>
void relu_bwd_ref(size_t n, const T* dy, const T* y, T* dx);

}  // namespace mixseg
