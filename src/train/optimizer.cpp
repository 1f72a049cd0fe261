// Adam and SGD with momentum (see optimizer.h). All math in f32/double on the
// f32 masters; elementwise and therefore independent of the thread count.
#include "train/optimizer.h"

#include <cmath>

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

void optimizer_step(const OptimizerConfig& c, OptimizerState& s, float* params, const float* grads, size_t n,
                    double grad_scale) {
  if (s.m.size() != n) fail("optimizer state holds {} values, the model has {} parameters", s.m.size(), n);
  ++s.step;
  const float gs = float(grad_scale), wd = float(c.weight_decay);
  float* m = s.m.data();
  if (c.kind == OptimizerKind::sgd) {
    const float lr = float(c.lr), mu = float(c.momentum);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      const float g = grads[i] * gs + wd * params[i];
      m[i] = mu * m[i] + g;
      params[i] -= lr * m[i];
    }
    return;
  }
  float* v = s.v.data();
  const double bc1 = 1.0 - std::pow(c.beta1, double(s.step)), bc2 = 1.0 - std::pow(c.beta2, double(s.step));
  const float b1 = float(c.beta1), b2 = float(c.beta2), eps = float(c.eps);
  const float step_size = float(c.lr / bc1), inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const float g = grads[i] * gs + wd * params[i];
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    params[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
  }
}

bool all_finite(const float* x, size_t n) {
  bool ok = true;
#pragma omp parallel for reduction(&& : ok) schedule(static)
  for (size_t i = 0; i < n; ++i) ok = ok && std::isfinite(x[i]);
  return ok;
}

}  // namespace mixseg
