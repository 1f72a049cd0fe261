// Reference in-place accumulation y += x, for gradients that fan in (a skip
// connection feeds both the pooling and the decoder's concat).
#pragma once
#include <cstddef>

#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void add_inplace_ref(size_t n, const T* x, T* y);

}  // namespace mixseg
