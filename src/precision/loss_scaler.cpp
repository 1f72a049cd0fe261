// Dynamic loss scaler update rule (see loss_scaler.h).
#include "precision/loss_scaler.h"

#include <algorithm>

namespace mixseg {

bool LossScaler::update(bool found_nonfinite) {
  if (found_nonfinite) {
    ++skipped_steps;
    clean_steps = 0;
    if (config.enabled) scale = std::max(config.min_scale, scale * config.backoff_factor);
    return false;
  }
  if (config.enabled && ++clean_steps >= config.growth_interval) {
    scale = std::min(config.max_scale, scale * config.growth_factor);
    clean_steps = 0;
  }
  return true;
}

}  // namespace mixseg
