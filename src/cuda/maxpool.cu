// 2x2 max pooling on the GPU (kernels.h; ops/maxpool_ref.h is the reference):
// one thread per output element; a later window element wins only if it is
// strictly greater (so a NaN in front stays, and ties go to the first), which
// makes both passes equal the reference bit for bit.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// The offsets of window (n, oy, ox)'s four inputs at channel ch, and the index of its first maximum.
template <class T>
__device__ __forceinline__ int window_argmax(const T* x, int h, int w, int c, size_t o, size_t off[4]) {
  const int ch = int(o % c);
  const size_t pix = o / c;
  const int ow = w / 2, oh = h / 2;
  const int ox = int(pix % ow), oy = int((pix / ow) % oh);
  const size_t n = pix / (size_t(ow) * oh);
  const size_t row = size_t(w) * c;
  const size_t base = (n * h + 2 * size_t(oy)) * row + size_t(2 * ox) * c + ch;
  off[0] = base;
  off[1] = base + c;
  off[2] = base + row;
  off[3] = base + row + c;
  int best = 0;
  float m = load(x[off[0]]);
  for (int k = 1; k < 4; ++k) {
    const float v = load(x[off[k]]);
    if (v > m) m = v, best = k;
  }
  return best;
}

template <class T>
__global__ void maxpool_fwd_kernel(size_t total, int h, int w, int c, const T* x, T* y) {
  MIXSEG_GRID_STRIDE(o, total) {
    size_t off[4];
    y[o] = x[off[window_argmax(x, h, w, c, o, off)]];
  }
}

template <class T>
__global__ void maxpool_bwd_kernel(size_t total, int h, int w, int c, const T* x, const T* dy, T* dx) {
  MIXSEG_GRID_STRIDE(o, total) {
    size_t off[4];
    const int best = window_argmax(x, h, w, c, o, off);
    for (int k = 0; k < 4; ++k) dx[off[k]] = k == best ? dy[o] : zero<T>();
  }
}

}  // namespace

void maxpool_fwd(FloatType t, int n, int h, int w, int c, const void* x, void* y, cudaStream_t stream) {
  const size_t total = size_t(n) * (h / 2) * (w / 2) * c;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    maxpool_fwd_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(total, h, w, c, static_cast<const T*>(x),
                                                                      static_cast<T*>(y));
  });
  check_launch("maxpool_fwd");
}

void maxpool_bwd(FloatType t, int n, int h, int w, int c, const void* x, const void* dy, void* dx, cudaStream_t stream) {
  const size_t total = size_t(n) * (h / 2) * (w / 2) * c;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    maxpool_bwd_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
        total, h, w, c, static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dx));
  });
  check_launch("maxpool_bwd");
}

}  // namespace mixseg::cuda
