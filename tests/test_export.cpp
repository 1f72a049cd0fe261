// TFLite and ONNX export and the Edge TPU preflight: the int8 file has the structure
// the Edge TPU compiler wants and passes the preflight; deliberately broken
// files (a float tensor, batch 4, a wrong sigmoid output scale, a float
// model, corrupt bytes) are flagged at the right op with the reason.
#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <map>
#include <set>

#include "data/synthetic.h"
#include "export/edgetpu_check.h"
#include "export/onnx_export.h"
#include "export/tflite_export.h"
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

const Exported& exported() {
  static const Exported e = [] {
    Exported r;
    const UNet net = build_unet({4, 2, 1, 1});
    Weights w = init_weights(net, 5);
    auto backend = make_backend("fast");
    const Calibration cal = calibrate(net, w, *backend, make_synthetic({32, 32, 1, 0.05}, 8), {});
    r.folded = fold_unet(net, w);
    r.q = quantize_unet(r.folded, cal.ranges, 32, 32, cal.description);
    r.int8 = tflite_int8(r.q);
    r.fp32 = tflite_float(r.folded, 32, 32, DType::f32);
    return r;
  }();
  return e;
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
  const Exported& e = exported();
  flatbuffers::Verifier v(e.int8.data(), e.int8.size());
  ASSERT_TRUE(tflite::VerifyModelBuffer(v));
  const tflite::Model* m = tflite::GetModel(e.int8.data());
  EXPECT_EQ(m->version(), 3u);
  std::set<std::string> ops;
  for (const auto* c : *m->operator_codes()) ops.insert(tflite::EnumNameBuiltinOperator(c->builtin_code()));
  EXPECT_EQ(ops, (std::set<std::string>{"CONV_2D", "MAX_POOL_2D", "RESIZE_NEAREST_NEIGHBOR", "CONCATENATION", "LOGISTIC"}));
  const auto* g = m->subgraphs()->Get(0);
  const auto* in = g->tensors()->Get(uint32_t(g->inputs()->Get(0)));
  EXPECT_EQ(in->type(), tflite::TensorType_INT8);
  EXPECT_EQ(std::vector<int32_t>(in->shape()->begin(), in->shape()->end()), (std::vector<int32_t>{1, 32, 32, 1}));
  EXPECT_EQ(in->quantization()->zero_point()->Get(0), -128);
  const auto* out = g->tensors()->Get(uint32_t(g->outputs()->Get(0)));
  EXPECT_EQ(out->quantization()->scale()->Get(0), 1.0f / 256.0f);
  // Weights: int8, one scale per output channel along dimension 0, zero points 0; biases int32.
  int convs = 0;
  for (const auto* op : *g->operators()) {
    if (m->operator_codes()->Get(op->opcode_index())->builtin_code() != tflite::BuiltinOperator_CONV_2D) continue;
    const auto* w = g->tensors()->Get(uint32_t(op->inputs()->Get(1)));
    const auto* b = g->tensors()->Get(uint32_t(op->inputs()->Get(2)));
    EXPECT_EQ(w->type(), tflite::TensorType_INT8);
    EXPECT_EQ(w->quantization()->quantized_dimension(), 0);
    EXPECT_EQ(int(w->quantization()->scale()->size()), w->shape()->Get(0));
    EXPECT_EQ(b->type(), tflite::TensorType_INT32);
    EXPECT_EQ(m->buffers()->Get(w->buffer())->data()->size(), size_t(w->shape()->Get(0)) * w->shape()->Get(1) *
                                                                   w->shape()->Get(2) * w->shape()->Get(3));
    ++convs;
  }
  EXPECT_EQ(convs, int(e.q.convs.size()));
}

TEST(EdgeTpuCheck, OurInt8ModelMapsEntirely) {
  const EdgeTpuReport r = check_edgetpu(exported().int8, "ours");
  EXPECT_EQ(r.first_fallback, -1);
  ASSERT_EQ(r.ops.size(), exported().q.ops.size());
  for (const EdgeTpuOp& op : r.ops) EXPECT_EQ(op.where, "edgetpu") << op.index << " " << op.op << ": " << op.reason;
  EXPECT_GT(r.parameter_bytes, 0u);
  EXPECT_TRUE(r.notes.empty());
  // With float I/O the edges run on the CPU and are not a fallback.
  const EdgeTpuReport f = check_edgetpu(tflite_int8(exported().q, true), "float io");
  EXPECT_EQ(f.first_fallback, -1);
  EXPECT_EQ(f.ops.front().where, "cpu (edge)");
  EXPECT_EQ(f.ops.back().where, "cpu (edge)");
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
