// TFLite and ONNX export and the Edge TPU preflight: the int8 file has the structure
// the Edge TPU compiler wants and passes the preflight (with either upsampling);
// deliberately broken files (a float tensor, batch 4, a wrong sigmoid output
// scale, a float model, corrupt bytes) are flagged at the right op with the
// reason; the transposed upsampling folds into one 2x2 transposed convolution
// that computes what the network's 1x1 convolution and move compute.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/rng.h"
#include "data/synthetic.h"
#include "export/edgetpu_check.h"
#include "export/onnx_export.h"
#include "export/tflite_export.h"
#include "ops/tolerance.h"
#include "quant/calibrate.h"
#include "test_util.h"
#include "tflite_schema_generated.h"

using namespace mixseg;

namespace {

struct Exported {
  QModel q;
  DeployNet folded;
  std::vector<uint8_t> int8, fp32;
};

Exported make_exported(Upsampling up) {
  Exported r;
  const UNet net = build_unet({4, 2, 1, 1, up});
  Weights w = init_weights(net, 5);
  auto backend = make_backend("fast");
  const Calibration cal = calibrate(net, w, *backend, make_synthetic({32, 32, 1, 0.05}, 8), {});
  r.folded = fold_unet(net, w);
  r.q = quantize_unet(r.folded, cal.ranges, 32, 32, cal.description);
  r.int8 = tflite_int8(r.q);
  r.fp32 = tflite_float(r.folded, 32, 32, DType::f32);
  return r;
}

const Exported& exported(Upsampling up = Upsampling::nearest) {
  static const Exported nearest = make_exported(Upsampling::nearest);
  static const Exported transposed = make_exported(Upsampling::transposed);
  return up == Upsampling::transposed ? transposed : nearest;
}

tflite::Tensor* tensor_named(std::vector<uint8_t>& bytes, const std::string& name) {
  auto* g = tflite::GetMutableModel(bytes.data())->mutable_subgraphs()->GetMutableObject(0);
  for (uint32_t i = 0; i < g->tensors()->size(); ++i)
    if (g->tensors()->Get(i)->name()->str() == name) return g->mutable_tensors()->GetMutableObject(i);
  ADD_FAILURE() << "no tensor " << name;
  return nullptr;
}

}  // namespace

