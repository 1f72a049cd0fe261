// `mixseg advise`: from benchmark rows (and parity results), the precision
// and batch size that minimise joules per image (or maximise images per
// second) for one model size and phase, among the precisions whose Dice is
// within a tolerance of fp32's. Without energy figures it says so and ranks
// by throughput; without parity results it says accuracy was not checked.
// Where a configuration was measured several times (mixseg bench --rounds),
// it says when the runner-up's runs overlap the recommended one's: on a
// machine whose speed drifts the two are then not told apart.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "bench/result_row.h"
#include "train/parity_results.h"

namespace mixseg {

struct AdviseConfig {
  int filters = 8;
  std::string phase = "train";
  std::string goal = "energy";  // energy (min J/img) or throughput (max img/s)
  double dice_tolerance = 0.01; // allowed mean Dice loss against fp32
};

struct AdviseCandidate {
  std::string precision;
  int batch = 0;
  double img_per_s = 0;
  std::optional<double> joules_per_img;
  std::vector<double> img_per_s_runs, joules_runs;  // every run's figure (the medians above are of these)
  std::optional<double> dice_vs_fp32;  // from parity, when given
  bool allowed = true;
  std::string why_not;  // for a candidate left out
};

struct Advice {
  std::vector<AdviseCandidate> ranked;  // allowed ones first, best first
  std::string goal_used;                // may fall back from energy to throughput
  std::vector<std::string> notes;
};

Advice advise(const std::vector<ResultRow>& rows, const std::vector<ParityRow>& parity, const AdviseConfig& cfg);

}  // namespace mixseg
