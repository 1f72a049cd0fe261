// Writing TFLite flatbuffers (tflite_export.h), with the code flatc generates
// from third_party/tflite/tflite_schema.fbs.
#include "export/tflite_export.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/file_util.h"
#include "tflite_schema_generated.h"

namespace mixseg {

namespace {

namespace fb = flatbuffers;

// Operator versions as TensorFlow's converter writes them for these types
// (the interpreter accepts any version up to the one it implements).
int op_version(tflite::BuiltinOperator op, bool int8) {
  switch (op) {
    case tflite::BuiltinOperator_CONV_2D: return int8 ? 3 : 1;
    case tflite::BuiltinOperator_DEQUANTIZE: return int8 ? 2 : 3;  // int8 -> float, or float16 -> float
    case tflite::BuiltinOperator_QUANTIZE: return 2;
    default: return int8 ? 2 : 1;
  }
}

// Collects buffers, tensors, operator codes and operators of one subgraph.
class Writer {
 public:
  Writer() { buffers_.push_back(tflite::CreateBuffer(b_)); }  // buffer 0: the empty one, by convention

  fb::FlatBufferBuilder& fbb() { return b_; }

  // A tensor; data (if given) becomes its constant buffer.
  int tensor(const std::string& name, std::vector<int32_t> shape, tflite::TensorType type,
             fb::Offset<tflite::QuantizationParameters> q = 0, const void* data = nullptr, size_t bytes = 0) {
    uint32_t buffer = 0;
    if (data) {
      b_.ForceVectorAlignment(bytes, 1, 16);
      const auto v = b_.CreateVector(static_cast<const uint8_t*>(data), bytes);
      buffer = uint32_t(buffers_.size());
      buffers_.push_back(tflite::CreateBuffer(b_, v));
    }
    tensors_.push_back(tflite::CreateTensor(b_, b_.CreateVector(shape), type, buffer, b_.CreateString(name), q));
    return int(tensors_.size()) - 1;
  }

  // Per-tensor (one scale) or per-channel (axis 0) int8/int32 parameters.
  fb::Offset<tflite::QuantizationParameters> quant(const std::vector<float>& scales, const std::vector<int64_t>& zps) {
    return tflite::CreateQuantizationParameters(b_, 0, 0, b_.CreateVector(scales), b_.CreateVector(zps),
                                                tflite::QuantizationDetails_NONE, 0, 0);
  }

  void op(tflite::BuiltinOperator code, bool int8, std::vector<int32_t> inputs, std::vector<int32_t> outputs,
          tflite::BuiltinOptions options_type = tflite::BuiltinOptions_NONE, fb::Offset<void> options = 0) {
    const auto key = std::make_pair(int(code), op_version(code, int8));
    auto it = opcode_index_.find(key);
    if (it == opcode_index_.end()) {
      it = opcode_index_.emplace(key, uint32_t(opcodes_.size())).first;
      opcodes_.push_back(tflite::CreateOperatorCode(b_, int8_t(std::min<int>(code, 127)), 0, key.second, code));
    }
    ops_.push_back(tflite::CreateOperator(b_, it->second, b_.CreateVector(inputs), b_.CreateVector(outputs),
                                          options_type, options));
  }

  std::vector<uint8_t> finish(int input, int output, const std::string& description) {
    const std::vector<int32_t> in{input}, out{output};
    const auto subgraph = tflite::CreateSubGraph(b_, b_.CreateVector(tensors_), b_.CreateVector(in),
                                                 b_.CreateVector(out), b_.CreateVector(ops_), b_.CreateString("main"));
    const std::vector<fb::Offset<tflite::SubGraph>> subgraphs{subgraph};
    const auto model = tflite::CreateModel(b_, 3, b_.CreateVector(opcodes_), b_.CreateVector(subgraphs),
                                           b_.CreateString(description), b_.CreateVector(buffers_));
    tflite::FinishModelBuffer(b_, model);
    return {b_.GetBufferPointer(), b_.GetBufferPointer() + b_.GetSize()};
  }

