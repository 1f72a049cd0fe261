// The element count of a shape read from a file (safetensors, .npy), where
// the dimensions are whatever the file says: negative dimensions and products
// past a limit are refused before they can wrap around size_t (a shape like
// [2^40, 2^24] multiplies to 2^64, i.e. 0, and would pass a size check).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace mixseg {

inline std::optional<size_t> checked_numel(const std::vector<int64_t>& shape, size_t limit) {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || uint64_t(d) > limit) return std::nullopt;
    if (d != 0 && n > limit / size_t(d)) return std::nullopt;
    n *= size_t(d);
  }
  return n;
}

}  // namespace mixseg
