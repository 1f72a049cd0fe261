// The training step's control block and the scalar rules that run on it:
// the loss scaler's decision, the optimizer's per-step factors and its
// per-element update, the loss from its four sums. The block lives in the
// backend's memory, so a whole step (loss, backward, finite check, scaler,
// optimizer) runs without a round trip to the host and can be replayed as
// one CUDA graph; the host reads it back once per step for the log.
//
// Plain C++17 with no project includes: the CPU backends (C++20) and the CUDA
// kernels (nvcc, C++17) compile the same functions, so the decisions and the
// update are one definition, not two that could drift.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MIXSEG_HOST_DEVICE __host__ __device__
#else
#define MIXSEG_HOST_DEVICE
#endif

namespace mixseg {

// The fixed settings of a run's updates (host values, passed by value).
// The optimizer's settings are doubles (as configured); the per-element
// update rounds them to f32 once, Adam's bias corrections use them as given.
// No padding bytes (doubles first, int32s filling the last 16 bytes): the
// training step keys its recording on the struct's bytes.
struct UpdateRule {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double momentum = 0.9;
  double weight_decay = 0.0;  // L2 added to the gradient
  // The dynamic loss scaler (precision/loss_scaler.h): disabled means the
  // scale stays 1 and non-finite steps are only skipped.
  double growth_factor = 2.0, backoff_factor = 0.5, min_scale = 1.0, max_scale = 16777216.0;
  int32_t adam = 1;  // else SGD with momentum
  int32_t scaling = 0;
  int32_t growth_interval = 2000;
  int32_t unused = 0;
};
static_assert(sizeof(UpdateRule) == 9 * sizeof(double) + 4 * sizeof(int32_t), "UpdateRule has padding");

struct StepControl {
  // Written by the host before each step.
  double lr = 0;
  // State carried from step to step (uploaded once, read back with the log).
  double scale = 1;             // the loss scale of the next step
  int64_t clean_steps = 0;      // consecutive finite steps since the scale last changed
  int64_t skipped_steps = 0;    // all steps skipped for non-finite values
  int64_t optimizer_steps = 0;  // updates applied (Adam's bias correction counts these)
  // The last step's results.
  double loss_total = 0, loss_bce = 0, loss_dice = 0;
  double scale_used = 1;  // the scale the last step's gradients carry
  int32_t nonfinite = 0;  // its weight gradients or loss held inf/NaN
  int32_t applied = 0;    // its update was applied
  // Scratch of the step's kernels.
  int32_t found_nonfinite = 0;      // set by the finite check (zeroed before it)
  int32_t pad = 0;
  double loss_sums[4] = {0, 0, 0, 0};  // sum of BCE terms, sum p, sum t, sum p t
  double loss_den = 0, loss_num = 0;   // soft Dice's denominator and numerator
  float step_size = 0, inv_sqrt_bc2 = 0, grad_scale = 1;  // this update's factors
  float pad2 = 0;
};

MIXSEG_HOST_DEVICE inline bool finite_value(double x) {
#if defined(__CUDA_ARCH__)
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

// The loss scaler's rule for one step (precision/loss_scaler.h); returns
// whether the step's update may be applied.
MIXSEG_HOST_DEVICE inline bool scaler_update(bool scaling, int64_t growth_interval, double growth_factor,
                                             double backoff_factor, double min_scale, double max_scale,
                                             bool found_nonfinite, double& scale, int64_t& clean_steps,
                                             int64_t& skipped_steps) {
  if (found_nonfinite) {
    ++skipped_steps;
    clean_steps = 0;
    if (scaling) scale = fmax(min_scale, scale * backoff_factor);
    return false;
  }
  if (scaling && ++clean_steps >= growth_interval) {
    scale = fmin(max_scale, scale * growth_factor);
    clean_steps = 0;
  }
  return true;
}

// Adam's step factors for update number `step` (1-based), in double, rounded once.
MIXSEG_HOST_DEVICE inline void adam_factors(double lr, double beta1, double beta2, int64_t step, float& step_size,
                                            float& inv_sqrt_bc2) {
  const double bc1 = 1.0 - pow(beta1, double(step)), bc2 = 1.0 - pow(beta2, double(step));
  step_size = float(lr / bc1);
  inv_sqrt_bc2 = float(1.0 / sqrt(bc2));
}

// The step's decision, after the loss and the finite check: skip or apply,
// the scaler's new state, and the update's factors.
MIXSEG_HOST_DEVICE inline void step_decide(const UpdateRule& r, StepControl& c) {
  c.nonfinite = c.found_nonfinite || !finite_value(c.loss_total);
  c.scale_used = c.scale;
  c.grad_scale = float(1.0 / c.scale);
  c.applied = scaler_update(r.scaling, r.growth_interval, r.growth_factor, r.backoff_factor, r.min_scale, r.max_scale,
                            c.nonfinite, c.scale, c.clean_steps, c.skipped_steps);
  if (!c.applied) return;
  ++c.optimizer_steps;
  if (r.adam)
    adam_factors(c.lr, r.beta1, r.beta2, c.optimizer_steps, c.step_size, c.inv_sqrt_bc2);
  else
    c.step_size = float(c.lr);
}

// One parameter's update: g is the gradient as computed (still carrying the
// loss scale), m and v the moments (v unused by SGD). f32 throughout.
MIXSEG_HOST_DEVICE inline void update_element(const UpdateRule& r, float step_size, float inv_sqrt_bc2,
                                              float grad_scale, float& p, float g, float& m, float& v) {
  g = g * grad_scale + float(r.weight_decay) * p;
  if (!r.adam) {
    m = float(r.momentum) * m + g;
    p -= step_size * m;
    return;
  }
  const float b1 = float(r.beta1), b2 = float(r.beta2);
  m = b1 * m + (1 - b1) * g;
  v = b2 * v + (1 - b2) * g * g;
  p -= step_size * m / (sqrtf(v) * inv_sqrt_bc2 + float(r.eps));
}

// The loss from its four sums over n elements (ops/loss_ref.h): BCE's mean,
// soft Dice with smoothing s, and their weighted total; keeps the Dice terms
// the gradient needs.
MIXSEG_HOST_DEVICE inline void loss_finish(StepControl& c, double n, double w_bce, double w_dice, double smooth) {
  c.loss_den = c.loss_sums[1] + c.loss_sums[2] + smooth;
  c.loss_num = 2 * c.loss_sums[3] + smooth;
  c.loss_bce = c.loss_sums[0] / n;
  c.loss_dice = 1.0 - c.loss_num / c.loss_den;
  c.loss_total = w_bce * c.loss_bce + w_dice * c.loss_dice;
}

}  // namespace mixseg
