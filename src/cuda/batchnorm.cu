// BatchNorm (+ the fused ReLU) on the GPU, forward (training and inference)
// and backward (kernels.h; ops/batchnorm_ref.h is the reference, whose
// formulas these follow with sums in double; the variance from one pass over
// x, see TrainStats).
// Every kernel over the [pixels, C] tensor uses the channel tiling of
// cuda_types.cuh in channel vectors: each thread keeps V channels (one
// 16-byte access where the sizes allow, else one channel) and strides over
// pixels, so it loads those channels' factors once and needs no index
// division per element.
// The fused ReLU's mask in the backward comes from x and the forward's
// factors where the forward kept them (ReluMask): the forward's
// pre-activation fma(x, scale, shift) recomputed, positive and positive once
// rounded to the storage type exactly when the forward's output is, so the
// mask is the same bit for bit and the output is not read again (two reads
// of a tensor less per backward; see performance.md v0.18).
// The forward's output y and the backward's dy (and relu_y) may be channel
// slices of a wider tensor (a skip connection inside its concat buffer): they
// are addressed with their own pixel stride; x and dx are dense.
// Per-channel sums: each thread accumulates its channels in double registers,
// the block adds its rows in shared memory, and one double atomic per
// (block, channel) adds that to the global total (the order varies, the
// double sums do not matter at f32 precision); the last block to finish
// turns the totals into the per-channel factors (scale and shift, or the
// backward's), then an elementwise pass writes the output. Inference takes
// its factors from the running statistics in a small one-block kernel.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

constexpr int kMaxChannels = 3072 * 16;  // the grid's y dimension: C / 256 chunks (at most 65535)

// Scratch layout: floats f0[C], f1[C], f2[C].
struct Scratch {
  float *f0, *f1, *f2;
};
Scratch carve(void* p, int c) {
  float* f = static_cast<float*>(p);
  return {f, f + c, f + 2 * c};
}

// The sums pass's totals, zero between passes (see channel_sums_kernel): a
// count of the blocks done (in the first 16 bytes), then acc0[C], acc1[C].
struct Sums {
  unsigned* done;
  double *acc0, *acc1;
};
Sums carve_sums(void* p, int c) {
  double* d = static_cast<double*>(p) + 2;
  return {static_cast<unsigned*>(p), d, d + c};
}

// What a pixel p contributes to the two sums of channels ch..ch+V-1.
template <class T, int V>
struct SumXAndSquares {  // x and x^2: both exact in double for every storage type
  const T* x;
  int c;
  __device__ void operator()(size_t p, int ch, double (&a)[V], double (&b)[V]) const {
    float v[V];
    load_f32<V>(x + p * size_t(c) + size_t(ch), v);
    for (int i = 0; i < V; ++i) a[i] = v[i], b[i] = double(v[i]) * v[i];
  }
};
// The fused ReLU's mask on the gradient g of pixel p, channels ch..ch+V-1
// (inputs xv, the channels' kept factors sc, sh): g where the ReLU passed,
// else 0; g unchanged without a ReLU. The mask comes from the forward's
// output (pixel stride ys) or is recomputed from the factors.
template <class T, int V>
struct ReluMask {
  const T* relu_y;
  int ys;
  const float *scale, *shift;
  __device__ void apply(size_t p, int ch, const float (&xv)[V], const float (&sc)[V], const float (&sh)[V],
                        float (&g)[V]) const {
    if (scale) {
      for (int i = 0; i < V; ++i) {
        const float v = fmaf(xv[i], sc[i], sh[i]);  // as normalize_kernel computed it
        if (!(v > 0.0f && relu_active(store<T>(v)))) g[i] = 0.0f;
      }
    } else if (relu_y) {
      const Pack<T, V> y = load_pack<V>(relu_y + p * size_t(ys) + size_t(ch));
      for (int i = 0; i < V; ++i)
        if (!relu_active(y.v[i])) g[i] = 0.0f;
    }
  }
  __device__ void factors(int ch, float (&sc)[V], float (&sh)[V]) const {
    for (int i = 0; i < V; ++i) sc[i] = scale ? scale[ch + i] : 0.0f, sh[i] = scale ? shift[ch + i] : 0.0f;
  }
};

