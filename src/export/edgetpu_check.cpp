// The Edge TPU preflight (edgetpu_check.h).
#include "export/edgetpu_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "tflite_schema_generated.h"

namespace mixseg {

namespace {

using tflite::BuiltinOperator;

// The ops the Edge TPU compiler maps (coral.ai's table of supported operations).
const std::set<BuiltinOperator>& supported_ops() {
  static const std::set<BuiltinOperator> ops = {
      tflite::BuiltinOperator_ADD, tflite::BuiltinOperator_AVERAGE_POOL_2D, tflite::BuiltinOperator_CONCATENATION,
      tflite::BuiltinOperator_CONV_2D, tflite::BuiltinOperator_DEPTHWISE_CONV_2D, tflite::BuiltinOperator_EXPAND_DIMS,
      tflite::BuiltinOperator_FULLY_CONNECTED, tflite::BuiltinOperator_L2_NORMALIZATION,
      tflite::BuiltinOperator_LOGISTIC, tflite::BuiltinOperator_LSTM, tflite::BuiltinOperator_MAXIMUM,
      tflite::BuiltinOperator_MAX_POOL_2D, tflite::BuiltinOperator_MEAN, tflite::BuiltinOperator_MINIMUM,
      tflite::BuiltinOperator_MUL, tflite::BuiltinOperator_PACK, tflite::BuiltinOperator_PAD,
      tflite::BuiltinOperator_PRELU, tflite::BuiltinOperator_QUANTIZE, tflite::BuiltinOperator_REDUCE_MAX,
      tflite::BuiltinOperator_REDUCE_MIN, tflite::BuiltinOperator_RELU, tflite::BuiltinOperator_RELU6,
      tflite::BuiltinOperator_RELU_N1_TO_1, tflite::BuiltinOperator_RESHAPE, tflite::BuiltinOperator_RESIZE_BILINEAR,
      tflite::BuiltinOperator_RESIZE_NEAREST_NEIGHBOR, tflite::BuiltinOperator_RSQRT, tflite::BuiltinOperator_SLICE,
      tflite::BuiltinOperator_SOFTMAX, tflite::BuiltinOperator_SPACE_TO_DEPTH, tflite::BuiltinOperator_SPLIT,
      tflite::BuiltinOperator_SQUARED_DIFFERENCE, tflite::BuiltinOperator_SQUEEZE,
      tflite::BuiltinOperator_STRIDED_SLICE, tflite::BuiltinOperator_SUB, tflite::BuiltinOperator_SUM,
      tflite::BuiltinOperator_TANH, tflite::BuiltinOperator_TRANSPOSE, tflite::BuiltinOperator_TRANSPOSE_CONV};
  return ops;
}

// Why tensor t keeps the op off the Edge TPU ("" if it does not).
std::string tensor_problem(const tflite::Tensor& t, bool is_constant, bool bias_input) {
  const std::string name = t.name() ? t.name()->str() : "?";
  const auto type = t.type();
  const bool eight_bit = type == tflite::TensorType_INT8 || type == tflite::TensorType_UINT8;
  if (!eight_bit && !(bias_input && type == tflite::TensorType_INT32))
    return fmt::format("tensor {} is {}: the Edge TPU runs 8-bit quantized tensors only", name,
                       tflite::EnumNameTensorType(type));
  const auto* q = t.quantization();
  if (!q || !q->scale() || q->scale()->size() == 0)
    return fmt::format("tensor {} has no quantization parameters", name);
  if (t.shape_signature())
    for (int32_t d : *t.shape_signature())
      if (d < 0) return fmt::format("tensor {} has a dynamic shape", name);
  if (t.shape() && !is_constant) {
    const auto& s = *t.shape();
    if (s.size() > 0 && s[0] > 1 && s.size() == 4)
      return fmt::format("tensor {} has batch {}: the Edge TPU compiles batch 1 only", name, s[0]);
    int big = 0;
    for (size_t i = 0; i < s.size(); ++i) big += s[i] > 1;
    if (big > 3) return fmt::format("tensor {} has {} dimensions larger than 1 (at most 3)", name, big);
  }
  return "";
}

}  // namespace

EdgeTpuReport check_edgetpu(const std::vector<uint8_t>& bytes, const std::string& name) {
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!tflite::VerifyModelBuffer(verifier)) fail("{}: not a valid TFLite flatbuffer (schema verification failed)", name);
  const tflite::Model* model = tflite::GetModel(bytes.data());
  if (!model->subgraphs() || model->subgraphs()->size() == 0) fail("{}: the model has no subgraph", name);
  EdgeTpuReport r;
  if (model->subgraphs()->size() > 1)
    r.notes.push_back("more than one subgraph: the Edge TPU compiler compiles the first one only");
  if (model->buffers())
    for (const auto* b : *model->buffers())
      if (b && b->data()) r.parameter_bytes += b->data()->size();
  if (r.parameter_bytes > kEdgeTpuOnChipBytes)
    r.notes.push_back(fmt::format("parameters take {:.1f} MiB, more than the ~8 MiB on-chip memory: the rest is "
                                  "streamed from host memory at every inference (slower)",
                                  double(r.parameter_bytes) / (1 << 20)));
  const tflite::SubGraph* g = model->subgraphs()->Get(0);
  const auto* tensors = g->tensors();
  const auto* codes = model->operator_codes();
  if (!g->operators() || !tensors || !codes) fail("{}: the subgraph has no operators or tensors", name);
  auto is_constant = [&](int t) {
    const auto* tensor = tensors->Get(uint32_t(t));
    const uint32_t b = tensor->buffer();
    return b > 0 && model->buffers() && b < model->buffers()->size() && model->buffers()->Get(b)->data() &&
           model->buffers()->Get(b)->data()->size() > 0;
  };
  auto is_graph_io = [&](int t, const flatbuffers::Vector<int32_t>* io) {
    return io && std::find(io->begin(), io->end(), t) != io->end();
  };
  for (uint32_t i = 0; i < g->operators()->size(); ++i) {
    const tflite::Operator* op = g->operators()->Get(i);
    if (op->opcode_index() >= codes->size()) fail("{}: operator {} has an invalid opcode index", name, i);
    const tflite::OperatorCode* code = codes->Get(op->opcode_index());
    const auto builtin = BuiltinOperator(std::max<int32_t>(code->deprecated_builtin_code(), code->builtin_code()));
    EdgeTpuOp e;
    e.index = int(i);
    e.op = tflite::EnumNameBuiltinOperator(builtin);
    if (e.op.empty()) e.op = fmt::format("op {}", int(builtin));
    const auto* ins = op->inputs();
    const auto* outs = op->outputs();
    auto valid = [&](int t) { return t >= 0 && uint32_t(t) < tensors->size(); };
    if (outs && outs->size() > 0 && valid(outs->Get(0))) {
      const auto* tensor_name = tensors->Get(uint32_t(outs->Get(0)))->name();  // optional in the schema
      e.output = tensor_name ? tensor_name->str() : "?";
    }
    // Float edges: QUANTIZE from the graph's float input, DEQUANTIZE to its float output.
    const bool edge_quantize = builtin == tflite::BuiltinOperator_QUANTIZE && ins && ins->size() == 1 &&
                               is_graph_io(ins->Get(0), g->inputs());
    const bool edge_dequantize = builtin == tflite::BuiltinOperator_DEQUANTIZE && outs && outs->size() == 1 &&
                                 is_graph_io(outs->Get(0), g->outputs());
    if (edge_quantize || edge_dequantize) {
      e.where = "cpu (edge)";
      e.reason = "float input/output conversion around the Edge TPU graph";
      r.ops.push_back(e);
      continue;
    }
    if (r.first_fallback >= 0) {
      e.where = "cpu";
      e.reason = "after the first op that falls back";
      r.ops.push_back(e);
      continue;
    }
    if (!supported_ops().count(builtin)) e.reason = fmt::format("{} is not supported by the Edge TPU", e.op);
    for (int k = 0; e.reason.empty() && ins && k < int(ins->size()); ++k) {
      const int t = ins->Get(uint32_t(k));
      if (t < 0) continue;  // optional input absent
      if (!valid(t)) fail("{}: operator {} refers to tensor {} of {}", name, i, t, tensors->size());
      // TRANSPOSE_CONV's inputs are (output shape, weights, input[, bias]); the others' (input, weights[, bias]).
      const bool transposed = builtin == tflite::BuiltinOperator_TRANSPOSE_CONV;
      const bool convolution = builtin == tflite::BuiltinOperator_CONV_2D || transposed;
      const bool bias = (convolution || builtin == tflite::BuiltinOperator_DEPTHWISE_CONV_2D ||
                         builtin == tflite::BuiltinOperator_FULLY_CONNECTED) &&
                        k == (transposed ? 3 : 2);
      const bool size_input =
          (builtin == tflite::BuiltinOperator_RESIZE_NEAREST_NEIGHBOR && k == 1) || (transposed && k == 0);
      if (size_input) {
        if (!is_constant(t))
          e.reason =
              fmt::format("the {}'s output size is not a constant", transposed ? "transposed convolution" : "resize");
        continue;
      }
      if ((bias || k == 1) && convolution && !is_constant(t))
        e.reason = fmt::format("the convolution's {} are not constant", bias ? "biases" : "weights");
      if (e.reason.empty()) e.reason = tensor_problem(*tensors->Get(uint32_t(t)), is_constant(t), bias);
    }
    for (int k = 0; e.reason.empty() && outs && k < int(outs->size()); ++k) {
      const int t = outs->Get(uint32_t(k));
      if (!valid(t)) fail("{}: operator {} refers to tensor {} of {}", name, i, t, tensors->size());
      e.reason = tensor_problem(*tensors->Get(uint32_t(t)), false, false);
    }
    if (e.reason.empty()) {
      if (const auto* o = op->builtin_options_as_Pool2DOptions();
          o && o->fused_activation_function() != tflite::ActivationFunctionType_NONE)
        e.reason = "pooling with a fused activation";
      if (const auto* o = op->builtin_options_as_ConcatenationOptions();
          o && o->fused_activation_function() != tflite::ActivationFunctionType_NONE)
        e.reason = "concatenation with a fused activation";
      if (const auto* o = op->builtin_options_as_Conv2DOptions(); o && o->dilation_w_factor() != o->dilation_h_factor())
        e.reason = "convolution with different dilations in x and y";
      if (builtin == tflite::BuiltinOperator_LOGISTIC && outs && outs->size() == 1) {
        const auto* q = tensors->Get(uint32_t(outs->Get(0)))->quantization();
        const bool ok = q && q->scale() && q->zero_point() && q->scale()->size() == 1 && q->zero_point()->size() == 1 &&
                        q->scale()->Get(0) == 1.0f / 256.0f &&
                        q->zero_point()->Get(0) == (tensors->Get(uint32_t(outs->Get(0)))->type() == tflite::TensorType_INT8 ? -128 : 0);
        if (!ok) e.reason = "LOGISTIC output must have scale 1/256 and zero point -128 (int8) as TFLite requires";
      }
    }
    e.where = e.reason.empty() ? "edgetpu" : "cpu";
    if (!e.reason.empty()) r.first_fallback = int(r.ops.size());
    r.ops.push_back(e);
  }
  return r;
}

}  // namespace mixseg
