// Measures one benchmark configuration of mixseg itself: training steps
// (the trainer's own step: forward, loss, backward, optimizer) or inference
// forward passes, on synthetic frames, in steady state: warm-up steps are run
// and dropped, then steps repeat until both a minimum count and a minimum
// time are reached; every step is timed after synchronising the backend.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bench/energy.h"
#include "core/backend.h"
#include "model/unet.h"
#include "precision/policy.h"

namespace mixseg {

struct Dataset;  // data/dataset.h

struct BenchConfig {
  UNetConfig model;
  Policy policy = Policy::fp32;
  bool train = false;  // else inference
  int loader_threads = 1;  // measure_loader: background threads
  const Dataset* data = nullptr;  // measure_loader: this set (at its size) instead of synthetic frames
  int batch = 1, height = 512, width = 256;
  int warmup_steps = 3;
  int min_steps = 5;
  double min_seconds = 2.0;
  uint64_t seed = 0;
  bool conv_ceiling = false;        // also time the pass's convolutions alone (measure() only)
  EnergyCounter* energy = nullptr;  // read around the measured steps when set
  double idle_watts = 0;            // the idle baseline, subtracted for the net figure
};

// Energy windows are at least this long (NVML updates every 20-100 ms, RAPL every ~1 ms but noisily).
inline constexpr double kMinEnergySeconds = 2.0;

struct BenchMeasurement {
  std::vector<double> step_seconds;  // the measured steps, warm-up excluded
  int warmup_steps = 0;
  size_t arena_bytes = 0;            // mixseg's planned memory: activations (+ gradients) and weights
  double flops_per_image = 0;        // forward convolutions, x3 for a training step (fwd, bwd data, bwd weights)
  EnergyFigure energy;               // over the measured steps ("unavailable" without a counter)
  // With conv_ceiling: the same pass's convolutions alone (convolutions_only),
  // timed like the steps right after them (warm-up dropped, no energy, half
  // the minimum time), so flops_per_image over their median is the ceiling
  // the convolution library sets on these shapes.
  std::vector<double> conv_seconds;
};

// Average power of `counter` over `seconds` of doing nothing (sleeping), in watts.
double idle_watts(EnergyCounter& counter, double seconds);

BenchMeasurement measure(const BenchConfig& cfg, Backend& backend);
// The loader alone: batches of augmented synthetic frames per second.
BenchMeasurement measure_loader(const BenchConfig& cfg);
// Int8 inference (cfg.policy and cfg.train ignored): the network with its
// initial weights, calibrated on a few synthetic frames (the speed does not
// depend on the values), run by the int8 engine with the fast or reference
// convolution; arena_bytes counts the int8 activations and weights.
BenchMeasurement measure_int8(const BenchConfig& cfg, Backend& calibration_backend, bool fast = true);

}  // namespace mixseg
