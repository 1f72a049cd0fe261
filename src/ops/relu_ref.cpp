// Reference ReLU kernels (see relu_ref.h). Exact in every storage type.
// For f16 and bf16 the test "x > 0" is done on the bits read as a signed
// 16-bit integer (positive exactly when the sign bit is clear and the value
// is not zero), which the compiler vectorises; it lets a positive NaN through,
// where the f32 comparison gives 0. NaN handling of ReLU is not relied on.
#include "ops/relu_ref.h"

#include <cstdint>

namespace mixseg {

namespace {
template <class T>
inline bool positive(T v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>)
    return int16_t(v.bits) > 0;
  else
    return v > 0;
}
}  // namespace

template <class T>
void relu_fwd_ref(size_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) y[i] = positive(x[i]) ? x[i] : T{};
}

template <class T>
void relu_bwd_ref(size_t n, const T* dy, const T* y, T* dx) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) dx[i] = positive(y[i]) ? dy[i] : T{};
}

#define INSTANTIATE(T)                                 \
  template void relu_fwd_ref<T>(size_t, const T*, T*); \
  template void relu_bwd_ref<T>(size_t, const T*, const T*, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
