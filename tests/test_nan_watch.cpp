// The NaN watch: when non-finite values appear outside the loss scaler's
// normal overflow handling, training stops with an error naming where they
// first appear in the schedule; under mixed_fp16 the scaler first backs off
// to its minimum as usual.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "data/synthetic.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace mixseg;

namespace {

struct PoisonedRun {
  UNet net;
  Checkpoint state;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Workspace> ws;
  std::vector<float> input;
  std::vector<uint8_t> target;
};

// A small training setup with a NaN planted in one conv weight.
PoisonedRun make_run(Policy p, const std::string& poisoned) {
  PoisonedRun r{build_unet({4, 2, 1, 1}), {}, make_ref_backend(), nullptr, {}, {}};
  r.state.config = r.net.config;
  r.state.policy = p;
  r.state.weights = init_weights(r.net, 1);
  r.state.optimizer_state = make_optimizer_state(r.state.optimizer, r.net.param_numel);
  LossScalerConfig sc;
  sc.enabled = policy_info(p).loss_scaling;
  r.state.scaler = LossScaler::make(sc);
  for (const auto& info : r.net.params)
    if (info.name == poisoned) r.state.weights.params[info.offset] = std::numeric_limits<float>::quiet_NaN();
  r.ws = make_workspace(r.net, *r.backend, p, 2, 16, 16, true);
  upload_weights(r.net, r.state.weights, *r.ws);
  const Dataset d = make_synthetic({16, 16, 2, 0.05}, 2);
  r.input.resize(2 * 256);
  r.target.resize(2 * 256);
  d.read(0, 2, r.input.data(), r.target.data());
  return r;
}

}  // namespace

TEST(NanWatch, NamesTheFirstLayerWithNonFiniteOutput) {
  for (Policy p : {Policy::fp32, Policy::mixed_bf16}) {
    PoisonedRun r = make_run(p, "enc1.0.conv.weight");
    test::expect_error_containing([&] { train_step(r.net, r.state, *r.ws, r.input.data(), r.target.data(), {}); },
                                  "first in the output of enc1.0.conv (conv) in the forward pass");
  }
}

TEST(NanWatch, Fp16OverflowsBackOffFirst) {
  PoisonedRun r = make_run(Policy::mixed_fp16, "bottleneck.conv.weight");
  int skipped = 0;
  try {
    for (int i = 0; i < 40; ++i) {
      const StepStats s = train_step(r.net, r.state, *r.ws, r.input.data(), r.target.data(), {});
      EXPECT_TRUE(s.skipped);
      ++skipped;
    }
    FAIL() << "no error after 40 non-finite steps";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bottleneck.conv"), std::string::npos) << e.what();
  }
  EXPECT_EQ(skipped, 16);  // 2^16 halved down to the minimum scale 1
  EXPECT_EQ(r.state.scaler.scale, 1.0);
}
