// `mixseg quantize`: post-training int8 quantization of a checkpoint from a
// representative set; prints the quantization table and the calibration's
// coverage, writes the int8 model (safetensors).
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "quant/calibrate.h"
#include "quant/qmodel.h"
#include "train/checkpoint.h"

namespace mixseg::cli {

namespace {

struct QuantizeOptions {
  std::string checkpoint, out, size;
  DeviceOptions where;
  DataOptions data;
  int synthetic = 0, max_images = 200;
  CalibrationConfig calibration;
  uint64_t seed = 777;
};

void print_table(const QModel& m, const DeployNet& d, const Calibration& cal) {
  fmt::print("{:<14} {:<18} {:>5} {:>11} {:>11} {:>11} {:>5} {:>9} {:>8}\n", "tensor", "from", "ch", "seen min",
             "seen max", "scale", "zp", "clipped", "samples");
  for (const DeployOp& op : m.ops) {
    const QTensor& t = m.tensors[size_t(op.out)];
    const int v = d.tensors[size_t(op.out)].value;
    const ValueStats* s = v >= 0 && cal.stats[size_t(v)].samples > 0 ? &cal.stats[size_t(v)] : nullptr;
    fmt::print("{:<14} {:<18} {:>5} {:>11} {:>11} {:>11.5g} {:>5} {:>9} {:>8}\n", t.name, deploy_op_name(op.kind),
               t.channels, s ? fmt::format("{:.4g}", s->min) : "-", s ? fmt::format("{:.4g}", s->max) : "-", t.q.scale,
               t.q.zero_point, s ? fmt::format("{:.4f}%", 100 * s->clipped) : "(shared)",
               s ? std::to_string(s->samples) : "");
  }
  fmt::print("\n{:<14} {:>5} {:>5} {:>13} {:>13} {:>13}\n", "conv", "cin", "cout", "w scale min", "w scale max",
             "multiplier max");
  for (const DeployOp& op : m.ops) {
    if (!has_weights(op.kind)) continue;
    const QConv& c = m.convs[size_t(op.conv)];
    const auto [lo, hi] = std::minmax_element(c.weight_scales.begin(), c.weight_scales.end());
    double mult = 0;
    for (const QuantizedMultiplier& q : c.multipliers) mult = std::max(mult, std::ldexp(double(q.multiplier), q.shift - 31));
    fmt::print("{:<14} {:>5} {:>5} {:>13.5g} {:>13.5g} {:>13.5g}\n", op.name, c.cin, c.cout, *lo, *hi, mult);
  }
}

void run_quantize(const QuantizeOptions& o) {
  const DeviceChoice where = resolve_device(o.where);
  check_data_or_synthetic(o.data, o.synthetic, "the representative set: ");
  const Checkpoint ck = load_checkpoint(o.checkpoint);
  const UNet net = build_unet(ck.config);
  auto [h, w] = o.size.empty() ? std::pair{ck.height, ck.width} : parse_size(o.size);
  check_input_size(ck.config, h, w);
  DataOptions data = o.data;
  data.channels = ck.config.in_channels;
  Dataset set = load_data_or_synthetic(data, o.synthetic, o.seed, h, w);
  if (set.size() > size_t(o.max_images)) {
    std::vector<size_t> idx(size_t(o.max_images));
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i * set.size() / idx.size();  // evenly over the set
    set = subset(set, idx);
  }
  if (set.size() < 100)
    fmt::print("note: {} calibration images; 100 or more give steadier ranges\n", set.size());
  auto backend = make_backend(where.backend);
  Weights weights = ck.weights;
  const Calibration cal = calibrate(net, weights, *backend, set, o.calibration);
  const DeployNet d = fold_unet(net, ck.weights);
  const QModel m = quantize_unet(d, cal.ranges, h, w, cal.description);
  fmt::print("checkpoint: {} (U-Net f={} depth={}, {}x{})\ncalibration: {}\n\n", o.checkpoint, ck.config.filters,
             ck.config.depth, h, w, cal.description);
  print_table(m, d, cal);
  save_qmodel(o.out, m);
  fmt::print("\nwrote {}\n", o.out);
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* c = app.add_subcommand("quantize", "Post-training int8 quantization of a checkpoint (for export and int8 eval)");
  c->add_option("checkpoint", o->checkpoint, "Float checkpoint (.safetensors)")->required();
  add_data_options(c, o->data);
  c->add_option("--synthetic", o->synthetic, "Calibrate on N synthetic frames")->check(positive);
  c->add_option("--max-images", o->max_images, "Use at most this many images, evenly spread over the set")
      ->capture_default_str()->check(positive);
  c->add_option("--calibration", o->calibration.method, "minmax or percentile")->capture_default_str();
  c->add_option("--percentile", o->calibration.percentile, "percentile: range [p(100 - P), p(P)] of the values")
      ->capture_default_str();
  c->add_option("--size", o->size, "Input size HxW of the int8 model (default: the training size)");
  add_device_options(c, o->where);  // where the float network runs in calibration
  c->add_option("--out", o->out, "The int8 model to write (.safetensors)")->required();
  c->callback([o] { run_quantize(*o); });
}

}  // namespace mixseg::cli
