// Conversion between the storage types on the GPU (kernels.h; the CPU's is
// core/dtype.h's widen/narrow): widening is exact, narrowing rounds once to
// nearest even (cuda_types.cuh's store), NaN stays NaN.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

template <class From, class To>
__global__ void convert_kernel(size_t n, const From* x, To* y) {
  MIXSEG_GRID_STRIDE(i, n) y[i] = store<To>(load(x[i]));
}

}  // namespace

void convert(FloatType from, FloatType to, size_t n, const void* x, void* y, cudaStream_t stream) {
  if (from == to) {
    const size_t bytes = n * (from == FloatType::f32 ? 4 : 2);
    const cudaError_t e = cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, stream);
    if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA convert (copy): ") + cudaGetErrorString(e));
    return;
  }
  dispatch(from, [&](auto from_tag) {
    using From = decltype(from_tag);
    dispatch(to, [&](auto to_tag) {
      using To = decltype(to_tag);
      launch(convert_kernel<From, To>, blocks_for(n), kThreads, 0, stream, n, static_cast<const From*>(x),
             static_cast<To*>(y));
    });
  });
  check_launch("convert");
}

}  // namespace mixseg::cuda
