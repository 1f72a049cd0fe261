// Channel concatenation on the GPU, forward and backward (kernels.h;
// ops/concat_ref.h is the reference): one thread per element of the concat.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

template <class T>
__global__ void concat_fwd_kernel(size_t total, int ca, int cb, const T* a, const T* b, T* y) {
  const int c = ca + cb;
  MIXSEG_GRID_STRIDE(o, total) {
    const int ch = int(o % c);
    const size_t p = o / c;
    y[o] = ch < ca ? a[p * ca + ch] : b[p * cb + (ch - ca)];
  }
}

template <class T>
__global__ void concat_bwd_kernel(size_t total, int ca, int cb, const T* dy, T* da, T* db) {
  const int c = ca + cb;
  MIXSEG_GRID_STRIDE(o, total) {
    const int ch = int(o % c);
    const size_t p = o / c;
    if (ch < ca)
      da[p * ca + ch] = dy[o];
    else
      db[p * cb + (ch - ca)] = dy[o];
  }
}

}  // namespace

void concat_fwd(FloatType t, size_t pixels, int ca, int cb, const void* a, const void* b, void* y, cudaStream_t stream) {
  const size_t total = pixels * size_t(ca + cb);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    concat_fwd_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(total, ca, cb, static_cast<const T*>(a),
                                                                     static_cast<const T*>(b), static_cast<T*>(y));
  });
  check_launch("concat_fwd");
}

void concat_bwd(FloatType t, size_t pixels, int ca, int cb, const void* dy, void* da, void* db, cudaStream_t stream) {
  const size_t total = pixels * size_t(ca + cb);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    concat_bwd_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(total, ca, cb, static_cast<const T*>(dy),
                                                                     static_cast<T*>(da), static_cast<T*>(db));
  });
  check_launch("concat_bwd");
}

}  // namespace mixseg::cuda