TEST(TfliteExport, Int8FileHasTheEdgeTpuStructure) {
  for (Upsampling up : {Upsampling::nearest, Upsampling::transposed}) {
    SCOPED_TRACE(upsampling_name(up));
    const Exported& e = exported(up);
    flatbuffers::Verifier v(e.int8.data(), e.int8.size());
    ASSERT_TRUE(tflite::VerifyModelBuffer(v));
    const tflite::Model* m = tflite::GetModel(e.int8.data());
    EXPECT_EQ(m->version(), 3u);
    std::set<std::string> ops;
    for (const auto* c : *m->operator_codes()) ops.insert(tflite::EnumNameBuiltinOperator(c->builtin_code()));
    const bool transposed = up == Upsampling::transposed;
    EXPECT_EQ(
        ops, (std::set<std::string>{"CONV_2D", "MAX_POOL_2D", transposed ? "TRANSPOSE_CONV" : "RESIZE_NEAREST_NEIGHBOR",
                                    "CONCATENATION", "LOGISTIC"}));
    const auto* g = m->subgraphs()->Get(0);
    const auto* in = g->tensors()->Get(uint32_t(g->inputs()->Get(0)));
    EXPECT_EQ(in->type(), tflite::TensorType_INT8);
    EXPECT_EQ(std::vector<int32_t>(in->shape()->begin(), in->shape()->end()), (std::vector<int32_t>{1, 32, 32, 1}));
    EXPECT_EQ(in->quantization()->zero_point()->Get(0), -128);
    const auto* out = g->tensors()->Get(uint32_t(g->outputs()->Get(0)));
    EXPECT_EQ(out->quantization()->scale()->Get(0), 1.0f / 256.0f);
    // Weights (input 1 of both ops): int8, one scale per output channel along
    // dimension 0, zero points 0; CONV_2D's biases int32; TRANSPOSE_CONV as
    // TensorFlow writes it without bias: (output shape, weights, input).
    int convs = 0, transposed_convs = 0;
    for (const auto* op : *g->operators()) {
      const auto code = m->operator_codes()->Get(op->opcode_index())->builtin_code();
      if (code != tflite::BuiltinOperator_CONV_2D && code != tflite::BuiltinOperator_TRANSPOSE_CONV) continue;
      const auto* w = g->tensors()->Get(uint32_t(op->inputs()->Get(1)));
      EXPECT_EQ(w->type(), tflite::TensorType_INT8);
      EXPECT_EQ(w->quantization()->quantized_dimension(), 0);
      EXPECT_EQ(int(w->quantization()->scale()->size()), w->shape()->Get(0));
      EXPECT_EQ(m->buffers()->Get(w->buffer())->data()->size(),
                size_t(w->shape()->Get(0)) * w->shape()->Get(1) * w->shape()->Get(2) * w->shape()->Get(3));
      if (code == tflite::BuiltinOperator_CONV_2D) {
        EXPECT_EQ(g->tensors()->Get(uint32_t(op->inputs()->Get(2)))->type(), tflite::TensorType_INT32);
        ++convs;
        continue;
      }
      ASSERT_EQ(op->inputs()->size(), 3u);
      EXPECT_EQ(w->shape()->Get(1), 2);
      EXPECT_EQ(w->shape()->Get(2), 2);
      const auto* shape = g->tensors()->Get(uint32_t(op->inputs()->Get(0)));
      const auto* y = g->tensors()->Get(uint32_t(op->outputs()->Get(0)));
      ASSERT_EQ(shape->type(), tflite::TensorType_INT32);
      const auto* bytes = m->buffers()->Get(shape->buffer())->data();
      ASSERT_EQ(bytes->size(), 16u);
      std::vector<int32_t> dims(4);
      std::memcpy(dims.data(), bytes->data(), 16);
      EXPECT_EQ(dims, std::vector<int32_t>(y->shape()->begin(), y->shape()->end()));
      EXPECT_EQ(dims[1], 2 * g->tensors()->Get(uint32_t(op->inputs()->Get(2)))->shape()->Get(1));
      const auto* o = op->builtin_options_as_TransposeConvOptions();
      ASSERT_NE(o, nullptr);
      EXPECT_EQ(o->padding(), tflite::Padding_VALID);
      EXPECT_EQ(o->stride_h(), 2);
      EXPECT_EQ(o->stride_w(), 2);
      ++transposed_convs;
    }
    EXPECT_EQ(convs + transposed_convs, int(e.q.convs.size()));
    EXPECT_EQ(transposed_convs, transposed ? 2 : 0);  // one per decoder level
  }
}

TEST(EdgeTpuCheck, OurInt8ModelMapsEntirely) {
  for (Upsampling up : {Upsampling::nearest, Upsampling::transposed}) {
    SCOPED_TRACE(upsampling_name(up));
    const EdgeTpuReport r = check_edgetpu(exported(up).int8, "ours");
    EXPECT_EQ(r.first_fallback, -1);
    ASSERT_EQ(r.ops.size(), exported(up).q.ops.size());
    for (const EdgeTpuOp& op : r.ops) EXPECT_EQ(op.where, "edgetpu") << op.index << " " << op.op << ": " << op.reason;
    EXPECT_GT(r.parameter_bytes, 0u);
    EXPECT_TRUE(r.notes.empty());
    // With float I/O the edges run on the CPU and are not a fallback.
    const EdgeTpuReport f = check_edgetpu(tflite_int8(exported(up).q, true), "float io");
    EXPECT_EQ(f.first_fallback, -1);
    EXPECT_EQ(f.ops.front().where, "cpu (edge)");
    EXPECT_EQ(f.ops.back().where, "cpu (edge)");
  }
}

