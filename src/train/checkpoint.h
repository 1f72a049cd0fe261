// Checkpoints: everything needed to resume training exactly or to run the
// model: weights, BatchNorm running statistics, optimizer and loss scaler
// state, model config, policy, training size and epoch, in safetensors.
// Conv weights are stored OHWI ([Cout, K, K, Cin]); optimizer moments are
// flat vectors in the parameter layout; the rest is in the metadata.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/network.h"
#include "precision/loss_scaler.h"
#include "precision/policy.h"
#include "train/optimizer.h"

namespace mixseg {

struct Checkpoint {
  UNetConfig config;
  Policy policy = Policy::fp32;
  int height = 0, width = 0;  // training input size
  Weights weights;
  OptimizerConfig optimizer;
  OptimizerState optimizer_state;  // empty moments when saved for inference only
  LossScaler scaler;
  int epoch = 0;          // epochs completed
  int step_in_epoch = 0;  // optimizer steps done in epoch `epoch` (non-zero after an interruption)
  double best_dice = -1;  // best validation Dice so far (best.safetensors), for early stopping
  int epochs_since_best = 0;
  uint64_t seed = 0;
  int batch = 0;
};

void save_checkpoint(const std::string& path, const UNet& net, const Checkpoint& c);
// Loads and checks a checkpoint: every tensor the model needs must be there
// with the right dtype and shape; the error names the file and what differs.
Checkpoint load_checkpoint(const std::string& path);
// The same from the file's bytes (path only names the source in errors).
Checkpoint parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& path);

}  // namespace mixseg
