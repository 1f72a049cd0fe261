// Training and evaluation loops (see trainer.h).
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <type_traits>

#include "bench/stats.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/rng.h"
#include "data/loader.h"

namespace mixseg {

double typical_img_per_s(const std::vector<EpochStats>& epochs) {
  if (epochs.empty()) return 0;
  std::vector<double> rates;
  for (size_t i = epochs.size() > 1 ? 1 : 0; i < epochs.size(); ++i) rates.push_back(epochs[i].img_per_s);
  return percentile(std::move(rates), 50);
}

SegMetrics evaluate(const UNet& net, Weights& weights, Backend& backend, Policy policy, const Dataset& data, int batch) {
  MetricsAccumulator acc;
  if (data.size() == 0) return acc.finish();
  if (net.config.in_channels != data.channels)
    fail("the model takes {} input channels but the images have {}", net.config.in_channels, data.channels);
  std::unique_ptr<Workspace> ws;
  std::vector<float> input;
  std::vector<uint8_t> masks;
  const size_t px = data.pixels();
  for (size_t first = 0; first < data.size(); first += size_t(batch)) {
    const int b = int(std::min<size_t>(size_t(batch), data.size() - first));
    if (!ws || ws->batch != b) {
      ws = make_workspace(net, backend, policy, b, data.h, data.w, false);
      upload_weights(net, weights, *ws);
    }
    input.resize(size_t(b) * data.image_values());
    masks.resize(size_t(b) * px);
    data.read(first, size_t(b), input.data(), masks.data());
    set_input(net, *ws, input.data());
    forward(net, *ws);
    const std::vector<float> logits = logits_f32(net, *ws);
    for (int i = 0; i < b; ++i) acc.add_image(logits.data() + size_t(i) * px, masks.data() + size_t(i) * px, px);
  }
  return acc.finish();
}

namespace {

// The settings a step's ops are recorded with: the optimizer's and the
// scaler's (the learning rate is not among them: it goes through the control
// block each step).
UpdateRule step_rule(const Checkpoint& state) {
  UpdateRule r = update_rule(state.optimizer);
  const LossScalerConfig& sc = state.scaler.config;
  r.scaling = sc.enabled;
  r.growth_interval = sc.growth_interval;
  r.growth_factor = sc.growth_factor;
  r.backoff_factor = sc.backoff_factor;
  r.min_scale = sc.min_scale;
  r.max_scale = sc.max_scale;
  return r;
}

// FNV-1a over an object's bytes: the key of a recording's settings (T
// without padding bytes, whose values would be arbitrary).
template <class T>
uint64_t settings_key(const T& x, uint64_t h = 1469598103934665603ull) {
  static_assert(sizeof(T) % sizeof(double) == 0 && std::is_trivially_copyable_v<T>);
  const auto* b = reinterpret_cast<const unsigned char*>(&x);
  for (size_t i = 0; i < sizeof x; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

}  // namespace

void upload_training_state(const UNet& net, const Checkpoint& state, Workspace& ws) {
  if (!ws.training) fail("upload_training_state: the workspace is not for training");
  const size_t n = net.param_numel;
  const OptimizerState& o = state.optimizer_state;
  if (o.m.size() != n || (state.optimizer.kind == OptimizerKind::adam && o.v.size() != n))
    fail("optimizer state holds {} values, the model has {} parameters", o.m.size(), n);
  upload_weights(net, state.weights, ws);
  Backend& be = *ws.backend;
  be.copy_in(ws.moment1.data, o.m.data(), n * sizeof(float));
  const std::vector<float> zeros(o.v.empty() ? n : 0, 0.0f);
  be.copy_in(ws.moment2.data, o.v.empty() ? zeros.data() : o.v.data(), n * sizeof(float));
  StepControl c;
  c.lr = state.optimizer.lr;
  c.scale = c.scale_used = state.scaler.scale;
  c.clean_steps = state.scaler.clean_steps;
  c.skipped_steps = state.scaler.skipped_steps;
  c.optimizer_steps = o.step;
  *ws.control_host = c;
  be.copy_in(ws.control, ws.control_host, sizeof c);
  ws.state_uploaded = true;
}

void download_training_state(const UNet& net, Workspace& ws, Checkpoint& state) {
  if (!ws.state_uploaded) return;  // no step ran on this workspace: state is current
  Backend& be = *ws.backend;
  be.copy_out(state.weights.params.data(), ws.masters.data, net.param_numel * sizeof(float));
  be.copy_out(state.weights.running.data(), ws.bn_running.data, net.running_numel * sizeof(float));
  OptimizerState& o = state.optimizer_state;
  be.copy_out(o.m.data(), ws.moment1.data, o.m.size() * sizeof(float));
  if (!o.v.empty()) be.copy_out(o.v.data(), ws.moment2.data, o.v.size() * sizeof(float));
  be.copy_out(ws.control_host, ws.control, sizeof(StepControl));
  const StepControl& c = *ws.control_host;
  state.scaler.scale = c.scale;
  state.scaler.clean_steps = c.clean_steps;
  state.scaler.skipped_steps = c.skipped_steps;
  o.step = c.optimizer_steps;
}

void set_batch(const UNet& net, Workspace& ws, const float* input, const uint8_t* target) {
  if (!ws.training) fail("set_batch: the workspace is not for training");
  Backend& be = *ws.backend;
  const Tensor& in = ws.act[net.input];
  be.copy_in_async(ws.input_f32.data ? ws.input_f32.data : in.data, input, in.numel() * sizeof(float));
  be.copy_in_async(ws.target.data, target, ws.target.numel());
}

StepStats train_step(const UNet& net, Checkpoint& state, Workspace& ws, const float* input, const uint8_t* target,
                     const LossWeights& loss) {
  set_batch(net, ws, input, target);
  return train_step(net, state, ws, loss);
}

StepStats train_step(const UNet& net, Checkpoint& state, Workspace& ws, const LossWeights& loss) {
  if (!ws.state_uploaded) upload_training_state(net, state, ws);
  Backend& be = *ws.backend;
  // In: the learning rate (the batch's copies, if any, are queued before
  // it). Every copy in is done before the control block is read back below,
  // so the caller's buffers are free again when this returns.
  ws.control_host->lr = state.optimizer.lr;
  be.copy_in_async(&ws.control->lr, &ws.control_host->lr, sizeof(double));
  // The step: no value comes back to the host until it is done.
  const UpdateRule rule = step_rule(state);
  run_recorded(ws, settings_key(loss, settings_key(rule)), [&] {
    convert_input(net, ws);
    forward(net, ws);
    be.loss(ws.act[net.logits], ws.target.as<uint8_t>(), loss, ws.control, &ws.grad[net.logits]);
    backward(net, ws);
    be.optimizer_step(rule, ws.control, ws.masters.as<float>(), ws.param_grads.as<float>(), ws.moment1.as<float>(),
                      ws.moment2.as<float>(), net.param_numel, ws.params_storage);
  });
  be.copy_out(ws.control_host, ws.control, sizeof(StepControl));
  const StepControl& c = *ws.control_host;
  // The NaN watch: non-finite values are the loss scaler's business only
  // while it can still back off; otherwise training has diverged, and the
  // error says where the values first went bad (the step was not applied;
  // checkpoints already written stay as they are).
  const LossScalerConfig& sc = state.scaler.config;
  if (c.nonfinite && (!sc.enabled || c.scale_used <= sc.min_scale)) {
    const std::string where = first_nonfinite(net, ws);
    fail("training diverged: non-finite {} at step {} (loss {}); first in {}. Lower --lr, or train in a policy with "
         "more range (fp32, mixed_bf16)",
         std::isfinite(c.loss_total) ? "gradients" : "loss", c.optimizer_steps, c.loss_total,
         where.empty() ? "the loss" : where);
  }
  state.scaler.scale = c.scale;
  state.scaler.clean_steps = c.clean_steps;
  state.scaler.skipped_steps = c.skipped_steps;
  state.optimizer_state.step = c.optimizer_steps;
  return {0, c.loss_total, c.scale_used, !c.applied};
}

TrainResult train(const TrainConfig& cfg, const Dataset& train_set, const Dataset& val_set, Backend& backend,
                  const Checkpoint* resume, const TrainCallbacks& cb) {
  const PolicyInfo& pi = policy_info(cfg.policy);
  check_trainable(cfg.policy);
  const UNet net = build_unet(cfg.model);
  check_input_size(cfg.model, train_set.h, train_set.w);
  if (cfg.model.in_channels != train_set.channels)
    fail("the model takes {} input channels but the images have {} (--channels)", cfg.model.in_channels,
         train_set.channels);
  if (cfg.batch < 1) fail("batch size must be >= 1, got {}", cfg.batch);
  const size_t steps_per_epoch = train_set.size() / size_t(cfg.batch);
  if (steps_per_epoch == 0) fail("{} training images are fewer than one batch of {}", train_set.size(), cfg.batch);

  Checkpoint state;
  if (resume) {
    state = *resume;
    if (state.config.filters != cfg.model.filters || state.config.depth != cfg.model.depth)
      fail("cannot resume: checkpoint has filters={} depth={}, the run asks for filters={} depth={}",
           state.config.filters, state.config.depth, cfg.model.filters, cfg.model.depth);
    if (state.config.upsampling != cfg.model.upsampling)
      fail("cannot resume: checkpoint has --upsampling {}, the run asks for {}",
           upsampling_name(state.config.upsampling), upsampling_name(cfg.model.upsampling));
    if (state.policy != cfg.policy)
      fail("cannot resume: checkpoint was trained with {}, the run asks for {}", policy_info(state.policy).name, pi.name);
    if (state.height != train_set.h || state.width != train_set.w)
      fail("cannot resume: checkpoint was trained at {}x{}, the data is {}x{}", state.height, state.width,
           train_set.h, train_set.w);
    if (state.optimizer_state.m.empty()) fail("cannot resume: the checkpoint holds no optimizer state");
    if (state.step_in_epoch > 0 && state.batch != cfg.batch)
      fail("cannot resume mid-epoch: the checkpoint stopped after step {} of epoch {} with batch {}, the run asks for "
           "batch {}",
           state.step_in_epoch, state.epoch + 1, state.batch, cfg.batch);
    state.optimizer = cfg.optimizer;
    state.scaler.config = cfg.scaler;
    state.scaler.config.enabled = pi.loss_scaling;
  } else {
    state.config = cfg.model;
    state.policy = cfg.policy;
    state.height = train_set.h;
    state.width = train_set.w;
    state.weights = init_weights(net, cfg.seed);
    state.optimizer = cfg.optimizer;
    state.optimizer_state = make_optimizer_state(cfg.optimizer, net.param_numel);
    LossScalerConfig sc = cfg.scaler;
    sc.enabled = pi.loss_scaling;
    state.scaler = LossScaler::make(sc);
    state.seed = cfg.seed;
  }
  state.batch = cfg.batch;

  std::ofstream log;
  if (!cfg.out_dir.empty()) {
    ensure_writable_dir(cfg.out_dir);
    const auto log_path = std::filesystem::path(cfg.out_dir) / "train_log.csv";
    const bool fresh = !resume || !std::filesystem::exists(log_path);
    log.open(log_path, fresh ? std::ios::trunc : std::ios::app);
    if (!log) fail("{}: cannot open the training log for writing", log_path.string());
    if (fresh) log << "epoch,train_loss,val_dice,val_dice_pooled,val_iou,img_per_s,skipped_steps,loss_scale,lr\n";
  }

  auto ws = make_workspace(net, backend, cfg.policy, cfg.batch, train_set.h, train_set.w, true);
  upload_training_state(net, state, *ws);
  TrainResult result;
  result.activation_bytes = ws->activations.capacity();
  result.weight_bytes = ws->weights.capacity();

  HostAllocator host{[&backend](size_t n) { return backend.allocate_host(n); },
                     [&backend](void* p) { backend.deallocate_host(p); }};
  BatchLoader loader(train_set, cfg.augment, cfg.seed, cfg.batch, cfg.loader_threads, 4, host);
  const int64_t total_steps = int64_t(cfg.epochs) * int64_t(steps_per_epoch);
  auto save = [&](const char* name) {
    if (!cfg.out_dir.empty()) save_checkpoint((std::filesystem::path(cfg.out_dir) / name).string(), net, state);
  };
  for (int epoch = state.epoch; epoch < cfg.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const size_t first_step = size_t(state.step_in_epoch);  // non-zero when resuming an interrupted epoch
    loader.start_epoch(epoch, first_step, steps_per_epoch);
    double loss_sum = 0;
    const int64_t skipped_before = state.scaler.skipped_steps;
    for (size_t s = first_step; s < steps_per_epoch; ++s) {
      BatchLoader::Batch batch{};
      try {
        batch = loader.next();
      } catch (const std::exception& e) {
        // A batch that cannot be read (a streamed file broken since the run
        // began): the steps of this epoch so far are kept, resumable like an
        // interruption's, before the error ends the run.
        if (cfg.out_dir.empty() || s == first_step) throw;
        download_training_state(net, *ws, state);
        save("last.safetensors");
        fail("{}\n(the run up to step {} of epoch {} is in {}: --resume it once the data is mended)", e.what(), s,
             epoch + 1, (std::filesystem::path(cfg.out_dir) / "last.safetensors").string());
      }
      const int64_t global_step = int64_t(epoch) * int64_t(steps_per_epoch) + int64_t(s);
      state.optimizer.lr = scheduled_lr(cfg.schedule, cfg.optimizer.lr, global_step, total_steps);
      StepStats st = train_step(net, state, *ws, batch.input, batch.target, cfg.loss);
      st.step = global_step;
      st.lr = state.optimizer.lr;
      st.steps_per_epoch = int64_t(steps_per_epoch);
      state.step_in_epoch = int(s + 1);
      loss_sum += st.loss;
      if (cb.on_step) cb.on_step(st);
      if (cfg.stop && cfg.stop->load() && s + 1 < steps_per_epoch) {
        download_training_state(net, *ws, state);
        save("last.safetensors");
        result.interrupted = true;
        result.last = std::move(state);
        return result;
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t steps_run = steps_per_epoch - first_step;

    EpochStats es;
    es.epoch = epoch + 1;
    es.train_loss = loss_sum / double(std::max<size_t>(steps_run, 1));
    es.seconds = secs;
    es.img_per_s = double(steps_run * size_t(cfg.batch)) / secs;
    es.skipped_steps = state.scaler.skipped_steps - skipped_before;
    download_training_state(net, *ws, state);
    es.loss_scale = state.scaler.scale;
    es.val = evaluate(net, state.weights, backend, cfg.policy, val_set, cfg.batch);
    state.epoch = epoch + 1;
    state.step_in_epoch = 0;
    result.epochs.push_back(es);

    const bool improved = val_set.size() > 0 && es.val.dice_mean > state.best_dice;
    if (improved) {
      state.best_dice = es.val.dice_mean;
      state.epochs_since_best = 0;
    } else {
      ++state.epochs_since_best;
    }
    save("last.safetensors");
    if (improved) save("best.safetensors");
    if (log.is_open()) {
      log << es.epoch << ',' << es.train_loss << ',' << es.val.dice_mean << ',' << es.val.dice_pooled << ','
          << es.val.iou_mean << ',' << es.img_per_s << ',' << es.skipped_steps << ',' << es.loss_scale << ','
          << state.optimizer.lr << '\n';
      log.flush();
    }
    if (cb.on_epoch) cb.on_epoch(es);
    if (cfg.patience > 0 && val_set.size() > 0 && state.epochs_since_best >= cfg.patience) {
      result.stopped_early = true;
      break;
    }
    if (cfg.stop && cfg.stop->load()) {
      result.interrupted = true;
      break;
    }
  }
  result.last = std::move(state);
  return result;
}

}  // namespace mixseg