template <class T, int V>
struct SumGradients {  // g and g * xhat, g = dy (pixel stride dys) masked by the ReLU
  const T *dy, *x;
  int c, dys;
  ReluMask<T, V> mask;
  const float *mean, *invstd;
  __device__ void operator()(size_t p, int ch, double (&a)[V], double (&b)[V]) const {
    float xv[V], g[V], sc[V], sh[V];
    load_f32<V>(x + p * size_t(c) + size_t(ch), xv);
    load_f32<V>(dy + p * size_t(dys) + size_t(ch), g);
    mask.factors(ch, sc, sh);
    mask.apply(p, ch, xv, sc, sh, g);
    for (int i = 0; i < V; ++i) a[i] = g[i], b[i] = double(g[i]) * (double(xv[i]) - mean[ch + i]) * invstd[ch + i];
  }
};

// Over the channel tiling in vectors of V channels: each thread sums its
// vector's channels over its pixels, the block adds its rows in shared
// memory ([2][rows][cw * V] doubles) by halving (rows is 256 / cw, up to
// 256 when the channels make one vector: a row-by-row loop in one thread
// would take thousands of steps), then row 0 adds them to the totals. The
// last block to finish (each block makes its adds visible device-wide
// before it counts itself done: CUDA's threadfence reduction) hands the
// totals of every channel to finish and clears them and the count for the
// next pass: one launch per pass instead of two memsets, the sums and a
// kernel for the statistics (performance.md v0.22).
template <class F, int V, class Finish>
__global__ void channel_sums_kernel(size_t pixels, int c, int cw, F f, Sums s, Finish finish) {
  double* sh = dynamic_shared_memory<double>();
  const ChannelLane l(cw);
  double a[V] = {}, b[V] = {};
  if (l.active(c / V))
    for (size_t p = l.first; p < pixels; p += l.stride) {
      double da[V], db[V];
      f(p, l.ch * V, da, db);
      for (int i = 0; i < V; ++i) a[i] += da[i], b[i] += db[i];
    }
  const int row_len = cw * V, plane = l.rows * row_len;
  double* mine = sh + l.row * row_len + l.col * V;
  if (l.row < l.rows)
    for (int i = 0; i < V; ++i) mine[i] = a[i], mine[plane + i] = b[i];
  __syncthreads();
  for (int n = l.rows; n > 1;) {  // the same steps in every thread: each reaches every barrier
    const int half = (n + 1) / 2;
    if (l.row + half < n)
      for (int i = 0; i < V; ++i) {
        mine[i] += mine[half * row_len + i];
        mine[plane + i] += mine[plane + half * row_len + i];
      }
    __syncthreads();
    n = half;
  }
  if (l.row == 0 && l.ch < c / V)
    for (int i = 0; i < V; ++i) {
      atomicAdd(&s.acc0[l.ch * V + i], mine[i]);
      atomicAdd(&s.acc1[l.ch * V + i], mine[plane + i]);
    }
  __threadfence();
  __shared__ unsigned last;
  if (threadIdx.x == 0) last = atomicAdd(s.done, 1u) == gridDim.x * gridDim.y - 1 ? 1u : 0u;
  __syncthreads();
  if (!last) return;
  __threadfence();
  const volatile double *t0 = s.acc0, *t1 = s.acc1;  // past this SM's cache: the other blocks' adds
  for (int i = int(threadIdx.x); i < c; i += int(blockDim.x)) {
    finish(i, t0[i], t1[i]);
    s.acc0[i] = 0;
    s.acc1[i] = 0;
  }
  if (threadIdx.x == 0) *s.done = 0;
}

template <int V, class F, class Finish>
void channel_sums(size_t pixels, int c, F f, Sums s, Finish finish, cudaStream_t stream) {
  const ChannelTiling t = channel_tiling(pixels, c / V, 1024);
  launch(channel_sums_kernel<F, V, Finish>, t.grid, kThreads, sizeof(double) * 2 * size_t(kThreads) * V, stream,
         pixels, c, t.cw, f, s, finish);
  check_launch("batchnorm channel sums");
}

