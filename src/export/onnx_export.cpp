// Writing ONNX models (onnx_export.h).
#include "export/onnx_export.h"

#include <fmt/format.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cstring>

#include "core/error.h"

namespace mixseg {

namespace {

constexpr int kOpset = 13;

using TP = onnx::TensorProto;

// OHWI [o, k, k, i] to OIHW.
template <class T>
std::vector<T> ohwi_to_oihw(const std::vector<T>& w, int o, int k, int i) {
  std::vector<T> r(w.size());
  for (int a = 0; a < o; ++a)
    for (int y = 0; y < k; ++y)
      for (int x = 0; x < k; ++x)
        for (int c = 0; c < i; ++c)
          r[((size_t(a) * i + c) * k + y) * k + x] = w[((size_t(a) * k + y) * k + x) * i + c];
  return r;
}

// The transposed convolution's [o, 2, 2, i] (TFLite's layout) to ONNX
// ConvTranspose's [i, o, 2, 2].
template <class T>
std::vector<T> transposed_to_iohw(const std::vector<T>& w, int o, int i) {
  std::vector<T> r(w.size());
  for (int a = 0; a < o; ++a)
    for (int t = 0; t < 4; ++t)  // tap (t / 2, t % 2)
      for (int c = 0; c < i; ++c) r[(size_t(c) * o + a) * 4 + t] = w[(size_t(a) * 4 + t) * i + c];
  return r;
}

class GraphWriter {
 public:
  GraphWriter(const std::string& name, const std::string& doc) {
    model_.set_ir_version(7);
    model_.set_producer_name("mixseg");
    model_.set_doc_string(doc);
    auto* opset = model_.add_opset_import();
    opset->set_domain("");
    opset->set_version(kOpset);
    g_ = model_.mutable_graph();
    g_->set_name(name);
  }

  template <class T>
  void initializer(const std::string& name, int type, const std::vector<int64_t>& dims, const std::vector<T>& data) {
    TP* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(T)));
  }

  onnx::NodeProto* node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                        const std::string& name) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& s : in) n->add_input(s);
    for (const auto& s : out) n->add_output(s);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void text(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }

  void io(bool input, const std::string& name, int type, int c, int h, int w) {
    onnx::ValueInfoProto* v = input ? g_->add_input() : g_->add_output();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    auto* shape = tt->mutable_shape();
    shape->add_dim()->set_dim_param("batch");
    for (int d : {c, h, w}) shape->add_dim()->set_dim_value(d);
  }

  // The ops the float and QDQ graphs share, on float tensors named in/in1/out.
  void movement(const DeployOp& op, const std::string& in, const std::string& in1, const std::string& out) {
    switch (op.kind) {
      case DeployOpKind::maxpool: {
        auto* n = node("MaxPool", {in}, {out}, op.name);
        ints(n, "kernel_shape", {2, 2});
        ints(n, "strides", {2, 2});
        break;
      }
      case DeployOpKind::upsample: {
        // Nearest, source index floor(dst / 2): asymmetric coordinates, floor rounding.
        if (!has_scales_) {
          initializer("upsample2x_scales", TP::FLOAT, {4}, std::vector<float>{1, 1, 2, 2});
          has_scales_ = true;
        }
        auto* n = node("Resize", {in, "", "upsample2x_scales"}, {out}, op.name);
        text(n, "mode", "nearest");
        text(n, "coordinate_transformation_mode", "asymmetric");
        text(n, "nearest_mode", "floor");
        break;
      }
      case DeployOpKind::concat: integer(node("Concat", {in, in1}, {out}, op.name), "axis", 1); break;
      case DeployOpKind::sigmoid: node("Sigmoid", {in}, {out}, op.name); break;
      case DeployOpKind::conv:
      case DeployOpKind::transposed_conv: fail("internal: movement() called for a convolution");
    }
  }

  // Conv (SAME padding, with bias b) or ConvTranspose (2x2, stride 2, no
  // bias) on x with weights w, into y.
  void conv(const DeployOp& op, int k, const std::string& x, const std::string& w, const std::string& b,
            const std::string& y) {
    if (op.kind == DeployOpKind::transposed_conv) {
      auto* n = node("ConvTranspose", {x, w}, {y}, op.name);
      ints(n, "kernel_shape", {2, 2});
      ints(n, "strides", {2, 2});
      return;
    }
    auto* n = node("Conv", {x, w, b}, {y}, op.name);
    ints(n, "kernel_shape", {k, k});
    ints(n, "pads", {k / 2, k / 2, k / 2, k / 2});
  }

  std::string finish() {
    try {
      onnx::checker::check_model(model_);
    } catch (const std::exception& e) {
      fail("the ONNX model does not pass onnx::checker: {}", e.what());
    }
    std::string bytes;
    if (!model_.SerializeToString(&bytes)) fail("could not serialize the ONNX model");
    return bytes;
  }

  onnx::GraphProto* graph() { return g_; }

 private:
  onnx::ModelProto model_;
  onnx::GraphProto* g_ = nullptr;
  bool has_scales_ = false;
};

}  // namespace

