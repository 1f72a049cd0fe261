// `mixseg infer`: runs a model on raw tensors from a .npy file and writes its
// output as .npy, for checks against other runtimes and for scripts. A float
// checkpoint takes float32 [N, H, W, C] in [0, 1] and gives float32
// probabilities; an int8 model takes int8 (its input quantization) or float32
// (quantized as TFLite's QUANTIZE would) and gives int8 (probability (q + 128) / 256).
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "data/npy.h"
#include "model/network.h"
#include "quant/engine.h"
#include "train/checkpoint.h"

namespace mixseg::cli {

namespace {

struct InferOptions {
  DeviceOptions where;
  std::string model, input, out, precision, int8_kernels = "fast", all_tensors;
  ConvAlgorithmFiles algorithms;
};

void check_shape(const NpyArray& a, const std::string& path, int h, int w, int c) {
  if (a.shape.size() != 4 || a.shape[0] < 1 || a.shape[1] != h || a.shape[2] != w || a.shape[3] != c)
    fail("{}: expected an array [N, {}, {}, {}] (NHWC), got shape of {} dimensions{}", path, h, w, c, a.shape.size(),
         a.shape.size() == 4 ? fmt::format(" [{}, {}, {}, {}]", a.shape[0], a.shape[1], a.shape[2], a.shape[3]) : "");
}

void run_int8_model(const InferOptions& o, const NpyArray& in) {
  if (!o.precision.empty() && o.precision != "int8") fail("{} is an int8 model; it runs in int8 only", o.model);
  if (o.int8_kernels != "fast" && o.int8_kernels != "ref") fail("--int8-kernels must be ref or fast");
  const QModel m = load_qmodel(o.model);
  check_shape(in, o.input, m.height, m.width, m.config.in_channels);
  std::vector<int8_t> x;
  if (in.dtype == "i1") x.assign(reinterpret_cast<const int8_t*>(in.data.data()), reinterpret_cast<const int8_t*>(in.data.data()) + in.numel());
  else if (in.dtype == "f4") x = quantize_input(m, reinterpret_cast<const float*>(in.data.data()), in.numel());
  else fail("{}: an int8 model takes int8 or float32 input, not {}", o.input, in.dtype);
  const int n = int(in.shape[0]);
  const std::vector<std::vector<int8_t>> all = run_int8_all(m, x.data(), n, o.int8_kernels == "fast");
  const std::vector<int8_t>& y = all[size_t(m.output)];
  if (!o.all_tensors.empty()) {
    ensure_writable_dir(o.all_tensors);
    for (size_t t = 0; t < m.tensors.size(); ++t) {
      const QTensor& q = m.tensors[t];
      NpyArray a{"i1", {n, m.height >> q.level, m.width >> q.level, q.channels}, {}};
      a.data.assign(reinterpret_cast<const uint8_t*>(all[t].data()), reinterpret_cast<const uint8_t*>(all[t].data()) + all[t].size());
      write_npy(o.all_tensors + "/" + q.name + ".npy", a);
    }
  }
  NpyArray out{"i1", {in.shape[0], m.height, m.width, m.config.classes}, {}};
  out.data.assign(reinterpret_cast<const uint8_t*>(y.data()), reinterpret_cast<const uint8_t*>(y.data()) + y.size());
  write_npy(o.out, out);
}

void run_float_model(const InferOptions& o, const NpyArray& in, const DeviceChoice& where) {
  const Checkpoint ck = load_checkpoint(o.model);
  const UNet net = build_unet(ck.config);
  if (in.dtype != "f4") fail("{}: a float checkpoint takes float32 input in [0, 1], not {}", o.input, in.dtype);
  if (in.shape.size() != 4) check_shape(in, o.input, ck.height, ck.width, ck.config.in_channels);
  const int n = int(in.shape[0]), h = int(in.shape[1]), w = int(in.shape[2]);
  check_input_size(ck.config, h, w);
  check_shape(in, o.input, h, w, ck.config.in_channels);
  const Policy policy = o.precision.empty() ? Policy::fp32 : parse_policy(o.precision);
  auto backend = make_backend(where.backend);
  const FollowedChoices followed = follow_conv_algorithms(*backend, o.algorithms.follow);
  auto ws = make_workspace(net, *backend, policy, n, h, w, false);
  Weights weights = ck.weights;
  upload_weights(net, weights, *ws);
  set_input(net, *ws, reinterpret_cast<const float*>(in.data.data()));
  forward(net, *ws);
  std::vector<float> p = logits_f32(net, *ws);
  for (float& v : p) v = 1.0f / (1.0f + std::exp(-v));
  NpyArray out{"f4", {n, h, w, ck.config.classes}, std::vector<uint8_t>(p.size() * 4)};
  std::memcpy(out.data.data(), p.data(), out.data.size());
  write_npy(o.out, out);
  note_choices_off_record(*backend, followed);
  save_conv_algorithms_if_asked(*backend, o.algorithms);
}

}  // namespace

void add_infer(CLI::App& app) {
  auto o = std::make_shared<InferOptions>();
  CLI::App* c = app.add_subcommand("infer", "Run a model on a .npy batch [N, H, W, C] and write its output as .npy");
  c->add_option("model", o->model, "Float checkpoint or int8 model (.safetensors)")->required();
  c->add_option("--input", o->input, "Input .npy")->required();
  c->add_option("--out", o->out, "Output .npy")->required();
  c->add_option("--precision", o->precision, "Float checkpoint: fp32, fp16 or bf16 (default fp32)");
  add_device_options(c, o->where);
  c->add_option("--int8-kernels", o->int8_kernels, "int8 model: ref (TFLite's reference loops) or fast")
      ->capture_default_str();
  c->add_option("--all-tensors", o->all_tensors, "int8 model: also write every tensor as DIR/NAME.npy (NHWC int8)");
  add_conv_algorithm_files_options(c, o->algorithms);
  c->callback([o] {
    const DeviceChoice where = resolve_device(o->where);
    const NpyArray in = read_npy(o->input);
    if (is_int8_model(o->model)) {
      if (where.device == "cuda") fail("{} is an int8 model: it runs on the CPU's int8 engine, not --device cuda", o->model);
      refuse_conv_algorithm_files_for_int8(o->algorithms, o->model);
      run_int8_model(*o, in);
    } else {
      run_float_model(*o, in, where);
    }
  });
}

}  // namespace mixseg::cli
