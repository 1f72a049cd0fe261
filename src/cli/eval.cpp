// `mixseg eval`: Dice, IoU and pixel accuracy of a checkpoint on a folder or synthetic data.
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "quant/engine.h"
#include "train/trainer.h"

namespace mixseg::cli {

namespace {

struct EvalOptions {
  std::string checkpoint, precision;
  ConvAlgorithmFiles algorithms;
  DeviceOptions where;
  DataOptions data;
  int synthetic = 0, batch = 8;
  uint64_t seed = 12345;
};

DataOptions with_channels(DataOptions d, int channels) {
  d.channels = channels;  // read as the model was trained
  return d;
}

void run_eval_int8(const EvalOptions& o) {
  if (!o.precision.empty() && o.precision != "int8") fail("{} is an int8 model; it evaluates in int8 only", o.checkpoint);
  const QModel m = load_qmodel(o.checkpoint);
  const Dataset data =
      load_data_or_synthetic(with_channels(o.data, m.config.in_channels), o.synthetic, o.seed, m.height, m.width);
  const SegMetrics s = evaluate_int8(m, data, o.batch);
  fmt::print("int8 model: {} (U-Net f={} depth={}, {}x{}, {})\n", o.checkpoint, m.config.filters, m.config.depth,
             m.height, m.width, m.calibration);
  fmt::print("evaluated in int8 on {} images\n", s.images);
  fmt::print("dice {:.4f}  iou {:.4f}  dice pooled {:.4f}  iou pooled {:.4f}  pixel accuracy {:.4f}\n", s.dice_mean,
             s.iou_mean, s.dice_pooled, s.iou_pooled, s.pixel_accuracy);
}

void run_eval(const EvalOptions& o) {
  check_data_or_synthetic(o.data, o.synthetic);
  const DeviceChoice where = resolve_device(o.where);  // a bad --device fails before any work
  if (is_int8_model(o.checkpoint)) {
    if (where.device == "cuda") fail("{} is an int8 model: it runs on the CPU's int8 engine, not --device cuda", o.checkpoint);
    refuse_conv_algorithm_files_for_int8(o.algorithms, o.checkpoint);
    return run_eval_int8(o);
  }
  if (o.precision == "int8")
    fail("{} is a float checkpoint: quantize it first (mixseg quantize {} --data DIR --out MODEL), then evaluate MODEL",
         o.checkpoint, o.checkpoint);
  Checkpoint ck = load_checkpoint(o.checkpoint);
  const UNet net = build_unet(ck.config);
  const Policy policy = o.precision.empty() ? ck.policy : parse_policy(o.precision);
  const Dataset data =
      load_data_or_synthetic(with_channels(o.data, ck.config.in_channels), o.synthetic, o.seed, ck.height, ck.width);
  auto backend = make_backend(where.backend);
  const FollowedChoices followed = follow_conv_algorithms(*backend, o.algorithms.follow);
  const SegMetrics m = evaluate(net, ck.weights, *backend, policy, data, o.batch);
  fmt::print("checkpoint: {} (U-Net f={} depth={}, trained {} at {}x{}, {} epochs)\n", o.checkpoint, ck.config.filters,
             ck.config.depth, policy_info(ck.policy).name, ck.height, ck.width, ck.epoch);
  fmt::print("evaluated in {} on {} images\n", policy_info(policy).name, m.images);
  fmt::print("dice {:.4f}  iou {:.4f}  dice pooled {:.4f}  iou pooled {:.4f}  pixel accuracy {:.4f}\n", m.dice_mean,
             m.iou_mean, m.dice_pooled, m.iou_pooled, m.pixel_accuracy);
  note_choices_off_record(*backend, followed);
  save_conv_algorithms_if_asked(*backend, o.algorithms);
}

}  // namespace

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* c = app.add_subcommand("eval", "Dice/IoU of a checkpoint on a folder or synthetic data");
  c->add_option("checkpoint", o->checkpoint, "Checkpoint, or int8 model from `mixseg quantize` (.safetensors)")->required();
  add_data_options(c, o->data);
  c->add_option("--synthetic", o->synthetic, "Evaluate on N synthetic frames")->check(positive);
  c->add_option("--seed", o->seed, "Seed of the synthetic frames (differs from training's by default)")->capture_default_str();
  c->add_option("--precision", o->precision, "Run in this precision (default: the training policy's; an int8 model runs in int8)");
  add_device_options(c, o->where);
  c->add_option("--batch", o->batch, "Batch size")->capture_default_str()->check(positive);
  // A training run's record holds its validation passes, at its validation batches' sizes.
  add_conv_algorithm_files_options(c, o->algorithms);
  c->callback([o] { run_eval(*o); });
}

}  // namespace mixseg::cli
