// `mixseg parity`: Dice and IoU per precision on the same data, seeds and
// epochs (train/parity.h), a table with the spread over seeds, and a CSV for
// `mixseg report --parity`.
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "train/parity.h"

namespace mixseg::cli {

namespace {

struct ParityOptions {
  DataOptions data;
  DeviceOptions where;
  int synthetic = 0, seeds = 3, epochs = 5, filters = 8, depth = 4, batch = 8;
  std::string size = "128x128", precision = "fp32,mixed_fp16,mixed_bf16", out, schedule = "cosine",
              upsampling = "nearest", conv_algorithms;
  double lr = 3e-3, val_fraction = 0.2;
  bool no_int8 = false, no_augment = false;
};

void run(const ParityOptions& o) {
  const DeviceChoice where = resolve_device(o.where);
  check_data_or_synthetic(o.data, o.synthetic);
  auto [h, w] = parse_size(o.size);
  ParityConfig cfg;
  cfg.train.model = {o.filters, o.depth, o.data.channels, 1, parse_upsampling(o.upsampling)};
  check_input_size(cfg.train.model, h, w);
  cfg.train.batch = o.batch;
  cfg.train.epochs = o.epochs;
  cfg.train.optimizer.lr = o.lr;
  cfg.train.schedule.kind = parse_schedule(o.schedule);
  cfg.train.augment.enabled = !o.no_augment;
  for (const auto& p : split_list(o.precision)) {
    cfg.policies.push_back(parse_policy(p));
    check_trainable(cfg.policies.back());
  }
  for (int s = 0; s < o.seeds; ++s) cfg.seeds.push_back(uint64_t(s + 1));
  cfg.int8 = !o.no_int8;
  cfg.val_fraction = o.val_fraction;
  const Dataset data = load_data_or_synthetic(o.data, o.synthetic, 4242, h, w);
  auto backend = make_backend(where.backend);
  const FollowedChoices followed = follow_conv_algorithms(*backend, o.conv_algorithms);
  fmt::print("parity: {} images at {}x{}, U-Net f={} depth={} upsampling={}, {} epochs, {} seeds, backend {}\n",
             data.size(), h, w, o.filters, o.depth, o.upsampling, o.epochs, o.seeds, backend->name());
  const std::vector<ParityRow> rows = run_parity(cfg, data, *backend, [](const ParityRow& r) {
    fmt::print("  seed {}  {:<11} dice {:.4f}  iou {:.4f}\n", r.seed, r.precision, r.val.dice_mean, r.val.iou_mean);
    std::fflush(stdout);
  });
  fmt::print("\n{:<11} {:>6} {:>16} {:>16} {:>14}\n", "precision", "seeds", "dice (mean, sd)", "iou (mean, sd)",
             "dice - fp32");
  for (const ParitySummary& s : summarize_parity(rows))
    fmt::print("{:<11} {:>6} {:>9.4f} {:>6.4f} {:>9.4f} {:>6.4f} {:>+14.4f}\n", s.precision, s.seeds, s.dice_mean,
               s.dice_std, s.iou_mean, s.iou_std, s.dice_vs_fp32);
  note_choices_off_record(*backend, followed);
  if (!o.out.empty()) {
    write_parity_csv(o.out, rows);
    fmt::print("wrote {}\n", o.out);
    if (!backend->choices().empty()) {  // every run above used these (one backend, each choice made once)
      const std::string record = o.out + ".conv_algorithms.json";
      save_choice_record(*backend, record);
      fmt::print("wrote {} (--conv-algorithms {} repeats these runs)\n", record, record);
    }
  }
}

}  // namespace

void add_parity(CLI::App& app) {
  auto o = std::make_shared<ParityOptions>();
  CLI::App* c = app.add_subcommand("parity", "Dice per precision on the same data, seeds and epochs (and int8)");
  add_data_options(c, o->data);
  c->add_option("--synthetic", o->synthetic, "Use N synthetic frames")->check(positive);
  c->add_option("--size", o->size, "Input size HxW")->capture_default_str();
  c->add_option("--precision", o->precision, "Training policies to compare")->capture_default_str();
  c->add_flag("--no-int8", o->no_int8, "Leave out the int8 model (quantized from the fp32 one)");
  c->add_option("--seeds", o->seeds, "Seeds 1..N (split, initialisation, shuffling)")->capture_default_str()->check(positive);
  c->add_option("--epochs", o->epochs, "Epochs per run")->capture_default_str()->check(positive);
  c->add_option("--filters", o->filters, "Channels of the first level")->capture_default_str()->check(positive);
  c->add_option("--depth", o->depth, "Number of poolings")->capture_default_str()->check(CLI::Range(1, 8));
  c->add_option("--upsampling", o->upsampling, "The decoder's x2 upsampling: nearest or transposed")
      ->capture_default_str()
      ->check(CLI::IsMember({"nearest", "transposed"}));
  c->add_option("--batch", o->batch, "Batch size")->capture_default_str()->check(positive);
  c->add_option("--lr", o->lr, "Learning rate")->capture_default_str()->check(positive);
  c->add_option("--schedule", o->schedule, "constant, cosine or step")->capture_default_str();
  c->add_flag("--no-augment", o->no_augment, "Train without augmentation");
  c->add_option("--val-fraction", o->val_fraction, "Held-out fraction")->capture_default_str();
  add_device_options(c, o->where);
  add_conv_algorithms_option(c, o->conv_algorithms);
  c->add_option("--out", o->out,
                "CSV of every (seed, precision) result, for mixseg report --parity (and beside it, "
                "OUT.conv_algorithms.json: the convolution algorithms chosen)");
  c->callback([o] { run(*o); });
}

}  // namespace mixseg::cli
