// End to end: training the U-Net on synthetic frames reaches validation
// Dice >= 0.90 in fp32, mixed_fp16 and mixed_bf16 alike, the three within
// 0.02 of each other, with the 16-bit policies using half the activation
// memory; on the reference backend and on the fast one, which must reach the
// same Dice. (128x128, f=8, 300 frames, 4 epochs: about two minutes per
// backend on 2 cores; cosine learning rate from 1e-2.)
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "data/synthetic.h"
#include "train/trainer.h"

using namespace mixseg;

class Training : public ::testing::TestWithParam<std::string> {};

TEST_P(Training, EveryPolicyReachesDice90OnSyntheticData) {
  const Dataset all = make_synthetic({128, 128, 1, 0.05}, 300);
  auto [train_set, val_set] = split(all, 0.2, 1);
  auto backend = make_backend(GetParam());
  std::vector<double> dice;
  std::vector<size_t> memory;
  for (Policy p : {Policy::fp32, Policy::mixed_fp16, Policy::mixed_bf16}) {
    TrainConfig cfg;
    cfg.model = {8, 4, 1, 1};
    cfg.policy = p;
    cfg.batch = 4;
    cfg.epochs = 4;
    // A decaying rate so the last epoch is converged: at a constant 3e-3 the
    // fourth epoch's validation Dice swung between 0.45 and 0.99 with the
    // conv kernels oneDNN picks per CPU (seen in CI); with cosine from 1e-2
    // every policy, ISA and conv algorithm tried ends at 0.997-0.999.
    cfg.optimizer.lr = 1e-2;
    cfg.schedule.kind = LrSchedule::cosine;
    cfg.seed = 1;
    cfg.augment.enabled = false;  // precision parity on the same inputs; augmentation has its own tests
    const TrainResult r = train(cfg, train_set, val_set, *backend);
    ASSERT_EQ(r.epochs.size(), 4u);
    const EpochStats& last = r.epochs.back();
    fmt::print("{} {:<11} val dice {:.4f} (pooled {:.4f})  {:.1f} img/s  activations {:.1f} MiB  skipped {}\n",
               backend->name(), policy_info(p).name, last.val.dice_mean, last.val.dice_pooled, last.img_per_s,
               double(r.activation_bytes) / (1 << 20), r.last.scaler.skipped_steps);
    EXPECT_GE(last.val.dice_mean, 0.90) << policy_info(p).name;
    EXPECT_LE(r.last.scaler.skipped_steps, 5) << policy_info(p).name;
    dice.push_back(last.val.dice_mean);
    memory.push_back(r.activation_bytes);
  }
  const auto [lo, hi] = std::minmax_element(dice.begin(), dice.end());
  EXPECT_LE(*hi - *lo, 0.02) << "Dice differs across policies by " << *hi - *lo;
  EXPECT_NEAR(double(memory[1]) / double(memory[0]), 0.5, 0.01);
  EXPECT_NEAR(double(memory[2]) / double(memory[0]), 0.5, 0.01);
}

INSTANTIATE_TEST_SUITE_P(Backends, Training, ::testing::Values("ref", "fast"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
