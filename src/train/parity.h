// Accuracy parity across precisions (the paper's "without losing accuracy"):
// the same data split, seeds and epochs trained in each policy, each model
// evaluated on the held-out images in its own precision, and (optionally)
// the fp32 model quantized to int8 from its training images and evaluated in
// int8; several seeds give the spread. Results as CSV rows for the report.
#pragma once
#include <functional>
#include <vector>

#include "core/backend.h"
#include "data/dataset.h"
#include "train/parity_results.h"
#include "train/trainer.h"

namespace mixseg {

struct ParityConfig {
  TrainConfig train;              // model, batch, epochs, optimizer, schedule, augmentation; policy and seed vary
  std::vector<Policy> policies;   // trained and evaluated in turn
  bool int8 = true;               // also the fp32 model quantized to int8 (needs fp32 among the policies)
  std::vector<uint64_t> seeds;    // split, initialisation and shuffling
  double val_fraction = 0.2;
};

std::vector<ParityRow> run_parity(const ParityConfig& cfg, const Dataset& data, Backend& backend,
                                  const std::function<void(const ParityRow&)>& on_row = {});

}  // namespace mixseg
