// Optimizers (Adam's first steps and bias correction, SGD with momentum,
// the unscale folded into the step, the finite check) and the metrics
// (Dice, IoU, pixel accuracy per image and pooled, empty-mask convention).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "train/metrics.h"
#include "train/optimizer.h"

using namespace mixseg;

TEST(Optimizer, AdamFirstStepMovesEachWeightByLr) {
  OptimizerConfig c;
  c.lr = 0.01;
  OptimizerState s = make_optimizer_state(c, 3);
  std::vector<float> w = {1.0f, -2.0f, 0.5f};
  const std::vector<float> g = {0.3f, -4.0f, 1e-3f};
  optimizer_step(c, s, w.data(), g.data(), 3);
  // With bias correction the first update is lr * g / (|g| + eps): lr times the sign.
  EXPECT_NEAR(w[0], 1.0 - 0.01, 1e-6);
  EXPECT_NEAR(w[1], -2.0 + 0.01, 1e-6);
  EXPECT_NEAR(w[2], 0.5 - 0.01 * 1e-3 / (1e-3 + 1e-8), 1e-6);
  EXPECT_EQ(s.step, 1);
  EXPECT_NEAR(s.m[1], 0.1 * -4.0, 1e-6);
  EXPECT_NEAR(s.v[1], 0.001 * 16.0, 1e-6);
}

TEST(Optimizer, GradScaleUnscalesInsideTheStep) {
  OptimizerConfig c;
  OptimizerState a = make_optimizer_state(c, 2), b = make_optimizer_state(c, 2);
  std::vector<float> wa = {1, 2}, wb = {1, 2};
  const std::vector<float> g = {0.25f, -0.5f}, g_scaled = {0.25f * 1024, -0.5f * 1024};
  for (int i = 0; i < 3; ++i) {
    optimizer_step(c, a, wa.data(), g.data(), 2);
    optimizer_step(c, b, wb.data(), g_scaled.data(), 2, 1.0 / 1024);
  }
  EXPECT_EQ(wa, wb);  // scaling by a power of two is exact
}

TEST(Optimizer, SgdMomentum) {
  OptimizerConfig c;
  c.kind = OptimizerKind::sgd;
  c.lr = 0.1;
  c.momentum = 0.9;
  OptimizerState s = make_optimizer_state(c, 1);
  EXPECT_TRUE(s.v.empty());
  std::vector<float> w = {1.0f};
  const std::vector<float> g = {1.0f};
  optimizer_step(c, s, w.data(), g.data(), 1);  // v = 1, w = 0.9
  optimizer_step(c, s, w.data(), g.data(), 1);  // v = 1.9, w = 0.71
  EXPECT_NEAR(w[0], 0.71, 1e-6);
  EXPECT_EQ(parse_optimizer("sgd"), OptimizerKind::sgd);
  EXPECT_THROW(parse_optimizer("rmsprop"), Error);
}

TEST(Optimizer, FiniteCheck) {
  // The largest finite values count as finite; inf, -inf and NaN do not,
  // in the vector body and in the tail (1003 values).
  std::vector<float> g(1003, 1.0f);
  g[3] = std::numeric_limits<float>::max();
  g[4] = -std::numeric_limits<float>::max();
  g[5] = std::numeric_limits<float>::denorm_min();
  EXPECT_TRUE(all_finite(g.data(), g.size()));
  for (size_t at : {size_t(777), size_t(1002)})
    for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN()}) {
      const float keep = g[at];
      g[at] = bad;
      EXPECT_FALSE(all_finite(g.data(), g.size())) << bad << " at " << at;
      g[at] = keep;
    }
  EXPECT_TRUE(all_finite(g.data(), g.size()));
}

TEST(Metrics, DiceIouAccuracyOnKnownMasks) {
  // prediction: logit > 0.  tp = 2, fp = 1, fn = 1, tn = 4
  const std::vector<float> logits = {3, 2, 1, -1, -2, -3, -4, -5};
  const std::vector<uint8_t> mask = {1, 1, 0, 1, 0, 0, 0, 0};
  const Confusion c = confusion(logits.data(), mask.data(), 8);
  EXPECT_EQ(c.tp, 2u);
  EXPECT_EQ(c.fp, 1u);
  EXPECT_EQ(c.fn, 1u);
  EXPECT_EQ(c.tn, 4u);
  EXPECT_DOUBLE_EQ(dice(c), 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(iou(c), 2.0 / 4.0);
  EXPECT_DOUBLE_EQ(pixel_accuracy(c), 6.0 / 8.0);
}

TEST(Metrics, PerImageMeanAndPooledDiffer) {
  MetricsAccumulator acc;
  const std::vector<float> all_neg(4, -1.0f), all_pos(4, 1.0f);
  const std::vector<uint8_t> empty(4, 0), full(4, 1), half = {1, 1, 0, 0};
  acc.add_image(all_neg.data(), empty.data(), 4);  // closed glottis found closed: 1
  acc.add_image(all_pos.data(), half.data(), 4);   // tp 2, fp 2: dice 2/3
  acc.add_image(all_pos.data(), full.data(), 4);   // perfect: 1
  const SegMetrics m = acc.finish();
  EXPECT_EQ(m.images, 3u);
  EXPECT_NEAR(m.dice_mean, (1 + 2.0 / 3 + 1) / 3, 1e-12);
  EXPECT_NEAR(m.dice_pooled, 2.0 * 6 / (2 * 6 + 2), 1e-12);  // tp 6, fp 2, fn 0
  EXPECT_NEAR(m.iou_mean, (1 + 0.5 + 1) / 3, 1e-12);
  EXPECT_NEAR(m.pixel_accuracy, 10.0 / 12, 1e-12);
}
