// Reference channel concatenation kernels (see concat_ref.h).
#include "ops/concat_ref.h"

#include <algorithm>

namespace mixseg {

template <class T>
void concat_fwd_ref(size_t pixels, int ca, int cb, const T* a, const T* b, T* y) {
  const int c = ca + cb;
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < pixels; ++p) {
    copy_channels(a + p * ca, y + p * c, ca);
    copy_channels(b + p * cb, y + p * c + ca, cb);
  }
}

template <class T>
void concat_bwd_ref(size_t pixels, int ca, int cb, const T* dy, T* da, T* db) {
  const int c = ca + cb;
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < pixels; ++p) {
    copy_channels(dy + p * c, da + p * ca, ca);
    copy_channels(dy + p * c + ca, db + p * cb, cb);
  }
}

#define INSTANTIATE(T)                                                              \
  template void concat_fwd_ref<T>(size_t, int, int, const T*, const T*, T*); \
  template void concat_bwd_ref<T>(size_t, int, int, const T*, T*, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
