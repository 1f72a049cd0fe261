// Tensors: a non-owning NHWC view (pointer, dtype, shape) and an owning buffer.
// Layout is NHWC everywhere: element (n, y, x, c) is at ((n*h + y)*w + x)*c + c.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

// Owning storage with 64-byte alignment, for tests, parameters and host data.
class Buffer {
 public:
  Buffer() = default;
  Buffer(DType dtype, Shape shape) : dtype_(dtype), shape_(shape), bytes_((shape.numel() * dtype_size(dtype) + 63) / 64) {}
  Tensor tensor() { return {bytes_.data(), dtype_, shape_}; }
  Tensor tensor() const { return {const_cast<Chunk*>(bytes_.data()), dtype_, shape_}; }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <class T>
  const T* as() const {
    return reinterpret_cast<const T*>(bytes_.data());
  }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  size_t numel() const { return shape_.numel(); }

 private:
  struct alignas(64) Chunk {
    std::byte b[64];
  };
  DType dtype_ = DType::f32;
  Shape shape_;
  std::vector<Chunk> bytes_;
};

}  // namespace mixseg
