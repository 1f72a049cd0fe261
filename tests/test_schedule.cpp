// Learning-rate schedules: linear warm-up, cosine from lr down to its floor,
// step decay; unknown names are refused with the list.
#include <gtest/gtest.h>

#include "test_util.h"
#include "train/schedule.h"

using namespace mixseg;

TEST(Schedule, WarmupThenConstant) {
  ScheduleConfig c;
  c.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1.0, 0, 100), 0.25);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1.0, 3, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1.0, 50, 100), 1.0);
}

TEST(Schedule, CosineFromLrToItsFloor) {
  ScheduleConfig c;
  c.kind = LrSchedule::cosine;
  c.warmup_steps = 10;
  c.min_lr_fraction = 0.1;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 2.0, 10, 111), 2.0);  // first step after warm-up
  EXPECT_NEAR(scheduled_lr(c, 2.0, 60, 111), 0.2 + 1.8 * 0.5, 1e-12);  // half way
  EXPECT_NEAR(scheduled_lr(c, 2.0, 110, 111), 0.2, 1e-12);  // last step
  for (int64_t s = 11; s < 111; ++s) ASSERT_LE(scheduled_lr(c, 2.0, s, 111), scheduled_lr(c, 2.0, s - 1, 111));
}

TEST(Schedule, StepDecay) {
  ScheduleConfig c;
  c.kind = LrSchedule::step;
  c.step_every = 5;
  c.gamma = 0.5;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1.0, 4, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1.0, 5, 100), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1.0, 12, 100), 0.25);
  EXPECT_EQ(parse_schedule("cosine"), LrSchedule::cosine);
  test::expect_error_containing([] { parse_schedule("linear"); }, "constant, cosine, step");
}
