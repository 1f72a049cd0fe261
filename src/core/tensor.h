// Tensors: a non-owning NHWC view (pointer, dtype, shape); memory comes from an
// Arena (activations) or a backend allocation.
// Layout is NHWC everywhere: element (n, y, x, c) is at ((n*H + y)*W + x)*C + c,
// or, for a channel slice of a wider tensor (pixel_stride > C: e.g. the U-Net's
// skip connection as a view into its concat buffer, see network.cpp), at
// ((n*H + y)*W + x)*pixel_stride + c. Only ops a backend lists under
// Op::channel_slices take slices; everything else needs dense tensors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
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
  int pixel_stride = 0;  // elements from one pixel to the next; 0: dense (shape.c)

  size_t numel() const { return shape.numel(); }
  size_t bytes() const { return numel() * dtype_size(dtype); }  // of the values (a slice spans more)
  int stride() const { return pixel_stride ? pixel_stride : shape.c; }
  bool dense() const { return stride() == shape.c; }
  // Channels [c0, c0 + c) of this dense tensor, as a slice.
  Tensor channels(int c0, int c) const;
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// Fails (an internal error naming op) unless every tensor given is dense:
// for the ops and operands a backend does not take slices in.
void require_dense(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace mixseg
