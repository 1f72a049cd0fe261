// Reference ReLU kernels (see relu_ref.h). Exact in every storage type
// (relu_active in kernel_types.h says what "> 0" means for 16-bit data).
#include "ops/relu_ref.h"

namespace mixseg {

template <class T>
void relu_fwd_ref(size_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) y[i] = relu_active(x[i]) ? x[i] : T{};
}

template <class T>
void relu_bwd_ref(size_t n, const T* dy, const T* y, T* dx) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) dx[i] = relu_active(y[i]) ? dy[i] : T{};
}

#define INSTANTIATE(T)                                 \
  template void relu_fwd_ref<T>(size_t, const T*, T*); \
  template void relu_bwd_ref<T>(size_t, const T*, const T*, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
