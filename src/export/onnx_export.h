// ONNX models of the deployed U-Net (opset 13, NCHW as ONNX wants it; the
// batch dimension is symbolic in the float models): fp32, fp16 (every tensor
// float16), and int8 as QDQ: the int8 tensors of the QModel appear as
// QuantizeLinear outputs named like the QModel's tensors, each op reads their
// DequantizeLinear, weights are int8 per output channel (axis 0) and biases
// int32, so a runtime that fuses QDQ runs integer kernels and one that does
// not runs the same arithmetic in float. Written with Debian's ONNX protobuf
// classes and checked with its checker.
#pragma once
#include <string>

#include "core/dtype.h"
#include "model/deploy.h"
#include "quant/qmodel.h"

namespace mixseg {

// Serialized ModelProto bytes, checked by onnx::checker (throws with its message).
std::string onnx_float(const DeployNet& net, int height, int width, DType dtype);
std::string onnx_int8_qdq(const QModel& m);

}  // namespace mixseg
