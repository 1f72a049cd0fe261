// Training and evaluation loops. One step: images -> input (rounded to the
// storage dtype), forward, loss (f32, gradient times the loss scale), backward,
// finite check of the f32 weight gradients, optimizer on the f32 masters with
// the unscale folded in, 16-bit weight copies refreshed: all of it in the
// backend (one recorded unit where it records, e.g. a CUDA graph), the host
// reading back only the step's control block. Batches are drawn
// from a shuffle seeded by (seed, epoch), so a resumed run sees exactly the
// batches the uninterrupted run would have. The last incomplete batch of an
// epoch is dropped (BatchNorm statistics of a tiny batch are noise).
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "model/network.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/schedule.h"

namespace mixseg {

struct TrainConfig {
  UNetConfig model;
  Policy policy = Policy::fp32;
  int batch = 8;
  int epochs = 10;  // total epochs (a resumed run continues up to this)
  OptimizerConfig optimizer;
  LossWeights loss;
  LossScalerConfig scaler;  // `enabled` is taken from the policy
  AugmentConfig augment;    // training batches only; samples seeded by (seed, epoch, position in the epoch)
  ScheduleConfig schedule;  // learning rate per step from optimizer.lr
  int loader_threads = 1;   // background threads preparing batches (0: on the training thread)
  int patience = 0;         // early stopping: stop after this many epochs without a better validation Dice (0: off)
  // Checked after every step: when it becomes true the run writes
  // last.safetensors (resumable mid-epoch) and returns (e.g. set on SIGINT).
  const std::atomic<bool>* stop = nullptr;
  uint64_t seed = 0;
  std::string out_dir;  // if set: last.safetensors, best.safetensors and train_log.csv are written here
};

struct StepStats {
  int64_t step;      // global optimizer step index (including skipped steps)
  double loss;       // unscaled
  double scale;      // loss scale used for this step
  bool skipped;      // gradients were not finite
  double lr = 0;     // learning rate of this step
  int64_t steps_per_epoch = 0;
};

struct EpochStats {
  int epoch;  // 1-based
  double train_loss;
  SegMetrics val;
  double img_per_s;  // training throughput, data preparation included
  double seconds;
  int64_t skipped_steps;  // in this epoch
  double loss_scale;      // at the end of the epoch
};

// A run's training throughput for summaries: the median epoch's img/s,
// leaving out the first epoch when there are others (it also pays for
// choosing the convolution algorithms and warming up), so one slow epoch
// (another tenant on a shared machine) does not stand for the run. 0
// without epochs.
double typical_img_per_s(const std::vector<EpochStats>& epochs);

struct TrainResult {
  std::vector<EpochStats> epochs;  // completed in this call
  bool interrupted = false;        // cfg.stop was set: last.safetensors holds the mid-epoch state
  bool stopped_early = false;      // no better validation Dice for cfg.patience epochs
  Checkpoint last;
  size_t activation_bytes = 0;  // the training workspace's activation arena
  size_t weight_bytes = 0;      // compute weights and weight gradients
};

struct TrainCallbacks {
  std::function<void(const EpochStats&)> on_epoch;
  std::function<void(const StepStats&)> on_step;
};

// One step on a batch in host memory (f32 images, 0/1 targets, ws.batch of
// each): the sequence described at the top of this file, run by the backend
// on the state it holds (the masters, moments and loss scaler in the
// workspace; the first step on a workspace uploads them from `state`).
// Returns the step's loss, scale and outcome, and keeps state.scaler and
// state.optimizer_state.step current; the weights and moments come back to
// `state` with download_training_state. The returned step index is 0.
StepStats train_step(const UNet& net, Checkpoint& state, Workspace& ws, const float* input, const uint8_t* target,
                     const LossWeights& loss);
// The same in two parts: the batch into the workspace (copies that may
// still run when this returns: the buffers must stay unchanged until the
// next train_step returns), and a step on the batch the workspace holds (the
// benchmark sets one batch and steps on it, as the peers do on theirs).
void set_batch(const UNet& net, Workspace& ws, const float* input, const uint8_t* target);
StepStats train_step(const UNet& net, Checkpoint& state, Workspace& ws, const LossWeights& loss);
// The training state between the host (a Checkpoint) and a training
// workspace: weights, running statistics, optimizer moments and the loss
// scaler's state.
void upload_training_state(const UNet& net, const Checkpoint& state, Workspace& ws);
void download_training_state(const UNet& net, Workspace& ws, Checkpoint& state);

// Trains from scratch, or continues `resume` (its config, policy and size must
// match). Validation runs after every epoch when val is non-empty.
TrainResult train(const TrainConfig& cfg, const Dataset& train_set, const Dataset& val_set, Backend& backend,
                  const Checkpoint* resume = nullptr, const TrainCallbacks& cb = {});

// Inference over a dataset in the given policy's storage dtype; returns the metrics.
SegMetrics evaluate(const UNet& net, Weights& weights, Backend& backend, Policy policy, const Dataset& data, int batch);


}  // namespace mixseg
