// The reference optimizer step (see optimizer_step_ref.h).
#include "ops/optimizer_step_ref.h"

#include <cmath>

#include "core/dtype.h"

namespace mixseg {

bool all_finite(const float* x, size_t n) {
  // x - x is 0 for finite x and NaN for inf or NaN: a sum of those stays 0
  // exactly when all are finite, and the loop vectorizes (no early exit).
  float nonfinite = 0;
#pragma omp parallel for simd reduction(+ : nonfinite) schedule(static)
  for (size_t i = 0; i < n; ++i) nonfinite += x[i] - x[i];
  return nonfinite == 0;
}

void update_params_ref(const UpdateRule& rule, float step_size, float inv_sqrt_bc2, float grad_scale, float* params,
                       const float* grads, float* m, float* v, size_t n) {
  // One loop per rule, so that each vectorizes (update_element's branch on
  // the rule is then the same for all of a loop's elements). Elementwise: the
  // same result in any lane or thread.
  if (rule.adam) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; ++i)
      update_element(rule, step_size, inv_sqrt_bc2, grad_scale, params[i], grads[i], m[i], v[i]);
  } else {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; ++i) {
      float unused = 0;
      update_element(rule, step_size, inv_sqrt_bc2, grad_scale, params[i], grads[i], m[i], unused);
    }
  }
}

void optimizer_step_ref(const UpdateRule& rule, StepControl& ctl, float* params, const float* grads, float* m, float* v,
                        size_t n, const Tensor& storage) {
  ctl.found_nonfinite = !all_finite(grads, n);
  step_decide(rule, ctl);
  if (!ctl.applied) return;
  update_params_ref(rule, ctl.step_size, ctl.inv_sqrt_bc2, ctl.grad_scale, params, grads, m, v, n);
  if (storage.data) dispatch_float(storage.dtype, [&]<class T>() { narrow_parallel(params, storage.as<T>(), n); });
}

}  // namespace mixseg
