// Learning-rate schedules (see schedule.h).
#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mixseg {

LrSchedule parse_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::constant;
  if (name == "cosine") return LrSchedule::cosine;
  if (name == "step") return LrSchedule::step;
  fail("unknown learning-rate schedule '{}' (constant, cosine, step)", name);
}

const char* schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::constant: return "constant";
    case LrSchedule::cosine: return "cosine";
    case LrSchedule::step: return "step";
  }
  return "?";
}

double scheduled_lr(const ScheduleConfig& c, double lr, int64_t step, int64_t total_steps) {
  if (c.warmup_steps > 0 && step < c.warmup_steps) return lr * double(step + 1) / double(c.warmup_steps);
  switch (c.kind) {
    case LrSchedule::constant: return lr;
    case LrSchedule::cosine: {
      const int64_t span = std::max<int64_t>(1, total_steps - c.warmup_steps - 1);
      const double t = std::clamp(double(step - c.warmup_steps) / double(span), 0.0, 1.0);
      const double lo = lr * c.min_lr_fraction;
      return lo + (lr - lo) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
    }
    case LrSchedule::step:
      return c.step_every > 0 ? lr * std::pow(c.gamma, double((step - c.warmup_steps) / c.step_every)) : lr;
  }
  return lr;
}

}  // namespace mixseg
