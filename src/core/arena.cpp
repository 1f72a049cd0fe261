// Arena allocator (see arena.h).
#include "core/arena.h"

#include <cstdlib>

#include "core/backend.h"
#include "core/error.h"

namespace mixseg {

std::string memory_size_text(size_t bytes) {
  if (bytes >= (size_t(1) << 30)) return fmt::format("{:.2f} GiB", double(bytes) / double(size_t(1) << 30));
  if (bytes >= (size_t(1) << 20)) return fmt::format("{:.1f} MiB", double(bytes) / double(size_t(1) << 20));
  return fmt::format("{} bytes", bytes);
}

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
  block_ = nullptr;  // nothing left to free if the allocation below fails
  backend_ = &backend;
  capacity_ = peak_;
  void* p = backend.allocate(capacity_ == 0 ? kAlign : capacity_);
  if (!p) fail("out of memory: the {} backend could not allocate {}", backend.name(), memory_size_text(capacity_));
  block_ = static_cast<std::byte*>(p);
  planning_ = false;
  offset_ = 0;
}

void Arena::reset() { offset_ = 0; }

}  // namespace mixseg