// Training statistics from the sums of x and x^2 (channel i): scale and
// shift (y = x * scale + shift before the ReLU), saved mean/invstd, running
// updates. The variance comes from the two sums of one pass (the reference
// takes two passes): in double, with x^2 exact, it loses about
// 2^-53 (1 + mean^2 / var) relative, far below f32 unless |mean| > 10^4 std.
struct TrainStats {
  double m, eps, momentum;
  const float *gamma, *beta;
  float *save_mean, *save_invstd, *running_mean, *running_var, *scale, *shift;
  __device__ void operator()(int i, double sum, double sum_sq) const {
    const double mean = sum / m, var = fmax(sum_sq / m - mean * mean, 0.0), invstd = 1.0 / sqrt(var + eps);
    save_mean[i] = float(mean);
    save_invstd[i] = float(invstd);
    scale[i] = float(gamma[i] * invstd);
    shift[i] = float(beta[i] - gamma[i] * invstd * mean);
    if (running_mean) running_mean[i] = float((1 - momentum) * running_mean[i] + momentum * mean);
    if (running_var) running_var[i] = float((1 - momentum) * running_var[i] + momentum * var * m / fmax(m - 1, 1.0));
  }
};

// Backward, from the sums of g and g * xhat (channel i): dgamma, dbeta, and
// k (f0), mean dy (f1), mean dy*xhat (f2).
struct BwdStats {
  double m;
  const float *gamma, *invstd;
  float *dgamma, *dbeta, *k, *mean_g, *mean_gx;
  __device__ void operator()(int i, double sum_g, double sum_gx) const {
    dbeta[i] = float(sum_g);
    dgamma[i] = float(sum_gx);
    k[i] = gamma[i] * invstd[i];
    mean_g[i] = float(sum_g / m);
    mean_gx[i] = float(sum_gx / m);
  }
};

__global__ void infer_stats_kernel(int c, double eps, const float* gamma, const float* beta, const float* running_mean,
                                   const float* running_var, float* scale, float* shift) {
  for (int i = threadIdx.x; i < c; i += blockDim.x) {
    const double invstd = 1.0 / sqrt(double(running_var[i]) + eps);
    scale[i] = float(gamma[i] * invstd);
    shift[i] = float(beta[i] - gamma[i] * invstd * running_mean[i]);
  }
}

template <class T, int V>
__global__ void normalize_kernel(size_t pixels, int c, int cw, const T* x, const float* scale, const float* shift,
                                 bool relu, T* y, int ys) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  float sc[V], sh[V];
  for (int i = 0; i < V; ++i) sc[i] = scale[ch + i], sh[i] = shift[ch + i];
  for (size_t p = l.first; p < pixels; p += l.stride) {
    float v[V];
    load_f32<V>(x + p * size_t(c) + size_t(ch), v);
    for (int i = 0; i < V; ++i) {
      v[i] = fmaf(v[i], sc[i], sh[i]);  // ReluMask recomputes this
      if (relu && !(v[i] > 0.0f)) v[i] = 0.0f;
    }
    store_f32<V>(y + p * size_t(ys) + size_t(ch), v);
  }
}

template <class T, int V>
__global__ void dx_kernel(size_t pixels, int c, int cw, const T* dy, int dys, ReluMask<T, V> mask, const T* x,
                          const float* mean, const float* invstd, const float* k, const float* mean_g,
                          const float* mean_gx, T* dx) {
  const ChannelLane l(cw);
  if (!l.active(c / V)) return;
  const int ch = l.ch * V;
  float mu[V], is[V], kc[V], mg[V], mgx[V], sc[V], sh[V];
  for (int i = 0; i < V; ++i)
    mu[i] = mean[ch + i], is[i] = invstd[ch + i], kc[i] = k[ch + i], mg[i] = mean_g[ch + i], mgx[i] = mean_gx[ch + i];
  mask.factors(ch, sc, sh);
  for (size_t p = l.first; p < pixels; p += l.stride) {
    float xv[V], g[V], out[V];
    load_f32<V>(x + p * size_t(c) + size_t(ch), xv);
    load_f32<V>(dy + p * size_t(dys) + size_t(ch), g);
    mask.apply(p, ch, xv, sc, sh, g);
    for (int i = 0; i < V; ++i) {
      const float xhat = (xv[i] - mu[i]) * is[i];
      out[i] = kc[i] * (g[i] - mg[i] - xhat * mgx[i]);
    }
    store_f32<V>(dx + p * size_t(c) + size_t(ch), out);
  }
}

unsigned stats_threads(int c) { return unsigned(c < 1024 ? c : 1024); }

}  // namespace