 private:
  fb::FlatBufferBuilder b_{1 << 20};
  std::vector<fb::Offset<tflite::Buffer>> buffers_;
  std::vector<fb::Offset<tflite::Tensor>> tensors_;
  std::vector<fb::Offset<tflite::OperatorCode>> opcodes_;
  std::vector<fb::Offset<tflite::Operator>> ops_;
  std::map<std::pair<int, int>, uint32_t> opcode_index_;
};

std::vector<int32_t> nhwc(int h, int w, int level, int c) { return {1, h >> level, w >> level, c}; }

// The ops that are the same in the float and int8 graphs: pooling, resizing,
// concatenation, sigmoid. `t` maps the graph's tensor ids to the file's.
void movement_op(Writer& wr, const DeployOp& op, const std::vector<int>& t, int height, int width, int level_out,
                 bool int8) {
  auto& b = wr.fbb();
  switch (op.kind) {
    case DeployOpKind::maxpool:
      wr.op(tflite::BuiltinOperator_MAX_POOL_2D, int8, {t[size_t(op.in0)]}, {t[size_t(op.out)]},
            tflite::BuiltinOptions_Pool2DOptions,
            tflite::CreatePool2DOptions(b, tflite::Padding_VALID, 2, 2, 2, 2).Union());
      break;
    case DeployOpKind::upsample: {
      const int32_t size[2] = {height >> level_out, width >> level_out};
      const int s = wr.tensor(op.name + "/size", {2}, tflite::TensorType_INT32, 0, size, sizeof size);
      wr.op(tflite::BuiltinOperator_RESIZE_NEAREST_NEIGHBOR, int8, {t[size_t(op.in0)], s}, {t[size_t(op.out)]},
            tflite::BuiltinOptions_ResizeNearestNeighborOptions,
            tflite::CreateResizeNearestNeighborOptions(b, false, false).Union());
      break;
    }
    case DeployOpKind::concat:
      wr.op(tflite::BuiltinOperator_CONCATENATION, int8, {t[size_t(op.in0)], t[size_t(op.in1)]}, {t[size_t(op.out)]},
            tflite::BuiltinOptions_ConcatenationOptions, tflite::CreateConcatenationOptions(b, 3).Union());
      break;
    case DeployOpKind::sigmoid:
      wr.op(tflite::BuiltinOperator_LOGISTIC, int8, {t[size_t(op.in0)]}, {t[size_t(op.out)]});
      break;
    case DeployOpKind::conv:
    case DeployOpKind::transposed_conv: fail("internal: movement_op called for a convolution");
  }
}

tflite::ActivationFunctionType activation(bool relu) {
  return relu ? tflite::ActivationFunctionType_RELU : tflite::ActivationFunctionType_NONE;
}

// A convolution whose weights (and bias) tensors are written: CONV_2D with
// SAME padding, or TRANSPOSE_CONV as TensorFlow's converter writes one without
// bias (inputs: output shape, weights, input; VALID padding, stride 2).
void conv_op(Writer& wr, const DeployOp& op, const std::vector<int>& t, const std::vector<int32_t>& out_shape,
             bool relu, int weights, int bias, bool int8) {
  auto& b = wr.fbb();
  if (op.kind == DeployOpKind::transposed_conv) {
    const int shape = wr.tensor(op.name + "/output_shape", {4}, tflite::TensorType_INT32, 0, out_shape.data(),
                                out_shape.size() * sizeof(int32_t));
    wr.op(tflite::BuiltinOperator_TRANSPOSE_CONV, int8, {shape, weights, t[size_t(op.in0)]}, {t[size_t(op.out)]},
          tflite::BuiltinOptions_TransposeConvOptions,
          tflite::CreateTransposeConvOptions(b, tflite::Padding_VALID, 2, 2).Union());
    return;
  }
  wr.op(tflite::BuiltinOperator_CONV_2D, int8, {t[size_t(op.in0)], weights, bias}, {t[size_t(op.out)]},
        tflite::BuiltinOptions_Conv2DOptions,
        tflite::CreateConv2DOptions(b, tflite::Padding_SAME, 1, 1, activation(relu)).Union());
}

}  // namespace

std::vector<uint8_t> tflite_int8(const QModel& m, bool float_io) {
  Writer wr;
  std::vector<int> t(m.tensors.size());
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const QTensor& q = m.tensors[i];
    t[i] = wr.tensor(q.name, nhwc(m.height, m.width, q.level, q.channels), tflite::TensorType_INT8,
                     wr.quant({q.q.scale}, {q.q.zero_point}));
  }
  int input = t[size_t(m.input)], output = t[size_t(m.output)];
  if (float_io) {
    const QTensor& qi = m.tensors[size_t(m.input)];
    input = wr.tensor("input_float", nhwc(m.height, m.width, 0, qi.channels), tflite::TensorType_FLOAT32);
    wr.op(tflite::BuiltinOperator_QUANTIZE, true, {input}, {t[size_t(m.input)]});
  }
  for (const DeployOp& op : m.ops) {
    const QTensor& y = m.tensors[size_t(op.out)];
    if (!has_weights(op.kind)) {
      movement_op(wr, op, t, m.height, m.width, y.level, true);
      continue;
    }
    const QConv& c = m.convs[size_t(op.conv)];
    const std::vector<int64_t> zeros(size_t(c.cout), 0);
    const int w = wr.tensor(op.name + "/weights", {c.cout, c.k, c.k, c.cin}, tflite::TensorType_INT8,
                            wr.quant(c.weight_scales, zeros), c.weights.data(), c.weights.size());
    const int bias =
        op.kind == DeployOpKind::transposed_conv  // (its bias is zero: prepare checks)
            ? -1
            : wr.tensor(op.name + "/bias", {c.cout}, tflite::TensorType_INT32, wr.quant(bias_scales(m, op), zeros),
                        c.bias.data(), c.bias.size() * sizeof(int32_t));
    conv_op(wr, op, t, nhwc(m.height, m.width, y.level, y.channels), c.relu, w, bias, true);
  }
  if (float_io) {
    output = wr.tensor("probabilities_float", nhwc(m.height, m.width, 0, m.tensors[size_t(m.output)].channels),
                       tflite::TensorType_FLOAT32);
    wr.op(tflite::BuiltinOperator_DEQUANTIZE, true, {t[size_t(m.output)]}, {output});
  }
  return wr.finish(input, output, fmt::format("mixseg U-Net f={} depth={}, int8 ({})", m.config.filters,
                                              m.config.depth, m.calibration));
}

