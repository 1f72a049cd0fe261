// One benchmark configuration (see measure.h).
#include "bench/measure.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "model/deploy.h"
#include "model/network.h"
#include "quant/calibrate.h"
#include "quant/engine.h"
#include "train/trainer.h"

namespace mixseg {

namespace {

// Runs cfg's warm-up steps, then times steps until both minimums are met;
// with an energy counter, reads it around the measured steps (the window is
// then at least kMinEnergySeconds: the counters update coarsely).
template <class Step>
void time_steps(const BenchConfig& cfg, Step step, BenchMeasurement& m) {
  m.warmup_steps = cfg.warmup_steps;
  for (int i = 0; i < cfg.warmup_steps; ++i) step();
  const double min_seconds = cfg.energy ? std::max(cfg.min_seconds, kMinEnergySeconds) : cfg.min_seconds;
  const double j0 = cfg.energy ? cfg.energy->joules() : 0.0;
  const auto w0 = std::chrono::steady_clock::now();
  double total = 0;
  while (int(m.step_seconds.size()) < cfg.min_steps || total < min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.step_seconds.push_back(dt);
    total += dt;
  }
  if (cfg.energy) {
    EnergyFigure& e = m.energy;
    e.source = cfg.energy->source();
    e.gross_joules = cfg.energy->joules() - j0;
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    e.net_joules = e.gross_joules - cfg.idle_watts * e.seconds;
  }
}

}  // namespace

BenchMeasurement measure(const BenchConfig& cfg, Backend& backend) {
  if (cfg.warmup_steps < 0 || cfg.min_steps < 1) fail("benchmark needs warm-up >= 0 and at least one measured step");
  const UNet net = build_unet(cfg.model);
  if (cfg.train) check_trainable(cfg.policy);
  auto ws = make_workspace(net, backend, cfg.policy, cfg.batch, cfg.height, cfg.width, cfg.train);

  // Synthetic frames with their masks, one batch, reused every step.
  const Dataset frames = make_synthetic({cfg.height, cfg.width, cfg.seed, 0.05}, size_t(cfg.batch));
  if (cfg.model.in_channels != frames.channels) fail("benchmark frames are gray: in_channels must be 1");
  std::vector<float> input(frames.size() * frames.image_values());
  std::vector<uint8_t> target(frames.size() * frames.pixels());
  frames.read(0, frames.size(), input.data(), target.data());

  Checkpoint state;
  state.config = cfg.model;
  state.policy = cfg.policy;
  state.weights = init_weights(net, cfg.seed);
  state.optimizer_state = make_optimizer_state(state.optimizer, net.param_numel);
  LossScalerConfig sc;
  sc.enabled = policy_info(cfg.policy).loss_scaling;
  state.scaler = LossScaler::make(sc);
  upload_weights(net, state.weights, *ws);
  // One batch in the workspace, reused every step (the peers keep theirs on
  // the device too); the step converts it to the storage dtype each time.
  if (cfg.train)
    set_batch(net, *ws, input.data(), target.data());
  else
    set_input(net, *ws, input.data());

  auto step = [&] {
    if (cfg.train)
      train_step(net, state, *ws, LossWeights{});
    else
      forward(net, *ws);
    backend.synchronize();
  };

  BenchMeasurement m;
  m.arena_bytes = ws->activations.capacity() + ws->weights.capacity();
  m.flops_per_image = 2.0 * net.conv_macs_per_image(cfg.height, cfg.width) * (cfg.train ? 3.0 : 1.0);
  time_steps(cfg, step, m);
  if (cfg.conv_ceiling) {
    BenchConfig c = cfg;
    c.energy = nullptr;
    c.min_seconds = cfg.min_seconds / 2;
    BenchMeasurement convs;
    time_steps(
        c,
        [&] {
          convolutions_only(net, *ws);
          backend.synchronize();
        },
        convs);
    m.conv_seconds = std::move(convs.step_seconds);
  }
  return m;
}

BenchMeasurement measure_int8(const BenchConfig& cfg, Backend& calibration_backend, bool fast) {
  if (cfg.warmup_steps < 0 || cfg.min_steps < 1) fail("benchmark needs warm-up >= 0 and at least one measured step");
  const UNet net = build_unet(cfg.model);
  Weights weights = init_weights(net, cfg.seed);
  const Calibration cal = calibrate(net, weights, calibration_backend,
                                    make_synthetic({cfg.height, cfg.width, cfg.seed + 1, 0.05}, 2), {});
  const QModel q = quantize_unet(fold_unet(net, weights), cal.ranges, cfg.height, cfg.width, cal.description);
  const Dataset frames = make_synthetic({cfg.height, cfg.width, cfg.seed, 0.05}, size_t(cfg.batch));
  std::vector<float> input(frames.size() * frames.image_values());
  frames.input_f32(0, frames.size(), input.data());
  const std::vector<int8_t> x = quantize_input(q, input.data(), input.size());
  BenchMeasurement m;
  for (const QTensor& t : q.tensors)
    m.arena_bytes += size_t(cfg.batch) * size_t(cfg.height >> t.level) * size_t(cfg.width >> t.level) * size_t(t.channels);
  for (const QConv& c : q.convs) m.arena_bytes += c.weights.size() + 4 * c.bias.size();
  m.flops_per_image = 2.0 * net.conv_macs_per_image(cfg.height, cfg.width);
  time_steps(cfg, [&] { run_int8(q, x.data(), cfg.batch, fast); }, m);
  return m;
}

double idle_watts(EnergyCounter& counter, double seconds) {
  const double j0 = counter.joules();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return (counter.joules() - j0) / dt;
}

BenchMeasurement measure_loader(const BenchConfig& cfg) {
  // A given set (from files, perhaps streamed) is read as the trainer reads
  // it, epoch after epoch; else 16 batches of synthetic frames in memory.
  if (cfg.data && cfg.data->size() < size_t(cfg.batch))
    fail("the data set has {} images, fewer than a batch of {}", cfg.data->size(), cfg.batch);
  const int steps_per_epoch = cfg.data ? int(cfg.data->size() / size_t(cfg.batch)) : 16;
  const Dataset synthetic =
      cfg.data ? Dataset{}
               : make_synthetic({cfg.height, cfg.width, cfg.seed, 0.05}, size_t(steps_per_epoch * cfg.batch));
  const Dataset& frames = cfg.data ? *cfg.data : synthetic;
  BatchLoader loader(frames, AugmentConfig{}, cfg.seed, cfg.batch, cfg.loader_threads);
  BenchMeasurement m;
  int epoch = 0, step = 0;
  auto next = [&] {
    if (step == 0) loader.start_epoch(epoch, 0, size_t(steps_per_epoch));
    loader.next();
    if (++step == steps_per_epoch) step = 0, ++epoch;
  };
  time_steps(cfg, next, m);
  return m;
}

}  // namespace mixseg
