// Reference channel concatenation on NHWC: y [P, ca+cb] = [a [P, ca], b [P, cb]]
// over P = N*H*W pixels; the backward splits dy back. Exact (pure copies).
#pragma once
#include <cstddef>

#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void concat_fwd_ref(size_t pixels, int ca, int cb, const T* a, const T* b, T* y);
template <class T>
void concat_bwd_ref(size_t pixels, int ca, int cb, const T* dy, T* da, T* db);

}  // namespace mixseg
