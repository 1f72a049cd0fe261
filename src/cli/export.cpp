// `mixseg export`: the deployed network as TFLite or ONNX, in fp32, fp16 or
// int8 (int8 from a model written by `mixseg quantize`).
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "export/onnx_export.h"
#include "export/tflite_export.h"
#include "model/deploy.h"
#include "quant/qmodel.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

namespace mixseg::cli {

namespace {

struct ExportOptions {
  std::string model, format = "tflite", precision = "int8", out, size;
  bool float_io = false;
};

void run_export(const ExportOptions& o) {
  if (o.format != "tflite" && o.format != "onnx") fail("--format must be tflite or onnx, got {}", o.format);
  if (o.precision != "fp32" && o.precision != "fp16" && o.precision != "int8")
    fail("--precision must be fp32, fp16 or int8, got {}", o.precision);
  const bool int8_file = is_int8_model(o.model);
  std::vector<uint8_t> bytes;
  if (o.precision == "int8") {
    if (!int8_file)
      fail("{} is a float checkpoint; int8 export needs its quantized model: mixseg quantize {} --data DIR --out "
           "MODEL.int8.safetensors, then export that",
           o.model, o.model);
    if (!o.size.empty()) fail("--size: an int8 model has the static size it was quantized at");
    if (o.float_io && o.format == "onnx") fail("--float-io: int8 ONNX (QDQ) always has float input and output");
    const QModel m = load_qmodel(o.model);
    if (o.format == "tflite") {
      bytes = tflite_int8(m, o.float_io);
    } else {
      const std::string b = onnx_int8_qdq(m);  // float input and output around the QDQ graph
      bytes.assign(b.begin(), b.end());
    }
  } else {
    if (int8_file) fail("{} is an int8 model; {} export needs the float checkpoint", o.model, o.precision);
    if (o.float_io) fail("--float-io applies to int8 TFLite export only");
    const Checkpoint ck = load_checkpoint(o.model);
    auto [h, w] = o.size.empty() ? std::pair{ck.height, ck.width} : parse_size(o.size);
    const DeployNet d = fold_unet(build_unet(ck.config), ck.weights);
    const DType dt = o.precision == "fp16" ? DType::f16 : DType::f32;
    if (o.format == "tflite") {
      bytes = tflite_float(d, h, w, dt);
    } else {
      const std::string b = onnx_float(d, h, w, dt);
      bytes.assign(b.begin(), b.end());
    }
  }
  write_model_file(o.out, bytes);
  fmt::print("wrote {} ({} {}, {} bytes)\n", o.out, o.format, o.precision, bytes.size());
}

}  // namespace

void add_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* c = app.add_subcommand("export", "Export the network as TFLite (Edge TPU, LiteRT) or ONNX");
  c->add_option("model", o->model, "Float checkpoint, or int8 model from `mixseg quantize` (.safetensors)")->required();
  c->add_option("--format", o->format, "tflite or onnx")->capture_default_str();
  c->add_option("--precision", o->precision, "fp32, fp16 or int8")->capture_default_str();
  c->add_option("--size", o->size, "Input size HxW of a float export (default: the training size)");
  c->add_flag("--float-io", o->float_io,
              "int8 TFLite: float32 input and output (QUANTIZE/DEQUANTIZE at the edges; int8 ONNX always has them)");
  c->add_option("--out", o->out, "File to write")->required();
  c->callback([o] { run_export(*o); });
}

}  // namespace mixseg::cli