size_t batchnorm_scratch_bytes(int c) { return size_t(c) * 3 * sizeof(float); }
size_t batchnorm_sums_bytes(int c) { return 16 + size_t(c) * 2 * sizeof(double); }
int batchnorm_max_channels() { return kMaxChannels; }

void batchnorm_fwd_train(FloatType t, size_t pixels, int c, double eps, double momentum, const void* x,
                         const float* gamma, const float* beta, void* y, int y_stride, float* save_mean,
                         float* save_invstd, float* running_mean, float* running_var, float* save_scale,
                         float* save_shift, bool relu, void* scratch, void* sums, cudaStream_t stream) {
  const Scratch s = carve(scratch, c);
  const bool keep = save_scale && save_shift;  // the factors where the backward finds them, else in scratch
  float* scale = keep ? save_scale : s.f0;
  float* shift = keep ? save_shift : s.f1;
  const double m = double(pixels);
  dispatch_vector(t, vector_width(t, {c, y_stride}, {x, y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const T* xt = static_cast<const T*>(x);
    const TrainStats stats{m,           eps,          momentum,    gamma, beta, save_mean,
                           save_invstd, running_mean, running_var, scale, shift};
    channel_sums<V>(pixels, c, SumXAndSquares<T, V>{xt, c}, carve_sums(sums, c), stats, stream);
    const ChannelTiling et = channel_tiling(pixels, c / V, kElementwiseBlocks);
    launch(normalize_kernel<T, V>, et.grid, kThreads, 0, stream, pixels, c, et.cw, xt, scale, shift, relu,
           static_cast<T*>(y), y_stride);
  });
  check_launch("batchnorm_fwd_train");
}

void batchnorm_fwd_infer(FloatType t, size_t pixels, int c, double eps, const void* x, const float* gamma,
                         const float* beta, const float* running_mean, const float* running_var, void* y, bool relu,
                         void* scratch, cudaStream_t stream) {
  const Scratch s = carve(scratch, c);
  dispatch_vector(t, vector_width(t, {c}, {x, y}), [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    launch(infer_stats_kernel, 1, stats_threads(c), 0, stream, c, eps, gamma, beta, running_mean, running_var, s.f0,
           s.f1);
    const ChannelTiling et = channel_tiling(pixels, c / V, kElementwiseBlocks);
    launch(normalize_kernel<T, V>, et.grid, kThreads, 0, stream, pixels, c, et.cw, static_cast<const T*>(x), s.f0,
           s.f1, relu, static_cast<T*>(y), c);
  });
  check_launch("batchnorm_fwd_infer");
}

void batchnorm_bwd(FloatType t, size_t pixels, int c, const void* dy, int dy_stride, const void* relu_y,
                   int relu_y_stride, const void* x, const float* save_mean, const float* save_invstd,
                   const float* save_scale, const float* save_shift, const float* gamma, void* dx, float* dgamma,
                   float* dbeta, void* scratch, void* sums, cudaStream_t stream) {
  const Scratch s = carve(scratch, c);
  const bool recompute = relu_y && save_scale && save_shift;
  const void* mask_y = recompute ? nullptr : relu_y;
  const int v = vector_width(t, {c, dy_stride, mask_y ? relu_y_stride : 0}, {dy, x, dx, mask_y});
  dispatch_vector(t, v, [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const T *dyt = static_cast<const T*>(dy), *xt = static_cast<const T*>(x);
    const ReluMask<T, V> mask{static_cast<const T*>(mask_y), relu_y_stride, recompute ? save_scale : nullptr,
                              recompute ? save_shift : nullptr};
    const BwdStats stats{double(pixels), gamma, save_invstd, dgamma, dbeta, s.f0, s.f1, s.f2};
    channel_sums<V>(pixels, c, SumGradients<T, V>{dyt, xt, c, dy_stride, mask, save_mean, save_invstd},
                    carve_sums(sums, c), stats, stream);
    const ChannelTiling et = channel_tiling(pixels, c / V, kElementwiseBlocks);
    launch(dx_kernel<T, V>, et.grid, kThreads, 0, stream, pixels, c, et.cw, dyt, dy_stride, mask, xt, save_mean,
           save_invstd, s.f0, s.f1, s.f2, static_cast<T*>(dx));
  });
  check_launch("batchnorm_bwd");
}

}  // namespace mixseg::cuda
