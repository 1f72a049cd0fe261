// Fuzz target: an int8 model file (safetensors with the graph in its
// metadata) must load into a model the engine runs without touching memory
// it does not own, or give a mixseg::Error. Small models run once, through
// the reference and the fast kernels, on a zero image.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "quant/engine.h"
#include "quant/qmodel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const mixseg::QModel m = mixseg::parse_qmodel(std::vector<uint8_t>(data, data + size), "fuzz input");
    size_t values = 0;  // the largest tensor, to keep runs short
    for (const mixseg::QTensor& t : m.tensors)
      values = std::max(values, size_t(m.height >> t.level) * size_t(m.width >> t.level) * size_t(t.channels));
    if (values > (size_t(1) << 16)) return 0;
    const std::vector<int8_t> image(size_t(m.height) * size_t(m.width) * size_t(m.config.in_channels), 0);
    const std::vector<int8_t> ref = mixseg::run_int8(m, image.data(), 1, false);
    const std::vector<int8_t> fast = mixseg::run_int8(m, image.data(), 1, true);
    if (ref.size() != size_t(m.height) * size_t(m.width) * size_t(m.config.classes) || ref != fast) __builtin_trap();
  } catch (const mixseg::Error&) {
  }
  return 0;
}
