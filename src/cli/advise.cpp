// `mixseg advise`: the precision and batch size to use (report/advise.h).
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "report/advise.h"

namespace mixseg::cli {

void add_advise(CLI::App& app) {
  struct Options {
    std::vector<std::string> csvs;
    std::string parity;
    AdviseConfig cfg;
  };
  auto o = std::make_shared<Options>();
  CLI::App* c = app.add_subcommand(
      "advise", "Recommend the precision and batch size with the least J/img (or most img/s) within a Dice tolerance");
  c->add_option("results", o->csvs, "Results CSVs from mixseg bench (a short sweep over --precision and --batch)")
      ->required();
  c->add_option("--parity", o->parity, "Parity CSV from mixseg parity (without it, accuracy is not checked)");
  c->add_option("--filters", o->cfg.filters, "Model size")->capture_default_str();
  c->add_option("--phase", o->cfg.phase, "train or infer")->capture_default_str();
  c->add_option("--goal", o->cfg.goal, "energy (least J/img) or throughput (most img/s)")->capture_default_str();
  c->add_option("--dice-tolerance", o->cfg.dice_tolerance, "Allowed mean Dice loss against fp32")->capture_default_str();
  c->callback([o] {
    std::vector<ResultRow> rows;
    for (const auto& f : o->csvs) {
      const auto r = read_results_csv(f);
      rows.insert(rows.end(), r.begin(), r.end());
    }
    const std::vector<ParityRow> parity = o->parity.empty() ? std::vector<ParityRow>{} : read_parity_csv(o->parity);
    const Advice a = advise(rows, parity, o->cfg);
    fmt::print("{:<11} {:>5} {:>10} {:>9} {:>12} {:>5}  {}\n", "precision", "batch", "img/s", "J/img", "Dice - fp32",
               "runs", "");
    for (const AdviseCandidate& k : a.ranked)
      fmt::print("{:<11} {:>5} {:>10.2f} {:>9} {:>12} {:>5}  {}\n", k.precision, k.batch, k.img_per_s,
                 k.joules_per_img ? fmt::format("{:.4g}", *k.joules_per_img) : "-",
                 k.dice_vs_fp32 ? fmt::format("{:+.4f}", *k.dice_vs_fp32) : "-", k.img_per_s_runs.size(),
                 k.allowed ? "" : "left out: " + k.why_not);
    for (const auto& n : a.notes) fmt::print("note: {}\n", n);
    const AdviseCandidate& best = a.ranked.front();
    if (!best.allowed) fail("nothing to recommend: no candidate is within the Dice tolerance {}", o->cfg.dice_tolerance);
    fmt::print("advice for U-Net f={} {}: {} at batch {} ({})\n", o->cfg.filters, o->cfg.phase, best.precision, best.batch,
               a.goal_used == "energy" ? fmt::format("{:.4g} J/img", *best.joules_per_img)
                                       : fmt::format("{:.2f} img/s", best.img_per_s));
  });
}

}  // namespace mixseg::cli
