// Reference in-place add (see add_ref.h): widened, summed, rounded once.
#include "ops/add_ref.h"

namespace mixseg {

template <class T>
void add_inplace_ref(size_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) y[i] = store<T>(load(y[i]) + load(x[i]));
}

#define INSTANTIATE(T) template void add_inplace_ref<T>(size_t, const T*, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
