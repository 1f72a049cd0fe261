// The fused optimizer step on the GPU (kernels.h; ops/optimizer_step_ref.cpp
// is the reference): three launches and no host round trip. The finite
// check flags any inf/NaN weight gradient in the control block; one thread
// makes the step's decision with the reference's own step_decide (loss
// scaler, skip or apply, Adam's factors); the update kernel then applies
// update_element, the reference's per-element rule, to every parameter and
// writes the storage copy, or returns at once on a skipped step. Elementwise
// and in f32 like the reference; only FMA contraction can differ (~1 ulp).
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

__global__ void finite_check_kernel(size_t n, const float* g, StepControl* ctl) {
  bool bad = false;
  MIXSEG_GRID_STRIDE(i, n) bad |= !isfinite(g[i]);
  if (bad) ctl->found_nonfinite = 1;  // every writer writes the same value
}

__global__ void decide_kernel(UpdateRule rule, StepControl* ctl) { step_decide(rule, *ctl); }

template <class T>
__global__ void update_kernel(UpdateRule rule, const StepControl* ctl, float* params, const float* grads, float* m,
                              float* v, size_t n, T* storage) {
  if (!ctl->applied) return;
  const float step_size = ctl->step_size, inv_sqrt_bc2 = ctl->inv_sqrt_bc2, grad_scale = ctl->grad_scale;
  MIXSEG_GRID_STRIDE(i, n) {
    float p = params[i], mi = m[i], vi = rule.adam ? v[i] : 0.0f;
    update_element(rule, step_size, inv_sqrt_bc2, grad_scale, p, grads[i], mi, vi);
    params[i] = p;
    m[i] = mi;
    if (rule.adam) v[i] = vi;
    if (storage) storage[i] = store<T>(p);
  }
}

}  // namespace

void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m, float* v,
                    size_t n, FloatType storage_type, void* storage, cudaStream_t stream) {
  const cudaError_t e = cudaMemsetAsync(&ctl->found_nonfinite, 0, sizeof(int32_t), stream);
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA optimizer_step: ") + cudaGetErrorString(e));
  launch(finite_check_kernel, blocks_for(n), kThreads, 0, stream, n, grads, ctl);
  check_launch("finite_check");
  launch(decide_kernel, 1, 1, 0, stream, rule, ctl);
  check_launch("optimizer_decide");
  dispatch(storage_type, [&](auto tag) {
    using T = decltype(tag);
    launch(update_kernel<T>, blocks_for(n), kThreads, 0, stream, rule, ctl, params, grads, m, v, n,
           static_cast<T*>(storage));
  });
  check_launch("optimizer_update");
}

}  // namespace mixseg::cuda