TEST(EdgeTpuCheck, FlagsAFloatTensorAtItsProducer) {
  std::vector<uint8_t> bytes = exported().int8;
  tensor_named(bytes, "enc1.0")->mutate_type(tflite::TensorType_FLOAT32);
  const EdgeTpuReport r = check_edgetpu(bytes, "broken");
  ASSERT_GE(r.first_fallback, 0);
  const EdgeTpuOp& op = r.ops[size_t(r.first_fallback)];
  EXPECT_EQ(op.output, "enc1.0");
  EXPECT_NE(op.reason.find("FLOAT32"), std::string::npos) << op.reason;
  for (size_t i = size_t(r.first_fallback) + 1; i < r.ops.size(); ++i) EXPECT_EQ(r.ops[i].where, "cpu");
}

TEST(EdgeTpuCheck, FlagsBatchFour) {
  std::vector<uint8_t> bytes = exported().int8;
  tensor_named(bytes, "input")->mutable_shape()->Mutate(0, 4);
  const EdgeTpuReport r = check_edgetpu(bytes, "batch 4");
  ASSERT_EQ(r.first_fallback, 0);
  EXPECT_NE(r.ops[0].reason.find("batch 4"), std::string::npos) << r.ops[0].reason;
}

TEST(EdgeTpuCheck, FlagsAWrongSigmoidOutputScale) {
  std::vector<uint8_t> bytes = exported().int8;
  tensor_named(bytes, "probabilities")->mutable_quantization()->mutable_scale()->Mutate(0, 0.01f);
  const EdgeTpuReport r = check_edgetpu(bytes, "sigmoid");
  ASSERT_EQ(r.first_fallback, int(r.ops.size()) - 1);
  EXPECT_EQ(r.ops.back().op, "LOGISTIC");
}

TEST(EdgeTpuCheck, FlagsATransposedConvolutionWithoutAConstantOutputShape) {
  std::vector<uint8_t> bytes = exported(Upsampling::transposed).int8;
  tensor_named(bytes, "dec1.up/output_shape")->mutate_buffer(0);  // no data: computed at run time
  const EdgeTpuReport r = check_edgetpu(bytes, "shape");
  ASSERT_GE(r.first_fallback, 0);
  EXPECT_EQ(r.ops[size_t(r.first_fallback)].op, "TRANSPOSE_CONV");
  EXPECT_EQ(r.ops[size_t(r.first_fallback)].output, "dec1.up");
  EXPECT_NE(r.ops[size_t(r.first_fallback)].reason.find("output size is not a constant"), std::string::npos);
}

TEST(EdgeTpuCheck, FlagsAFloatModelAndRefusesCorruptBytes) {
  const EdgeTpuReport r = check_edgetpu(exported().fp32, "float");
  ASSERT_EQ(r.first_fallback, 0);
  EXPECT_NE(r.ops[0].reason.find("FLOAT32"), std::string::npos);
  std::vector<uint8_t> bytes = exported().int8;
  bytes.resize(bytes.size() / 3);
  test::expect_error_containing([&] { check_edgetpu(bytes, "cut.tflite"); }, "cut.tflite: not a valid TFLite");
  test::expect_error_containing([&] { check_edgetpu(std::vector<uint8_t>(64, 7), "junk.tflite"); }, "junk.tflite");
}