std::string onnx_float(const DeployNet& net, int height, int width, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::f16) fail("float ONNX export is fp32 or fp16, not {}", dtype_name(dtype));
  check_input_size(net.config, height, width);
  const bool half = dtype == DType::f16;
  const int type = half ? TP::FLOAT16 : TP::FLOAT;
  GraphWriter wr("mixseg_unet", fmt::format("mixseg U-Net f={} depth={}, {}, BatchNorm folded", net.config.filters,
                                            net.config.depth, half ? "fp16" : "fp32"));
  auto constant = [&](const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v) {
    if (!half) return wr.initializer(name, type, dims, v);
    std::vector<uint16_t> h(v.size());
    narrow(v.data(), reinterpret_cast<f16*>(h.data()), v.size());
    wr.initializer(name, type, dims, h);
  };
  const DeployTensor& in = net.tensors[size_t(net.input)];
  wr.io(true, in.name, type, in.channels, height, width);
  for (const DeployOp& op : net.ops) {
    const std::string x = net.tensors[size_t(op.in0)].name, y = net.tensors[size_t(op.out)].name;
    if (!has_weights(op.kind)) {
      wr.movement(op, x, op.in1 >= 0 ? net.tensors[size_t(op.in1)].name : "", y);
      continue;
    }
    const DeployConv& c = net.convs[size_t(op.conv)];
    if (op.kind == DeployOpKind::transposed_conv) {  // (no bias: zero by construction)
      constant(op.name + ".weight", {c.cin, c.cout, 2, 2}, transposed_to_iohw(c.weights, c.cout, c.cin));
    } else {
      constant(op.name + ".weight", {c.cout, c.cin, c.k, c.k}, ohwi_to_oihw(c.weights, c.cout, c.k, c.cin));
      constant(op.name + ".bias", {c.cout}, c.bias);
    }
    wr.conv(op, c.k, x, op.name + ".weight", op.name + ".bias", c.relu ? y + "_pre" : y);
    if (c.relu) wr.node("Relu", {y + "_pre"}, {y}, op.name + ".relu");
  }
  wr.io(false, net.tensors[size_t(net.output)].name, type, net.config.classes, height, width);
  return wr.finish();
}

std::string onnx_int8_qdq(const QModel& m) {
  GraphWriter wr("mixseg_unet_int8", fmt::format("mixseg U-Net f={} depth={}, int8 QDQ ({})", m.config.filters,
                                                 m.config.depth, m.calibration));
  // Every activation: its scale and zero point as initializers, and its float view "<name>_dq".
  for (const QTensor& t : m.tensors) {
    wr.initializer(t.name + ".scale", TP::FLOAT, {}, std::vector<float>{t.q.scale});
    wr.initializer(t.name + ".zero_point", TP::INT8, {}, std::vector<int8_t>{int8_t(t.q.zero_point)});
  }
  auto dq = [&](int t) {
    const std::string& n = m.tensors[size_t(t)].name;
    wr.node("DequantizeLinear", {n, n + ".scale", n + ".zero_point"}, {n + "_dq"}, n + ".dequantize");
    return n + "_dq";
  };
  auto q = [&](const std::string& from, int t) {
    const std::string& n = m.tensors[size_t(t)].name;
    wr.node("QuantizeLinear", {from, n + ".scale", n + ".zero_point"}, {n}, n + ".quantize");
  };
  const QTensor& in = m.tensors[size_t(m.input)];
  wr.io(true, "input_float", TP::FLOAT, in.channels, m.height, m.width);
  q("input_float", m.input);
  std::vector<std::string> float_view(m.tensors.size());
  auto view = [&](int t) {
    if (float_view[size_t(t)].empty()) float_view[size_t(t)] = dq(t);
    return float_view[size_t(t)];
  };
  for (const DeployOp& op : m.ops) {
    const std::string y = m.tensors[size_t(op.out)].name;
    if (!has_weights(op.kind)) {
      wr.movement(op, view(op.in0), op.in1 >= 0 ? view(op.in1) : "", y + "_f");
      q(y + "_f", op.out);
      continue;
    }
    const QConv& c = m.convs[size_t(op.conv)];
    const std::string w = op.name + ".weight", b = op.name + ".bias";
    const bool transposed = op.kind == DeployOpKind::transposed_conv;
    // Per output channel: ConvTranspose's is weight axis 1 ([i, o, 2, 2]), Conv's axis 0.
    if (transposed)
      wr.initializer(w + "_q", TP::INT8, {c.cin, c.cout, 2, 2}, transposed_to_iohw(c.weights, c.cout, c.cin));
    else
      wr.initializer(w + "_q", TP::INT8, {c.cout, c.cin, c.k, c.k}, ohwi_to_oihw(c.weights, c.cout, c.k, c.cin));
    wr.initializer(w + ".scale", TP::FLOAT, {c.cout}, c.weight_scales);
    wr.initializer(w + ".zero_point", TP::INT8, {c.cout}, std::vector<int8_t>(size_t(c.cout), 0));
    GraphWriter::integer(
        wr.node("DequantizeLinear", {w + "_q", w + ".scale", w + ".zero_point"}, {w}, w + ".dequantize"), "axis",
        transposed ? 1 : 0);
    if (!transposed) {
      wr.initializer(b + "_q", TP::INT32, {c.cout}, c.bias);
      wr.initializer(b + ".scale", TP::FLOAT, {c.cout}, bias_scales(m, op));
      wr.initializer(b + ".zero_point", TP::INT32, {c.cout}, std::vector<int32_t>(size_t(c.cout), 0));
      GraphWriter::integer(
          wr.node("DequantizeLinear", {b + "_q", b + ".scale", b + ".zero_point"}, {b}, b + ".dequantize"), "axis", 0);
    }
    wr.conv(op, c.k, view(op.in0), w, b, y + (c.relu ? "_pre" : "_f"));
    if (c.relu) wr.node("Relu", {y + "_pre"}, {y + "_f"}, op.name + ".relu");
    q(y + "_f", op.out);
  }
  const QTensor& out = m.tensors[size_t(m.output)];
  wr.node("DequantizeLinear", {out.name, out.name + ".scale", out.name + ".zero_point"}, {"probabilities_float"},
          "output.dequantize");
  wr.io(false, "probabilities_float", TP::FLOAT, out.channels, m.height, m.width);
  return wr.finish();
}

}  // namespace mixseg
