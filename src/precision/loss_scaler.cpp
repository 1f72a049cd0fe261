// Dynamic loss scaler update rule (see loss_scaler.h): core/step_control.h's
// scaler_update, the one definition the training step's kernels use too.
#include "precision/loss_scaler.h"

#include "core/step_control.h"

namespace mixseg {

bool LossScaler::update(bool found_nonfinite) {
  return scaler_update(config.enabled, config.growth_interval, config.growth_factor, config.backoff_factor,
                       config.min_scale, config.max_scale, found_nonfinite, scale, clean_steps, skipped_steps);
}

}  // namespace mixseg
