// `mixseg train`: train the U-Net on a BAGLS-style folder or synthetic data,
// in one or several precision policies (a comma-separated list trains each in
// turn on the same data and seed and ends with a comparison table).
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/threads.h"
#include "data/synthetic.h"
#include "precision/plan.h"
#include "train/trainer.h"

namespace mixseg::cli {

namespace {

struct TrainOptions {
  DataOptions data, val_data;
  bool no_augment = false;
  std::string size = "128x128", precision = "fp32", out, resume, optimizer = "adam", conv_algorithms;
  DeviceOptions where;
  int synthetic = 0, filters = 8, depth = 4, batch = 8, epochs = 10;
  double lr = 1e-3, val_fraction = 0.2, bce_weight = 1.0, dice_weight = 1.0;
  std::string schedule = "constant", upsampling = "nearest";
  double warmup_epochs = 0, min_lr_fraction = 0, step_gamma = 0.1;
  int step_epochs = 0, patience = 0, loader_threads = -1, channels = 1;  // -1: by device
  uint64_t seed = 0;
  bool print_plan = false, log_scale = false;
};

// Set by SIGINT / SIGTERM: the trainer writes a resumable checkpoint and
// returns; a second signal ends the process at once.
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int sig) {
  if (g_stop.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

struct PolicyRun {
  std::string policy;
  TrainResult result;
};

void run_train(const TrainOptions& o) {
  if (o.data.any() == (o.synthetic > 0)) fail("give exactly one of --data DIR, --images DIR --masks DIR, or --synthetic N");
  const std::vector<std::string> policies = split_list(o.precision);
  for (const auto& p : policies) check_trainable(parse_policy(p));  // reject bad names before any work
  const DeviceChoice where = resolve_device(o.where);
  auto [h, w] = parse_size(o.size);
  if (o.synthetic > 0 && o.channels != 1) fail("synthetic frames are gray: --channels 3 needs a data folder");
  DataOptions data = o.data, val_data = o.val_data;
  data.channels = val_data.channels = o.channels;
  val_data.pad = data.pad;
  val_data.mask_threshold = data.mask_threshold;
  val_data.stream = data.stream;
  Dataset all;
  if (o.synthetic > 0) {
    all = make_synthetic({h, w, o.seed, 0.05}, size_t(o.synthetic));
    fmt::print("data: {} synthetic frames of {}x{} (seed {})\n", all.size(), h, w, o.seed);
  } else {
    all = load_data(data, h, w);
  }
  Dataset train_set, val_set;
  if (o.val_data.any()) {
    train_set = std::move(all);
    val_set = load_data(val_data, h, w);
    fmt::print("validation: the {} images of the validation folder\n", val_set.size());
  } else {
    std::tie(train_set, val_set) = split(std::move(all), o.val_fraction, o.seed);
    fmt::print("split: {} training, {} validation images (seed {})\n", train_set.size(), val_set.size(), o.seed);
  }

  if (!o.resume.empty() && policies.size() != 1) fail("--resume continues one run: give a single --precision");

  TrainConfig cfg;
  cfg.model = {o.filters, o.depth, o.channels, 1, parse_upsampling(o.upsampling)};
  cfg.batch = o.batch;
  cfg.epochs = o.epochs;
  cfg.optimizer.kind = parse_optimizer(o.optimizer);
  cfg.optimizer.lr = o.lr;
  cfg.loss = {o.bce_weight, o.dice_weight};
  cfg.seed = o.seed;
  cfg.augment.enabled = !o.no_augment;
  const int64_t steps_per_epoch = int64_t(train_set.size()) / o.batch;
  cfg.schedule.kind = parse_schedule(o.schedule);
  cfg.schedule.warmup_steps = std::llround(o.warmup_epochs * double(steps_per_epoch));
  cfg.schedule.min_lr_fraction = o.min_lr_fraction;
  cfg.schedule.step_every = int64_t(o.step_epochs) * steps_per_epoch;
  cfg.schedule.gamma = o.step_gamma;
  cfg.patience = o.patience;
  // The CPU backend computes on every core, so one loader thread (~600 img/s
  // at 512x256) is plenty there; a GPU step can outrun one, and the CPU is
  // idle otherwise: up to 8 threads, half of the CPU threads (--threads).
  cfg.loader_threads = o.loader_threads >= 0     ? o.loader_threads
                       : where.device == "cuda" ? std::clamp(max_threads() / 2, 1, 8)
                                                : 1;
  cfg.stop = &g_stop;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  fmt::print("augmentation: {}\n", cfg.augment.enabled ? "flips, 90-degree rotations, small rotation and scaling, "
                                                        "brightness, contrast, gamma, noise (seeded; --no-augment turns it off)"
                                                      : "off");
  const UNet net = build_unet(cfg.model);
  check_input_size(cfg.model, h, w);
  fmt::print("model: U-Net filters={} depth={} upsampling={}, {} parameters, {:.2f} GFLOP per image forward\n",
             o.filters, o.depth, o.upsampling, net.param_numel, 2 * net.conv_macs_per_image(h, w) / 1e9);

  auto backend = make_backend(where.backend);
  const FollowedChoices followed = follow_conv_algorithms(*backend, o.conv_algorithms, o.resume);
  std::vector<PolicyRun> runs;
  for (const auto& p : policies) {
    cfg.policy = parse_policy(p);
    cfg.out_dir = o.out.empty() ? "" : (policies.size() > 1 ? (std::filesystem::path(o.out) / p).string() : o.out);
    if (o.print_plan) fmt::print("{}", precision_plan(net, cfg.policy));
    std::unique_ptr<Checkpoint> resume;
    if (!o.resume.empty()) resume = std::make_unique<Checkpoint>(load_checkpoint(o.resume));
    fmt::print("training {} on the {} backend for {} epochs, batch {}, {} lr {}, {} loader thread{}{}\n", p,
               backend->name(), o.epochs, o.batch, o.optimizer, o.lr, cfg.loader_threads,
               cfg.loader_threads == 1 ? "" : "s",
               resume ? fmt::format(", resuming after epoch {}{}", resume->epoch, resume->step_in_epoch ? fmt::format(" and step {} of epoch {}", resume->step_in_epoch, resume->epoch + 1) : "") : "");
    std::ofstream scale_log;
    TrainCallbacks cb;
    // Per-step loss-scale telemetry: always for policies with loss scaling
    // (mixed_fp16), on request for the others.
    if ((o.log_scale || policy_info(cfg.policy).loss_scaling) && !cfg.out_dir.empty()) {
      ensure_writable_dir(cfg.out_dir);
      scale_log.open(std::filesystem::path(cfg.out_dir) / "loss_scale.csv");
      scale_log << "step,loss,scale,skipped\n";
    }
    // A progress line on a terminal (rewritten in place, at most ~4 times a second).
    const bool tty = isatty(fileno(stdout));
    auto last_print = std::chrono::steady_clock::now();
    auto epoch_start = last_print;
    int64_t epoch_first_step = -1;
    cb.on_step = [&](const StepStats& s) {
      if (scale_log.is_open()) scale_log << s.step << ',' << s.loss << ',' << s.scale << ',' << int(s.skipped) << '\n';
      if (!tty) return;
      const auto now = std::chrono::steady_clock::now();
      const int64_t in_epoch = s.step % s.steps_per_epoch;
      if (epoch_first_step < 0 || in_epoch == 0) {
        epoch_start = now;
        epoch_first_step = s.step;
      }
      if (std::chrono::duration<double>(now - last_print).count() < 0.25 && in_epoch + 1 < s.steps_per_epoch) return;
      last_print = now;
      const double secs = std::chrono::duration<double>(now - epoch_start).count();
      const double done = double(s.step - epoch_first_step + 1);
      const double per_step = secs / done;
      const int64_t left = (int64_t(o.epochs) * s.steps_per_epoch - s.step - 1);
      fmt::print("\r  epoch {:>3}/{} step {:>5}/{}  loss {:.4f}  lr {:.2e}  {:.1f} img/s  ETA {:.0f} s   ",
                 s.step / s.steps_per_epoch + 1, o.epochs, in_epoch + 1, s.steps_per_epoch, s.loss, s.lr,
                 per_step > 0 ? o.batch / per_step : 0.0, per_step * double(left));
      std::fflush(stdout);
    };
    // The algorithms chosen so far, beside the checkpoints (a resumed run follows them).
    auto save_choices = [&] {
      if (cfg.out_dir.empty() || backend->choices().empty()) return;
      ensure_writable_dir(cfg.out_dir);
      save_choice_record(*backend, (std::filesystem::path(cfg.out_dir) / kChoiceRecordFile).string());
    };
    cb.on_epoch = [&](const EpochStats& e) {
      save_choices();
      const std::string val = e.val.images == 0 ? "no validation set"
                                                : fmt::format("val dice {:.4f} (pooled {:.4f}) iou {:.4f}", e.val.dice_mean,
                                                              e.val.dice_pooled, e.val.iou_mean);
      fmt::print("{}  epoch {:>3}/{}  loss {:.4f}  {}  {:.1f} img/s  skipped {}{}\n", tty ? "\r\033[K" : "", e.epoch, o.epochs, e.train_loss, val,
                 e.img_per_s, e.skipped_steps,
                 policy_info(cfg.policy).loss_scaling ? fmt::format("  scale {:g}", e.loss_scale) : "");
      std::fflush(stdout);
    };
    TrainResult r = train(cfg, train_set, val_set, *backend, resume.get(), cb);
    save_choices();
    if (tty) fmt::print("\r\033[K");
    if (r.stopped_early)
      fmt::print("  stopped early: no better validation Dice for {} epochs (best {:.4f})\n", o.patience, r.last.best_dice);
    if (r.interrupted) {
      const std::string ck = (std::filesystem::path(cfg.out_dir) / "last.safetensors").string();
      if (cfg.out_dir.empty())
        fmt::print("  interrupted after step {} of epoch {} (no --out: nothing saved)\n", r.last.step_in_epoch,
                   r.last.epoch + 1);
      else
        fmt::print("  interrupted after step {} of epoch {}: saved {}; continue with --resume {} (same --batch)\n",
                   r.last.step_in_epoch, r.last.epoch + 1, ck, ck);
      runs.push_back({p, std::move(r)});
      break;
    }
    if (!cfg.out_dir.empty()) {
      nlohmann::json summary = {{"precision", p},
                                {"epochs", r.last.epoch},
                                {"activation_bytes", r.activation_bytes},
                                {"weight_bytes", r.weight_bytes}};
      if (!r.epochs.empty()) {
        summary["val_dice"] = r.epochs.back().val.dice_mean;
        summary["val_dice_pooled"] = r.epochs.back().val.dice_pooled;
        summary["img_per_s"] = typical_img_per_s(r.epochs);  // the median epoch's (not the first)
        summary["img_per_s_last_epoch"] = r.epochs.back().img_per_s;
      }
      std::ofstream(std::filesystem::path(cfg.out_dir) / "summary.json") << summary.dump(2) << '\n';
      fmt::print("  checkpoint: {}\n", (std::filesystem::path(cfg.out_dir) / "last.safetensors").string());
    }
    runs.push_back({p, std::move(r)});
  }

  note_choices_off_record(*backend, followed);
  // img/s: the median epoch's, the first left out (typical_img_per_s).
  fmt::print("\n{:<12} {:>9} {:>12} {:>8} {:>14} {:>9}\n", "precision", "val dice", "dice pooled", "img/s",
             "act. mem MiB", "skipped");
  for (const auto& run : runs) {
    const auto& r = run.result;
    if (r.epochs.empty()) continue;
    int64_t skipped = 0;
    for (const auto& e : r.epochs) skipped += e.skipped_steps;
    const SegMetrics& v = r.epochs.back().val;
    fmt::print("{:<12} {:>9} {:>12} {:>8.1f} {:>14.1f} {:>9}\n", run.policy,
               v.images ? fmt::format("{:.4f}", v.dice_mean) : "-",
               v.images ? fmt::format("{:.4f}", v.dice_pooled) : "-", typical_img_per_s(r.epochs),
               double(r.activation_bytes) / (1 << 20), skipped);
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* c = app.add_subcommand("train", "Train the U-Net (prints loss, Dice, img/s and skipped steps per epoch)");
  add_data_options(c, o->data);
  c->add_option("--channels", o->channels, "Input channels: 1 (images read as gray) or 3 (RGB)")
      ->capture_default_str()
      ->check(CLI::IsMember({1, 3}));
  c->add_option("--val-data", o->val_data.data, "Validation folder (any --data layout) instead of a split of --data");
  c->add_flag("--no-augment", o->no_augment, "Train without data augmentation");
  c->add_option("--schedule", o->schedule, "Learning-rate schedule: constant, cosine or step")->capture_default_str();
  c->add_option("--warmup-epochs", o->warmup_epochs, "Linear learning-rate warm-up over this many epochs (fractions too)")
      ->capture_default_str()->check(non_negative);
  c->add_option("--min-lr-fraction", o->min_lr_fraction, "cosine: final learning rate as a fraction of --lr")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--step-epochs", o->step_epochs, "step: multiply the learning rate by --step-gamma every N epochs")
      ->capture_default_str()->check(non_negative);
  c->add_option("--step-gamma", o->step_gamma, "step: the factor")->capture_default_str()->check(positive);
  c->add_option("--loader-threads", o->loader_threads,
                 "Threads preparing and augmenting batches ahead of training (0: on the training thread; "
                 "default: 1 on the CPU, half the CPU threads up to 8 with --device cuda)")
      ->check(non_negative);
  c->add_option("--patience", o->patience, "Stop after N epochs without a better validation Dice (0: never)")
      ->capture_default_str()->check(non_negative);
  c->add_option("--synthetic", o->synthetic, "Use N synthetic endoscopy-like frames instead of a folder")
      ->check(positive);
  c->add_option("--size", o->size, "Input size HxW (multiples of 2^depth); images are resized to it")->capture_default_str();
  c->add_option("--filters", o->filters, "Channels of the first level")->capture_default_str()->check(positive);
  c->add_option("--depth", o->depth, "Number of poolings")->capture_default_str()->check(CLI::Range(1, 8));
  c->add_option("--upsampling", o->upsampling,
                "The decoder's x2 upsampling: nearest, or transposed (a learned 2x2 stride-2 transposed convolution; "
                "deployed as TFLite TRANSPOSE_CONV and ONNX ConvTranspose)")
      ->capture_default_str()
      ->check(CLI::IsMember({"nearest", "transposed"}));
  c->add_option("--batch", o->batch, "Batch size")->capture_default_str()->check(positive);
  c->add_option("--epochs", o->epochs, "Total epochs")->capture_default_str()->check(non_negative);
  c->add_option("--lr", o->lr, "Learning rate")->capture_default_str()->check(positive);
  c->add_option("--optimizer", o->optimizer, "adam or sgd (momentum 0.9)")->capture_default_str();
  c->add_option("--precision", o->precision,
                "Policy, or a comma-separated list to compare: fp32, tf32, mixed_fp16, mixed_bf16")->capture_default_str();
  c->add_option("--seed", o->seed, "Seed for data, split, initialisation and shuffling")->capture_default_str();
  c->add_option("--val-fraction", o->val_fraction, "Fraction of images held out for validation")->capture_default_str();
  c->add_option("--bce-weight", o->bce_weight, "Weight of binary cross-entropy in the loss")->capture_default_str();
  c->add_option("--dice-weight", o->dice_weight, "Weight of soft Dice in the loss")->capture_default_str();
  add_device_options(c, o->where);
  c->add_option("--out", o->out,
                fmt::format("Output folder for checkpoints, train_log.csv, summary.json and {} (the convolution "
                            "algorithms chosen)",
                            kChoiceRecordFile));
  c->add_option("--resume", o->resume,
                fmt::format("Continue from this checkpoint (last.safetensors) up to --epochs (following the {} "
                            "beside it)",
                            kChoiceRecordFile));
  add_conv_algorithms_option(c, o->conv_algorithms);
  c->add_flag("--print-precision-plan", o->print_plan, "Print the dtype of every layer's input, weights, accumulator, output");
  c->add_flag("--log-scale", o->log_scale,
              "Write every step's loss scale and overflow flag to OUT/loss_scale.csv (always done for mixed_fp16)");
  c->callback([o] { run_train(*o); });
}

}  // namespace mixseg::cli
