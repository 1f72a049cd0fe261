// Learning-rate schedules with linear warm-up. The rate of a step depends
// only on the global step index, so a resumed run follows the same curve.
#pragma once
#include <cstdint>
#include <string>

namespace mixseg {

enum class LrSchedule { constant, cosine, step };
LrSchedule parse_schedule(const std::string& name);  // the error lists the names
const char* schedule_name(LrSchedule s);

struct ScheduleConfig {
  LrSchedule kind = LrSchedule::constant;
  int64_t warmup_steps = 0;      // linear from lr / warmup_steps up to lr
  double min_lr_fraction = 0.0;  // cosine: decays to lr * this at the last step
  int64_t step_every = 0;        // step: multiply by gamma every this many steps (0: never)
  double gamma = 0.1;
};

// The learning rate of step `step` (0-based) of `total_steps`, from the base rate lr.
double scheduled_lr(const ScheduleConfig& c, double lr, int64_t step, int64_t total_steps);

}  // namespace mixseg
