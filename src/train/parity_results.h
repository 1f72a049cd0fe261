// The results of `mixseg parity` as data: one row per (seed, precision)
// with its held-out metrics, the CSV they are kept in, and the summary over
// seeds the report and `mixseg advise` read (parity.h runs the training).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/metrics.h"

namespace mixseg {

struct ParityRow {
  uint64_t seed = 0;
  std::string precision;  // a policy's name or "int8"
  SegMetrics val;
};

// seed,precision,dice,iou,dice_pooled,iou_pooled,pixel_accuracy,images
void write_parity_csv(const std::string& path, const std::vector<ParityRow>& rows);
std::vector<ParityRow> read_parity_csv(const std::string& path);

struct ParitySummary {
  std::string precision;
  double dice_mean = 0, dice_std = 0, iou_mean = 0, iou_std = 0;  // over seeds (std: sample, 0 for one seed)
  double dice_vs_fp32 = 0;                                       // mean of the per-seed differences to fp32
  int seeds = 0;
};
// One line per precision, in the order they first appear.
std::vector<ParitySummary> summarize_parity(const std::vector<ParityRow>& rows);

}  // namespace mixseg
