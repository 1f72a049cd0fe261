// Fuzz target: the PNG decoder must turn any bytes into an image or a
// mixseg::Error naming the input, never a crash, hang or memory error.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "data/png_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const mixseg::GrayImage img = mixseg::decode_png_gray(data, size, "fuzz input");
    if (img.pixels.size() != size_t(img.h) * size_t(img.w)) __builtin_trap();
  } catch (const mixseg::Error&) {
  }
  return 0;
}
