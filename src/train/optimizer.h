// Optimizers over the flat f32 parameter buffer: Adam (bias-corrected) and
// SGD with momentum. State is f32 and flat, like the parameters, so it is
// checkpointed and (later) sharded without knowing the layers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/step_control.h"
#include "ops/optimizer_step_ref.h"  // all_finite

namespace mixseg {

enum class OptimizerKind { adam, sgd };
OptimizerKind parse_optimizer(std::string_view name);
const char* optimizer_name(OptimizerKind k);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::adam;
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  double momentum = 0.9;                          // SGD
  double weight_decay = 0.0;                      // L2 added to the gradient
};

struct OptimizerState {
  int64_t step = 0;
  std::vector<float> m;  // Adam first moment / SGD momentum buffer
  std::vector<float> v;  // Adam second moment (empty for SGD)
};

OptimizerState make_optimizer_state(const OptimizerConfig& c, size_t n);
// The fixed part of c as the update kernels take it (the learning rate goes
// per step through StepControl; the scaler fields are left at their defaults).
UpdateRule update_rule(const OptimizerConfig& c);

// One update of params from grads on the host (training steps run the
// backend's fused optimizer_step instead; same rules). grad_scale multiplies
// grads on the fly (1 / loss scale), so unscaling costs no extra pass.
void optimizer_step(const OptimizerConfig& c, OptimizerState& s, float* params, const float* grads, size_t n,
                    double grad_scale = 1.0);

}  // namespace mixseg
