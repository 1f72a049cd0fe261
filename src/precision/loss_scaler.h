// Dynamic loss scaling for mixed_fp16. The loss gradient is multiplied by
// `scale` before the backward pass so small gradients stay representable in
// f16; weight gradients are divided by it again (unscale) before the optimizer
// and before any clipping. A step whose gradients hold inf/NaN is skipped and
// the scale backs off; after `growth_interval` clean steps in a row it grows.
// Disabled (mixed_bf16, fp32): scale stays 1 and steps are only skipped on
// non-finite gradients.
#pragma once
#include <cstdint>

namespace mixseg {

struct LossScalerConfig {
  bool enabled = true;
  double initial_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int growth_interval = 2000;
  double min_scale = 1.0;               // never scale below the unscaled loss
  double max_scale = 16777216.0;        // 2^24
};

struct LossScaler {
  LossScalerConfig config;
  double scale = 1.0;
  int64_t clean_steps = 0;    // consecutive finite steps since the last change
  int64_t skipped_steps = 0;  // total steps skipped for non-finite gradients

  static LossScaler make(const LossScalerConfig& c) {
    LossScaler s;
    s.config = c;
    s.scale = c.enabled ? c.initial_scale : 1.0;
    return s;
  }
  // Records one step's outcome; returns true if the optimizer step may be applied.
  bool update(bool found_nonfinite);
};

}  // namespace mixseg
