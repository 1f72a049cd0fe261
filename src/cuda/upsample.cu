// Nearest 2x upsampling on the GPU, forward, backward, and fused with the
// decoder's concat (kernels.h; ops/upsample_ref.h is the reference). One
// thread per output element; the backward sums a 2x2 block in the reference's
// order (upper left, upper right, lower left, lower right) in f32.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// Element (b, oy, ox, ch) of the [n, 2h, 2w, c] upsampled x, given output pixel pix.
template <class T>
__device__ __forceinline__ T upsampled(const T* x, int h, int w, int c, size_t pix, int ch) {
  const int ox = int(pix % (2 * size_t(w))), oy = int((pix / (2 * size_t(w))) % (2 * size_t(h)));
  const size_t b = pix / (4 * size_t(h) * w);
  return x[((b * h + oy / 2) * w + ox / 2) * c + ch];
}

template <class T>
__global__ void upsample_fwd_kernel(size_t total, int h, int w, int c, const T* x, T* y) {
  MIXSEG_GRID_STRIDE(o, total) y[o] = upsampled(x, h, w, c, o / c, int(o % c));
}

template <class T>
__global__ void upsample_bwd_kernel(size_t total, int h, int w, int c, const T* dy, T* dx) {
  MIXSEG_GRID_STRIDE(i, total) {
    const int ch = int(i % c);
    const size_t pix = i / c;
    const int ix = int(pix % w), iy = int((pix / w) % h);
    const size_t b = pix / (size_t(h) * w);
    const size_t orow = 2 * size_t(w) * c;
    const size_t a = ((b * 2 * h + 2 * size_t(iy)) * 2 * w + 2 * size_t(ix)) * c + ch;
    dx[i] = store<T>(load(dy[a]) + load(dy[a + c]) + load(dy[a + orow]) + load(dy[a + orow + c]));
  }
}

template <class T>
__global__ void upsample_concat_kernel(size_t total, int h, int w, int c, const T* x, int cs, const T* skip, T* y) {
  const int ct = c + cs;
  MIXSEG_GRID_STRIDE(o, total) {
    const int ch = int(o % ct);
    const size_t pix = o / ct;
    y[o] = ch < c ? upsampled(x, h, w, c, pix, ch) : skip[pix * cs + (ch - c)];
  }
}

}  // namespace

void upsample_fwd(FloatType t, int n, int h, int w, int c, const void* x, void* y, cudaStream_t stream) {
  const size_t total = size_t(n) * 4 * h * w * c;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    upsample_fwd_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(total, h, w, c, static_cast<const T*>(x),
                                                                       static_cast<T*>(y));
  });
  check_launch("upsample_fwd");
}

void upsample_bwd(FloatType t, int n, int h, int w, int c, const void* dy, void* dx, cudaStream_t stream) {
  const size_t total = size_t(n) * h * w * c;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    upsample_bwd_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(total, h, w, c, static_cast<const T*>(dy),
                                                                       static_cast<T*>(dx));
  });
  check_launch("upsample_bwd");
}

void upsample_concat_fwd(FloatType t, int n, int h, int w, int c, const void* x, int cs, const void* skip, void* y,
                         cudaStream_t stream) {
  const size_t total = size_t(n) * 4 * h * w * (c + cs);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    upsample_concat_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
        total, h, w, c, static_cast<const T*>(x), cs, static_cast<const T*>(skip), static_cast<T*>(y));
  });
  check_launch("upsample_concat_fwd");
}

}  // namespace mixseg::cuda
