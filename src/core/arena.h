// Arena: one block of memory planned once per (batch, H, W); tensors are
// carved out of it by bumping an offset, so a step allocates nothing and the
// high-water mark is the exact activation memory. Reset frees everything.
#pragma once
#include <cstddef>

#include "core/tensor.h"

namespace mixseg {

class Backend;

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();
  // Two passes: first plan (reserve sizes, capacity 0), then commit() allocates
  // exactly the planned size, and the same sequence of alloc calls gets memory.
  Tensor alloc(DType dtype, Shape shape);
  void commit(Backend& backend);  // allocates the planned capacity from the backend
  void reset();            // forget all allocations (keeps the block)
  size_t capacity() const { return capacity_; }

 private:
  static constexpr size_t kAlign = 64;
  Backend* backend_ = nullptr;
  std::byte* block_ = nullptr;
  size_t capacity_ = 0, offset_ = 0, peak_ = 0;
  bool planning_ = true;
};

}  // namespace mixseg