// ONNX: the checker passes (inside the export), the graph has the expected
// ops, and the weights are OIHW: element (o, i, y, x) is OHWI's (o, y, x, i).
TEST(OnnxExport, FloatAndQdqGraphs) {
  const Exported& e = exported();
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(onnx_float(e.folded, 32, 32, DType::f32)));
  std::map<std::string, int> ops;
  for (const auto& n : m.graph().node()) ++ops[n.op_type()];
  const int convs = int(e.folded.convs.size());
  EXPECT_EQ(ops["Conv"], convs);
  EXPECT_EQ(ops["Relu"], convs - 1);  // all but the head
  EXPECT_EQ(ops["MaxPool"], 2);
  EXPECT_EQ(ops["Resize"], 2);
  EXPECT_EQ(ops["Concat"], 2);
  EXPECT_EQ(ops["Sigmoid"], 1);
  const DeployOp& first = e.folded.ops.front();
  const DeployConv& c = e.folded.convs[size_t(first.conv)];
  const onnx::TensorProto* w = nullptr;
  for (const auto& t : m.graph().initializer())
    if (t.name() == first.name + ".weight") w = &t;
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(w->dims_size(), 4);
  EXPECT_EQ(w->dims(0), c.cout);
  EXPECT_EQ(w->dims(1), c.cin);
  const auto* f = reinterpret_cast<const float*>(w->raw_data().data());
  for (int o = 0; o < c.cout; ++o)
    for (int y = 0; y < c.k; ++y)
      for (int x = 0; x < c.k; ++x)
        for (int i = 0; i < c.cin; ++i)
          ASSERT_EQ(f[((o * c.cin + i) * c.k + y) * c.k + x], c.weights[size_t(((o * c.k + y) * c.k + x) * c.cin + i)]);

  onnx::ModelProto q;
  ASSERT_TRUE(q.ParseFromString(onnx_int8_qdq(e.q)));
  std::map<std::string, int> qops;
  for (const auto& n : q.graph().node()) ++qops[n.op_type()];
  EXPECT_EQ(qops["QuantizeLinear"], int(e.q.tensors.size()));  // every int8 tensor, the input's included
  EXPECT_EQ(qops["Conv"], convs);
  // Weights are int8 with one scale per output channel along axis 0.
  int weights_seen = 0, scales_seen = 0;
  for (const auto& t : q.graph().initializer()) {
    if (t.name() == first.name + ".weight_q") {
      EXPECT_EQ(t.data_type(), onnx::TensorProto::INT8);
      ++weights_seen;
    }
    if (t.name() == first.name + ".weight.scale") {
      EXPECT_EQ(t.dims(0), c.cout);
      ++scales_seen;
    }
  }
  EXPECT_EQ(weights_seen, 1);
  EXPECT_EQ(scales_seen, 1);
  test::expect_error_containing([&] { onnx_float(e.folded, 30, 32, DType::f32); }, "multiple of");
  test::expect_error_containing([&] { onnx_float(e.folded, 32, 32, DType::bf16); }, "fp32 or fp16");
}

// The transposed upsampling in ONNX: one ConvTranspose per decoder level
// (2x2, stride 2, no bias) whose weights are [i, o, 2, 2], element (i, o, a, b)
// being the folded [o, 2, 2, i] filter's (o, a, b, i); per output channel
// along axis 1 in the QDQ graph.
TEST(OnnxExport, TransposedUpsamplingIsConvTranspose) {
  const Exported& e = exported(Upsampling::transposed);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(onnx_float(e.folded, 32, 32, DType::f32)));
  std::map<std::string, int> ops;
  const onnx::NodeProto* up = nullptr;
  for (const auto& n : m.graph().node()) {
    ++ops[n.op_type()];
    if (n.op_type() == "ConvTranspose" && n.name() == "dec1.up") up = &n;
  }
  EXPECT_EQ(ops["ConvTranspose"], 2);
  EXPECT_EQ(ops["Conv"], int(e.folded.convs.size()) - 2);
  EXPECT_EQ(ops["Resize"], 0);
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->input_size(), 2);  // no bias
  const DeployConv* c = nullptr;
  for (const DeployOp& op : e.folded.ops)
    if (op.name == "dec1.up") c = &e.folded.convs[size_t(op.conv)];
  ASSERT_NE(c, nullptr);
  const onnx::TensorProto* w = nullptr;
  for (const auto& t : m.graph().initializer())
    if (t.name() == "dec1.up.weight") w = &t;
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(std::vector<int64_t>(w->dims().begin(), w->dims().end()), (std::vector<int64_t>{c->cin, c->cout, 2, 2}));
  const auto* f = reinterpret_cast<const float*>(w->raw_data().data());
  for (int i = 0; i < c->cin; ++i)
    for (int o = 0; o < c->cout; ++o)
      for (int t = 0; t < 4; ++t) ASSERT_EQ(f[(i * c->cout + o) * 4 + t], c->weights[size_t((o * 4 + t) * c->cin + i)]);

  onnx::ModelProto q;
  ASSERT_TRUE(q.ParseFromString(onnx_int8_qdq(e.q)));
  int transposed = 0;
  for (const auto& n : q.graph().node()) {
    transposed += n.op_type() == "ConvTranspose";
    if (n.name() != "dec1.up.weight.dequantize") continue;
    ASSERT_EQ(n.attribute_size(), 1);
    EXPECT_EQ(n.attribute(0).name(), "axis");
    EXPECT_EQ(n.attribute(0).i(), 1);
  }
  EXPECT_EQ(transposed, 2);
}

