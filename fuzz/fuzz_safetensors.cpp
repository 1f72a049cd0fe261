// Fuzz target: the safetensors parser must turn any bytes into tensors whose
// sizes agree with their shapes, or a mixseg::Error, never a crash.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "train/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::vector<uint8_t> bytes(data, data + size);
    const mixseg::SafeTensorsFile f = mixseg::parse_safetensors(bytes, "fuzz input");
    for (const auto& [name, t] : f.tensors)
      if (t.data.size() != t.numel() * mixseg::dtype_size(t.dtype)) __builtin_trap();
  } catch (const mixseg::Error&) {
  }
  return 0;
}
