// Fuzz target: the .npy reader must turn any bytes into an array whose data
// size agrees with its shape and dtype, or a mixseg::Error, never a crash.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "data/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const mixseg::NpyArray a = mixseg::parse_npy(std::vector<uint8_t>(data, data + size), "fuzz input");
    if (a.data.size() != a.numel() * (a.dtype == "f4" ? 4 : 1)) __builtin_trap();
  } catch (const mixseg::Error&) {
  }
  return 0;
}
