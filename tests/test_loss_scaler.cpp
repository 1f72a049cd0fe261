// The dynamic loss scaler: overflow skips the step and halves the scale,
// growth after the interval of clean steps, clamps at min and max, disabled
// scaling for bf16; and in a real training run, an f16 overflow provoked by
// a huge scale is skipped without touching the weights.
#include <gtest/gtest.h>

#include "core/backend.h"
#include "data/synthetic.h"
#include "precision/loss_scaler.h"
#include "train/trainer.h"

using namespace mixseg;

TEST(LossScaler, DefaultsFollowTheDesign) {
  const LossScaler s = LossScaler::make({});
  EXPECT_EQ(s.scale, 65536.0);
  EXPECT_EQ(s.config.growth_interval, 2000);
  EXPECT_EQ(s.config.growth_factor, 2.0);
  EXPECT_EQ(s.config.backoff_factor, 0.5);
}

TEST(LossScaler, OverflowSkipsAndHalves) {
  LossScaler s = LossScaler::make({});
  EXPECT_TRUE(s.update(false));
  EXPECT_EQ(s.clean_steps, 1);
  EXPECT_FALSE(s.update(true));  // inf/NaN found: skip
  EXPECT_EQ(s.scale, 32768.0);
  EXPECT_EQ(s.clean_steps, 0);
  EXPECT_EQ(s.skipped_steps, 1);
  EXPECT_FALSE(s.update(true));
  EXPECT_EQ(s.scale, 16384.0);
  EXPECT_EQ(s.skipped_steps, 2);
}

TEST(LossScaler, GrowsAfterTheIntervalOfCleanSteps) {
  LossScalerConfig c;
  c.growth_interval = 5;
  LossScaler s = LossScaler::make(c);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(s.update(false));
  EXPECT_EQ(s.scale, 65536.0);
  EXPECT_TRUE(s.update(false));
  EXPECT_EQ(s.scale, 131072.0);
  EXPECT_EQ(s.clean_steps, 0);
  // An overflow resets the count: four clean steps after it do not grow.
  s.update(true);
  for (int i = 0; i < 4; ++i) s.update(false);
  EXPECT_EQ(s.scale, 65536.0);
}

TEST(LossScaler, ClampsAtMinAndMax) {
  LossScalerConfig c;
  c.growth_interval = 1;
  c.initial_scale = 4.0;
  c.min_scale = 1.0;
  c.max_scale = 16.0;
  LossScaler s = LossScaler::make(c);
  for (int i = 0; i < 10; ++i) s.update(false);
  EXPECT_EQ(s.scale, 16.0);
  for (int i = 0; i < 10; ++i) s.update(true);
  EXPECT_EQ(s.scale, 1.0);
}

TEST(LossScaler, DisabledKeepsScaleOneButStillSkipsNonFinite) {
  LossScalerConfig c;
  c.enabled = false;
  LossScaler s = LossScaler::make(c);
  EXPECT_EQ(s.scale, 1.0);
  EXPECT_FALSE(s.update(true));
  EXPECT_EQ(s.scale, 1.0);
  for (int i = 0; i < 3000; ++i) s.update(false);
  EXPECT_EQ(s.scale, 1.0);
}

// A scale of 2^30 makes the f16 gradients overflow to inf: the first steps
// must be skipped with the scale halving each time, the weights untouched
// while they are skipped, and training must go on once the scale fits.
TEST(LossScaler, TrainingSkipsOverflowingStepsInMixedFp16) {
  const Dataset d = make_synthetic({32, 32, 1, 0.0}, 16);
  TrainConfig cfg;
  cfg.model = {4, 2, 1, 1};
  cfg.policy = Policy::mixed_fp16;
  cfg.batch = 4;
  cfg.epochs = 3;
  cfg.scaler.initial_scale = std::ldexp(1.0, 30);
  cfg.scaler.max_scale = std::ldexp(1.0, 30);
  std::vector<StepStats> steps;
  TrainCallbacks cb;
  cb.on_step = [&](const StepStats& s) { steps.push_back(s); };
  auto backend = make_ref_backend();
  const TrainResult r = train(cfg, d, Dataset{}, *backend, nullptr, cb);
  ASSERT_EQ(steps.size(), 12u);
  EXPECT_TRUE(steps[0].skipped);
  EXPECT_EQ(steps[0].scale, std::ldexp(1.0, 30));
  int64_t skipped = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    skipped += steps[i].skipped;
    if (i > 0) {
      EXPECT_EQ(steps[i].scale, steps[i - 1].skipped ? steps[i - 1].scale / 2 : steps[i - 1].scale);
    }
  }
  EXPECT_GT(skipped, 0);
  EXPECT_LT(skipped, 12) << "the scale never came down far enough to train";
  EXPECT_FALSE(steps.back().skipped);
  EXPECT_EQ(r.last.scaler.skipped_steps, skipped);
  EXPECT_EQ(r.last.optimizer_state.step, 12 - skipped);  // only applied steps count for Adam

  // Only skipped steps: the weights equal their initialisation.
  TrainConfig one = cfg;
  one.epochs = 1;
  one.scaler.growth_interval = 1000000;
  const Dataset four(subset(d, {0, 1, 2, 3}));
  const TrainResult r1 = train(one, four, Dataset{}, *backend);
  ASSERT_EQ(r1.last.scaler.skipped_steps, 1);
  EXPECT_EQ(r1.last.weights.params, init_weights(build_unet(cfg.model), cfg.seed).params);
}
