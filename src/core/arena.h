// Arena: one block of memory planned once per (batch, H, W); tensors are
// carved out of it by bumping an offset, so a step allocates nothing and the
// high-water mark is the exact activation memory. Reset frees everything.
#pragma once
#include <cstddef>
#include <string>

#include "core/tensor.h"

namespace mixseg {

class Backend;

// "1.50 GiB", "12.3 MiB" or "512 bytes": a memory size in messages.
std::string memory_size_text(size_t bytes);

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();
  // Two passes: first plan (reserve sizes, capacity 0), then commit() allocates
  // exactly the planned size, and the same sequence of alloc calls gets memory.
  Tensor alloc(DType dtype, Shape shape);
  // Allocates the planned capacity from the backend; an error saying how much
  // when the backend has not that much.
  void commit(Backend& backend);
  void reset();            // forget all allocations (keeps the block)
  size_t capacity() const { return capacity_; }
  size_t planned_bytes() const { return peak_; }  // what commit() asks for

 private:
  static constexpr size_t kAlign = 64;
  Backend* backend_ = nullptr;
  std::byte* block_ = nullptr;
  size_t capacity_ = 0, offset_ = 0, peak_ = 0;
  bool planning_ = true;
};

}  // namespace mixseg
