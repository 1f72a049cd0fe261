// The fused optimizer step on the GPU (kernels.h; ops/optimizer_step_ref.cpp
// is the reference): three launches and no host round trip. The finite
// check flags any inf/NaN weight gradient in the control block; one thread
// makes the step's decision with the reference's own step_decide (loss
// scaler, skip or apply, Adam's factors); the update kernel then applies
// update_element, the reference's per-element rule, to every parameter and
// writes the storage copy, or returns at once on a skipped step. Elementwise
// and in f32 like the reference; only FMA contraction can differ (~1 ulp).
// Four parameters per thread in 16-byte accesses where the buffers allow
// (performance.md v0.20): the step reads four f32 arrays and writes four.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// Both kernels take V consecutive parameters per thread (V = 4: 16-byte
// accesses, cuda_types.cuh's channel vectors over the flat buffers; V = 1
// where a pointer or the count does not allow it).
template <int V>
__global__ void finite_check_kernel(size_t n, const float* g, StepControl* ctl) {
  bool bad = false;
  MIXSEG_GRID_STRIDE(j, n / V) {
    const Pack<float, V> k = load_pack<V>(g + j * V);
    for (int i = 0; i < V; ++i) bad |= !isfinite(k.v[i]);
  }
  if (bad) ctl->found_nonfinite = 1;  // every writer writes the same value
}

__global__ void decide_kernel(UpdateRule rule, StepControl* ctl) { step_decide(rule, *ctl); }

template <class T, int V>
__global__ void update_kernel(UpdateRule rule, const StepControl* ctl, float* params, const float* grads, float* m,
                              float* v, size_t n, T* storage) {
  if (!ctl->applied) return;
  const float step_size = ctl->step_size, inv_sqrt_bc2 = ctl->inv_sqrt_bc2, grad_scale = ctl->grad_scale;
  MIXSEG_GRID_STRIDE(j, n / V) {
    const size_t at = j * V;
    Pack<float, V> p = load_pack<V>(params + at), mi = load_pack<V>(m + at), vi;
    const Pack<float, V> g = load_pack<V>(grads + at);
    if (rule.adam) vi = load_pack<V>(v + at);
    Pack<T, V> out;
    for (int i = 0; i < V; ++i) {
      float vv = rule.adam ? vi.v[i] : 0.0f;
      update_element(rule, step_size, inv_sqrt_bc2, grad_scale, p.v[i], g.v[i], mi.v[i], vv);
      vi.v[i] = vv;
      out.v[i] = store<T>(p.v[i]);
    }
    store_pack<V>(params + at, p);
    store_pack<V>(m + at, mi);
    if (rule.adam) store_pack<V>(v + at, vi);
    if (storage) store_pack<V>(storage + at, out);
  }
}

}  // namespace

void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m, float* v,
                    size_t n, FloatType storage_type, void* storage, cudaStream_t stream) {
  const cudaError_t e = cudaMemsetAsync(&ctl->found_nonfinite, 0, sizeof(int32_t), stream);
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA optimizer_step: ") + cudaGetErrorString(e));
  // Vectors of 4 where every buffer is 16-byte aligned; the last n % 4 parameters, or all of them otherwise,
  // one per thread.
  const bool vec = vector_width(FloatType::f32, {}, {params, grads, m, v, storage}) == 4;
  const size_t body = vec ? n / 4 * 4 : 0;
  auto run = [&](auto vtag, size_t first, size_t count) {
    constexpr int V = decltype(vtag)::value;
    if (count == 0) return;
    launch(finite_check_kernel<V>, blocks_for(count / V), kThreads, 0, stream, count, grads + first, ctl);
    check_launch("finite_check");
  };
  run(std::integral_constant<int, 4>{}, 0, body);
  run(std::integral_constant<int, 1>{}, body, n - body);
  launch(decide_kernel, 1, 1, 0, stream, rule, ctl);
  check_launch("optimizer_decide");
  dispatch(storage_type, [&](auto tag) {
    using T = decltype(tag);
    T* st = static_cast<T*>(storage);
    auto update = [&](auto vtag, size_t first, size_t count) {
      constexpr int V = decltype(vtag)::value;
      if (count == 0) return;
      launch(update_kernel<T, V>, blocks_for(count / V), kThreads, 0, stream, rule, ctl, params + first,
             grads + first, m + first, v ? v + first : nullptr, count, st ? st + first : nullptr);
    };
    update(std::integral_constant<int, 4>{}, 0, body);
    update(std::integral_constant<int, 1>{}, body, n - body);
  });
  check_launch("optimizer_update");
}

}  // namespace mixseg::cuda
