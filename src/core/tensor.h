// Tensors: a non-owning NHWC view (pointer, dtype, shape); memory comes from an
// Arena (activations) or a backend allocation.
// Layout is NHWC everywhere: element (n, y, x, c) is at ((n*H + y)*W + x)*C + c.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace mixseg {

struct Shape {
  int n = 0, h = 0, w = 0, c = 0;
  size_t numel() const { return size_t(n) * h * w * c; }
  size_t pixels() const { return size_t(n) * h * w; }
  bool operator==(const Shape&) const = default;
};
std::string to_string(const Shape& s);

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  Shape shape;

  size_t numel() const { return shape.numel(); }
  size_t bytes() const { return numel() * dtype_size(dtype); }
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

}  // namespace mixseg
