// TFLite flatbuffers of the deployed U-Net, batch 1 and static shapes, for
// the Edge TPU compiler and the LiteRT interpreter (see DESIGN.md, "Int8
// deployment"). Ops: CONV_2D (BatchNorm folded, ReLU fused), MAX_POOL_2D,
// RESIZE_NEAREST_NEIGHBOR (no corner alignment, no half-pixel centres: the
// nearest 2x upsampling), CONCATENATION (channels, no fused activation),
// LOGISTIC; the int8 model may get QUANTIZE / DEQUANTIZE at its edges for
// float input and output, the fp16 model DEQUANTIZE ops that widen its
// float16 weights (TFLite's float16 quantization).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/deploy.h"
#include "quant/qmodel.h"

namespace mixseg {

// The int8 network; float_io: float32 input and output around the int8 graph.
std::vector<uint8_t> tflite_int8(const QModel& m, bool float_io = false);
// The float network at h x w, weights stored as weight_dtype (f32 or f16).
std::vector<uint8_t> tflite_float(const DeployNet& net, int height, int width, DType weight_dtype);

// Writes bytes to path atomically (the error names the file).
void write_model_file(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace mixseg
