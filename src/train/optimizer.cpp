// Adam and SGD with momentum (see optimizer.h). All math in f32/double on the
// f32 masters; elementwise and therefore independent of the thread count.
#include "train/optimizer.h"

#include "core/error.h"

namespace mixseg {

OptimizerKind parse_optimizer(std::string_view name) {
  if (name == "adam") return OptimizerKind::adam;
  if (name == "sgd") return OptimizerKind::sgd;
  fail("unknown optimizer '{}' (expected adam or sgd)", name);
}

const char* optimizer_name(OptimizerKind k) { return k == OptimizerKind::adam ? "adam" : "sgd"; }

OptimizerState make_optimizer_state(const OptimizerConfig& c, size_t n) {
  OptimizerState s;
  s.m.assign(n, 0.0f);
  if (c.kind == OptimizerKind::adam) s.v.assign(n, 0.0f);
  return s;
}

UpdateRule update_rule(const OptimizerConfig& c) {
  UpdateRule r;
  r.adam = c.kind == OptimizerKind::adam;
  r.beta1 = c.beta1;
  r.beta2 = c.beta2;
  r.eps = c.eps;
  r.momentum = c.momentum;
  r.weight_decay = c.weight_decay;
  return r;
}

void optimizer_step(const OptimizerConfig& c, OptimizerState& s, float* params, const float* grads, size_t n,
                    double grad_scale) {
  if (s.m.size() != n) fail("optimizer state holds {} values, the model has {} parameters", s.m.size(), n);
  ++s.step;
  const UpdateRule r = update_rule(c);
  float step_size = float(c.lr), inv_sqrt_bc2 = 1;
  if (r.adam) adam_factors(c.lr, c.beta1, c.beta2, s.step, step_size, inv_sqrt_bc2);
  update_params_ref(r, step_size, inv_sqrt_bc2, float(grad_scale), params, grads, s.m.data(), s.v.data(), n);
}

}  // namespace mixseg
