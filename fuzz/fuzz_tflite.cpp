// Fuzz target: the Edge TPU preflight must turn any bytes into a report or a
// mixseg::Error naming the input, never a crash: the flatbuffer verifier
// checks the structure, but not the indices (tensors, opcodes, buffers) nor
// the optional fields the preflight reads.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "export/edgetpu_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const mixseg::EdgeTpuReport r = mixseg::check_edgetpu(std::vector<uint8_t>(data, data + size), "fuzz input");
    if (r.first_fallback >= int(r.ops.size())) __builtin_trap();
  } catch (const mixseg::Error&) {
  }
  return 0;
}
