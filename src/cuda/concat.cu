// Channel concatenation on the GPU, forward and backward (kernels.h;
// ops/concat_ref.h is the reference), over the channel tiling of the
// concat's channels: each thread picks its source (or destination) tensor
// and channel once, then copies that channel of every pixel.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

template <class T>
__global__ void concat_fwd_kernel(size_t pixels, int ca, int cb, int cw, const T* a, const T* b, T* y) {
  const int c = ca + cb;
  const ChannelLane l(cw);
  if (!l.active(c)) return;
  const bool from_a = l.ch < ca;
  const T* src = from_a ? a : b;
  const size_t sc = size_t(from_a ? ca : cb), sch = size_t(from_a ? l.ch : l.ch - ca);
  for (size_t p = l.first; p < pixels; p += l.stride) y[p * size_t(c) + size_t(l.ch)] = src[p * sc + sch];
}

template <class T>
__global__ void concat_bwd_kernel(size_t pixels, int ca, int cb, int cw, const T* dy, T* da, T* db) {
  const int c = ca + cb;
  const ChannelLane l(cw);
  if (!l.active(c)) return;
  const bool to_a = l.ch < ca;
  T* dst = to_a ? da : db;
  const size_t dc = size_t(to_a ? ca : cb), dch = size_t(to_a ? l.ch : l.ch - ca);
  for (size_t p = l.first; p < pixels; p += l.stride) dst[p * dc + dch] = dy[p * size_t(c) + size_t(l.ch)];
}

}  // namespace

void concat_fwd(FloatType t, size_t pixels, int ca, int cb, const void* a, const void* b, void* y,
                cudaStream_t stream) {
  const ChannelTiling g = channel_tiling(pixels, ca + cb, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(concat_fwd_kernel<T>, g.grid, kThreads, 0, stream, pixels, ca, cb, g.cw, static_cast<const T*>(a),
           static_cast<const T*>(b), static_cast<T*>(y));
  });
  check_launch("concat_fwd");
}

void concat_bwd(FloatType t, size_t pixels, int ca, int cb, const void* dy, void* da, void* db, cudaStream_t stream) {
  const ChannelTiling g = channel_tiling(pixels, ca + cb, kElementwiseBlocks);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(concat_bwd_kernel<T>, g.grid, kThreads, 0, stream, pixels, ca, cb, g.cw, static_cast<const T*>(dy),
           static_cast<T*>(da), static_cast<T*>(db));
  });
  check_launch("concat_bwd");
}

}  // namespace mixseg::cuda
