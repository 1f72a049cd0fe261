// Channel concatenation on the GPU, forward and backward (kernels.h;
// ops/concat_ref.h is the reference), over the channel tiling of the
// concat's channels in channel vectors (cuda_types.cuh): each thread picks
// its source (or destination) tensor and channels once, then copies them for
// every pixel.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

template <class T, int V>
__global__ void concat_fwd_kernel(size_t pixels, int ca, int cb, int cw, const T* a, const T* b, T* y) {
  const int c = ca + cb;
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  const bool from_a = ch < ca;
  const T* src = from_a ? a : b;
  const size_t sc = size_t(from_a ? ca : cb), sch = size_t(from_a ? ch : ch - ca);
  for (size_t p = l.first; p < pixels; p += l.stride)
    store_pack<V>(y + p * size_t(c) + size_t(ch), load_pack<V>(src + p * sc + sch));
}

template <class T, int V>
__global__ void concat_bwd_kernel(size_t pixels, int ca, int cb, int cw, const T* dy, T* da, T* db) {
  const int c = ca + cb;
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  const bool to_a = ch < ca;
  T* dst = to_a ? da : db;
  const size_t dc = size_t(to_a ? ca : cb), dch = size_t(to_a ? ch : ch - ca);
  for (size_t p = l.first; p < pixels; p += l.stride)
    store_pack<V>(dst + p * dc + dch, load_pack<V>(dy + p * size_t(c) + size_t(ch)));
}

}  // namespace

void concat_fwd(FloatType t, size_t pixels, int ca, int cb, const void* a, const void* b, void* y,
                cudaStream_t stream) {
  dispatch_vector(t, vector_width(t, {ca, cb}, {a, b, y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(pixels, (ca + cb) / V, kElementwiseBlocks);
    launch(concat_fwd_kernel<T, V>, g.grid, kThreads, 0, stream, pixels, ca, cb, g.cw, static_cast<const T*>(a),
           static_cast<const T*>(b), static_cast<T*>(y));
  });
  check_launch("concat_fwd");
}

void concat_bwd(FloatType t, size_t pixels, int ca, int cb, const void* dy, void* da, void* db, cudaStream_t stream) {
  dispatch_vector(t, vector_width(t, {ca, cb}, {dy, da, db}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const ChannelTiling g = channel_tiling(pixels, (ca + cb) / V, kElementwiseBlocks);
    launch(concat_bwd_kernel<T, V>, g.grid, kThreads, 0, stream, pixels, ca, cb, g.cw, static_cast<const T*>(dy),
           static_cast<T*>(da), static_cast<T*>(db));
  });
  check_launch("concat_bwd");
}

}  // namespace mixseg::cuda