// The folded transposed convolution computes what the network's 1x1
// convolution to 4C and depth-to-space move compute: from the network's own
// input to the upsampling (fp32 inference on the reference backend), the
// folded filter in double gives the network's upsampled values.
TEST(Deploy, TransposedConvolutionIsTheNetworksUpsampling) {
  const int b = 2, h = 16, w = 32;
  const UNet net = build_unet({4, 2, 1, 1, Upsampling::transposed});
  Weights wt = init_weights(net, 9);
  const DeployNet d = fold_unet(net, wt);
  auto backend = make_backend("ref");
  auto ws = make_workspace(net, *backend, Policy::fp32, b, h, w, false);
  upload_weights(net, wt, *ws);
  std::vector<float> images(size_t(b) * h * w);
  Rng rng(4);
  for (float& v : images) v = float(rng.uniform(0, 1));
  set_input(net, *ws, images.data());
  forward(net, *ws);
  auto host = [&](int v) {
    const Tensor& t = ws->act[size_t(v)];
    std::vector<float> r(t.numel());
    backend->copy_out(r.data(), t.data, t.bytes());
    return r;
  };
  int checked = 0;
  for (const DeployOp& op : d.ops) {
    if (op.kind != DeployOpKind::transposed_conv) continue;
    const DeployConv& c = d.convs[size_t(op.conv)];
    ASSERT_EQ(c.k, 2);
    const std::vector<float> x = host(d.tensors[size_t(op.in0)].value), y = host(d.tensors[size_t(op.out)].value);
    const int ih = h >> d.tensors[size_t(op.in0)].level, iw = w >> d.tensors[size_t(op.in0)].level;
    ASSERT_EQ(y.size(), size_t(b) * 4 * ih * iw * c.cout);
    std::vector<double> ref;  // in y's order
    for (int n = 0; n < b; ++n)
      for (int oy = 0; oy < 2 * ih; ++oy)
        for (int ox = 0; ox < 2 * iw; ++ox)
          for (int o = 0; o < c.cout; ++o) {
            double acc = 0;
            for (int i = 0; i < c.cin; ++i)
              acc += double(x[((size_t(n) * ih + oy / 2) * iw + ox / 2) * c.cin + i]) *
                     c.weights[((size_t(o) * 2 + oy % 2) * 2 + ox % 2) * c.cin + i];
            ref.push_back(acc);
          }
    double rms = 0;
    for (double r : ref) rms += r * r;
    rms = std::sqrt(rms / double(ref.size()));
    const double tol = tolerance(Op::conv2d_fwd, DType::f32, size_t(c.cin));
    size_t bad = 0;
    for (size_t j = 0; j < ref.size(); ++j) bad += std::fabs(double(y[j]) - ref[j]) > tol * (std::fabs(ref[j]) + rms);
    EXPECT_EQ(bad, 0u) << op.name << " (rms " << rms << ")";
    EXPECT_GT(rms, 0.0) << op.name;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}
