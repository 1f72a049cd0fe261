// A preflight of a .tflite file against the Edge TPU compiler's documented
// rules (coral.ai, "TensorFlow models on the Edge TPU"): supported op types,
// 8-bit quantized tensors only, static shapes, batch 1, at most 3 dimensions
// larger than 1, no fused activation on pooling and concatenation, TFLite's
// LOGISTIC output quantization; and the parameter bytes against the ~8 MB of
// on-chip memory. The compiler maps ops in order until the first one it
// cannot, and everything after that runs on the CPU: the report names that op
// and why. QUANTIZE / DEQUANTIZE at the graph's edges (float I/O) run on the
// CPU around the Edge TPU part and are not counted as a fallback.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixseg {

struct EdgeTpuOp {
  int index = 0;
  std::string op;      // e.g. CONV_2D
  std::string output;  // the output tensor's name
  std::string where;   // "edgetpu", "cpu" or "cpu (edge)"
  std::string reason;  // why not the Edge TPU
};

struct EdgeTpuReport {
  std::vector<EdgeTpuOp> ops;
  int first_fallback = -1;  // index into ops, -1 if every op maps
  size_t parameter_bytes = 0;
  std::vector<std::string> notes;  // e.g. parameters over the on-chip memory
};

inline constexpr size_t kEdgeTpuOnChipBytes = 8u << 20;

// Verifies the flatbuffer against the schema first (throws naming `name` if it is not a valid .tflite).
EdgeTpuReport check_edgetpu(const std::vector<uint8_t>& bytes, const std::string& name);

}  // namespace mixseg
