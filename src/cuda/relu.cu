// ReLU forward and backward on the GPU (kernels.h; ops/relu_ref.h is the reference).
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

template <class T>
__global__ void relu_fwd_kernel(size_t n, const T* x, T* y) {
  MIXSEG_GRID_STRIDE(i, n) y[i] = relu_active(x[i]) ? x[i] : zero<T>();
}

template <class T>
__global__ void relu_bwd_kernel(size_t n, const T* dy, const T* y, T* dx) {
  MIXSEG_GRID_STRIDE(i, n) dx[i] = relu_active(y[i]) ? dy[i] : zero<T>();
}

}  // namespace

void relu_fwd(FloatType t, size_t n, const void* x, void* y, cudaStream_t stream) {
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(relu_fwd_kernel<T>, blocks_for(n), kThreads, 0, stream, n, static_cast<const T*>(x), static_cast<T*>(y));
  });
  check_launch("relu_fwd");
}

void relu_bwd(FloatType t, size_t n, const void* dy, const void* y, void* dx, cudaStream_t stream) {
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(relu_bwd_kernel<T>, blocks_for(n), kThreads, 0, stream, n, static_cast<const T*>(dy),
           static_cast<const T*>(y), static_cast<T*>(dx));
  });
  check_launch("relu_bwd");
}

}  // namespace mixseg::cuda
