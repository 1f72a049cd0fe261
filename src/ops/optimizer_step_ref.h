// The reference optimizer step (Backend::optimizer_step): finite check of
// the f32 weight gradients and the loss, the loss scaler's decision, the
// update of the f32 masters and their copy in the storage type; the rules
// themselves are core/step_control.h's, shared with the CUDA kernels.
#pragma once
#include <cstddef>

#include "core/step_control.h"
#include "core/tensor.h"

namespace mixseg {

// True when every value is finite (no inf or NaN).
bool all_finite(const float* x, size_t n);

// The update alone, for steps already decided: params, m, v (v: Adam only)
// updated from grads with the step factors; elementwise, so independent of
// the thread count.
void update_params_ref(const UpdateRule& rule, float step_size, float inv_sqrt_bc2, float grad_scale, float* params,
                       const float* grads, float* m, float* v, size_t n);

// The whole step on host memory (storage.data null: the masters are the storage).
void optimizer_step_ref(const UpdateRule& rule, StepControl& ctl, float* params, const float* grads, float* m, float* v,
                        size_t n, const Tensor& storage);

}  // namespace mixseg