std::vector<uint8_t> tflite_float(const DeployNet& net, int height, int width, DType weight_dtype) {
  if (weight_dtype != DType::f32 && weight_dtype != DType::f16)
    fail("float TFLite export stores weights as fp32 or fp16, not {}", dtype_name(weight_dtype));
  check_input_size(net.config, height, width);
  Writer wr;
  const bool half = weight_dtype == DType::f16;
  std::vector<int> t(net.tensors.size());
  for (size_t i = 0; i < net.tensors.size(); ++i) {
    const DeployTensor& d = net.tensors[i];
    t[i] = wr.tensor(d.name, nhwc(height, width, d.level, d.channels), tflite::TensorType_FLOAT32);
  }
  // A constant in f32, or in f16 widened by a DEQUANTIZE op.
  auto constant = [&](const std::string& name, std::vector<int32_t> shape, const std::vector<float>& v) {
    if (!half) return wr.tensor(name, shape, tflite::TensorType_FLOAT32, 0, v.data(), v.size() * sizeof(float));
    std::vector<uint16_t> h(v.size());
    narrow(v.data(), reinterpret_cast<f16*>(h.data()), v.size());
    const int stored = wr.tensor(name + "_fp16", shape, tflite::TensorType_FLOAT16, 0, h.data(), h.size() * 2);
    const int widened = wr.tensor(name, shape, tflite::TensorType_FLOAT32);
    wr.op(tflite::BuiltinOperator_DEQUANTIZE, false, {stored}, {widened});
    return widened;
  };
  for (const DeployOp& op : net.ops) {
    const DeployTensor& y = net.tensors[size_t(op.out)];
    if (!has_weights(op.kind)) {
      movement_op(wr, op, t, height, width, y.level, false);
      continue;
    }
    const DeployConv& c = net.convs[size_t(op.conv)];
    const int w = constant(op.name + "/weights", {c.cout, c.k, c.k, c.cin}, c.weights);
    const int bias = op.kind == DeployOpKind::transposed_conv ? -1 : constant(op.name + "/bias", {c.cout}, c.bias);
    conv_op(wr, op, t, nhwc(height, width, y.level, y.channels), c.relu, w, bias, false);
  }
  return wr.finish(t[size_t(net.input)], t[size_t(net.output)],
                   fmt::format("mixseg U-Net f={} depth={}, {} weights", net.config.filters, net.config.depth,
                               half ? "fp16" : "fp32"));
}

void write_model_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    f.close();
    if (!f) fail("{}: cannot write the model file", path);
  });
}

}  // namespace mixseg
