// Fast CPU in-place add into a channel slice (see add.h).
#include "cpu/add.h"

#include "ops/kernel_types.h"

namespace mixseg {

template <class T>
void add_inplace_fast(const Shape& s, const T* x, T* y, size_t ys) {
  const size_t c = size_t(s.c);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < s.pixels(); ++p)
    for (size_t j = 0; j < c; ++j) y[p * ys + j] = store<T>(load(y[p * ys + j]) + load(x[p * c + j]));
}

template void add_inplace_fast<float>(const Shape&, const float*, float*, size_t);
template void add_inplace_fast<f16>(const Shape&, const f16*, f16*, size_t);
template void add_inplace_fast<bf16>(const Shape&, const bf16*, bf16*, size_t);

}  // namespace mixseg
