// Accuracy parity across precisions (the paper's "without losing accuracy"):
// the same data split, seeds and epochs trained in each policy, each model
// evaluated on the held-out images in its own precision, and (optionally)
// the fp32 model quantized to int8 from its training images and evaluated in
// int8; several seeds give the spread. Results as CSV rows for the report.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "data/dataset.h"
#include "train/metrics.h"
#include "train/trainer.h"

namespace mixseg {

struct ParityConfig {
  TrainConfig train;              // model, batch, epochs, optimizer, schedule, augmentation; policy and seed vary
  std::vector<Policy> policies;   // trained and evaluated in turn
  bool int8 = true;               // also the fp32 model quantized to int8 (needs fp32 among the policies)
  std::vector<uint64_t> seeds;    // split, initialisation and shuffling
  double val_fraction = 0.2;
};

struct ParityRow {
  uint64_t seed = 0;
  std::string precision;  // a policy's name or "int8"
  SegMetrics val;
};

std::vector<ParityRow> run_parity(const ParityConfig& cfg, const Dataset& data, Backend& backend,
                                  const std::function<void(const ParityRow&)>& on_row = {});

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
