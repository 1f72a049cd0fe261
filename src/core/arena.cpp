// Arena allocator (see arena.h).
#include "core/arena.h"

#include <cstdlib>
#include <new>

#include "core/backend.h"
#include "core/error.h"

namespace mixseg {

Arena::~Arena() {
  if (block_) backend_->deallocate(block_);
}

Tensor Arena::alloc(DType dtype, Shape shape) {
  const size_t bytes = (shape.numel() * dtype_size(dtype) + kAlign - 1) / kAlign * kAlign;
  const size_t at = offset_;
  offset_ += bytes;
  if (offset_ > peak_) peak_ = offset_;
  if (planning_) return {nullptr, dtype, shape};
  if (offset_ > capacity_)
    fail("arena overflow: {} bytes requested beyond a planned capacity of {} bytes", offset_, capacity_);
  return {block_ + at, dtype, shape};
}

void Arena::commit(Backend& backend) {
  if (block_) backend_->deallocate(block_);
  backend_ = &backend;
  capacity_ = peak_;
  void* p = backend.allocate(capacity_ == 0 ? kAlign : capacity_);
  if (!p) throw std::bad_alloc();
  block_ = static_cast<std::byte*>(p);
  planning_ = false;
  offset_ = 0;
}

void Arena::reset() { offset_ = 0; }

}  // namespace mixseg
