// Shape printing and channel slices.
#include "core/tensor.h"

#include <fmt/format.h>

#include "core/error.h"

namespace mixseg {

std::string to_string(const Shape& s) { return fmt::format("{}x{}x{}x{}", s.n, s.h, s.w, s.c); }

Tensor Tensor::channels(int c0, int c) const {
  if (!dense() || c0 < 0 || c < 1 || c0 + c > shape.c)
    fail("internal error: channels [{}, {}) of a {} tensor{}", c0, c0 + c, to_string(shape), dense() ? "" : " slice");
  Shape s = shape;
  s.c = c;
  return {data ? static_cast<std::byte*>(data) + size_t(c0) * dtype_size(dtype) : nullptr, dtype, s, shape.c};
}

void require_dense(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    if (t && !t->dense())
      fail("internal error: {} got a channel slice ({} of pixel stride {})", op, to_string(t->shape), t->stride());
}

}  // namespace mixseg
