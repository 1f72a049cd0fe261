// In-place add on the GPU (kernels.h; ops/add_ref.h is the reference): widened, summed, rounded once.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {
template <class T>
__global__ void add_kernel(size_t n, const T* x, T* y) {
  MIXSEG_GRID_STRIDE(i, n) y[i] = store<T>(load(y[i]) + load(x[i]));
}
}  // namespace

void add_inplace(FloatType t, size_t n, const void* x, void* y, cudaStream_t stream) {
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(add_kernel<T>, blocks_for(n), kThreads, 0, stream, n, static_cast<const T*>(x), static_cast<T*>(y));
  });
  check_launch("add_inplace");
}

}  // namespace mixseg::cuda
