// Fast CPU BatchNorm kernels (see batchnorm.h).
#include "cpu/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/threads.h"
#include "cpu/f32_view.h"
#include "cpu/f32x8.h"

namespace mixseg {

namespace {

constexpr size_t kBlock = 64;  // pixels per block

// For each fixed chunk of pixels: calls body(first_pixel, count, partial)
// per block, where partial (n_sums * C doubles) belongs to the chunk; returns
// the per-channel totals of every sum, chunks added in order.
template <class F>
std::vector<double> chunked_sums(const BatchNormShape& s, int n_sums, F body) {
  const size_t width = size_t(n_sums) * s.c;
  std::vector<double> part(kReduceChunks * width, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < kReduceChunks; ++i) {
    size_t b, e;
    chunk_range(s.pixels, i, b, e);
    for (size_t p = b; p < e; p += kBlock) body(p, std::min(kBlock, e - p), part.data() + i * width);
  }
  std::vector<double> total(width, 0.0);
  for (int i = 0; i < kReduceChunks; ++i)
    for (size_t k = 0; k < width; ++k) total[k] += part[i * width + k];
  return total;
}

// Calls f(std::integral_constant<size_t, C>) for the channel counts the
// U-Net has (8 to 1024, powers of two), f(std::integral_constant<size_t, 0>)
// otherwise: the block kernels below take the first to the 8-channel vector
// path, the second to the generic loops over widened f32 blocks.
template <class F>
void with_channel_count(size_t c, F f) {
  switch (c) {
    case 8: return f(std::integral_constant<size_t, 8>{});
    case 16: return f(std::integral_constant<size_t, 16>{});
    case 32: return f(std::integral_constant<size_t, 32>{});
    case 64: return f(std::integral_constant<size_t, 64>{});
    case 128: return f(std::integral_constant<size_t, 128>{});
    case 256: return f(std::integral_constant<size_t, 256>{});
    case 512: return f(std::integral_constant<size_t, 512>{});
    case 1024: return f(std::integral_constant<size_t, 1024>{});
    default: return f(std::integral_constant<size_t, 0>{});
  }
}

// The block kernels: `pixels` pixels of C channels. Where C is a
// compile-time multiple of 8 (CN, from with_channel_count) they read and
// write the storage type T directly, 8 channels to a vector (cpu/f32x8.h:
// the conversions fold into the loads and stores); otherwise (CN = 0) they
// run on f32 blocks widened by the caller (cpu/f32_view.h).

// Per channel: sum of x and of x^2.
template <size_t CN, class T>
void sums_x_xx_block(const T* x, size_t pixels, size_t C, float* sum, float* sum_sq) {
  if constexpr (CN == 0) {
    for (size_t i = 0; i < pixels * C; i += C)
      for (size_t c = 0; c < C; ++c) sum[c] += x[i + c], sum_sq[c] += x[i + c] * x[i + c];
  } else {
    static_assert(CN % 8 == 0);
    constexpr size_t V = CN / 8;
    f32x8 a[V] = {}, b[V] = {};  // registers up to 32 channels
    for (size_t i = 0; i < pixels * CN; i += CN)
      for (size_t j = 0; j < V; ++j) {
        const f32x8 v = load8(x + i + 8 * j);
        a[j] += v;
        b[j] += v * v;
      }
    for (size_t j = 0; j < V; ++j)
      for (size_t l = 0; l < 8; ++l) sum[8 * j + l] += a[j][l], sum_sq[8 * j + l] += b[j][l];
  }
}

// y = x * scale + shift per channel, then with relu std::max(t, 0.0f)
// (NaN and -0 stay, as in the generic loop); y's pixels ys values apart.
template <size_t CN, class T>
void normalize_block(const T* x, size_t pixels, size_t C, const float* scale, const float* shift, bool relu, T* y,
                     size_t ys) {
  if constexpr (CN == 0) {
    for (size_t p = 0; p < pixels; ++p)
      for (size_t c = 0; c < C; ++c) {
        const float t = x[p * C + c] * scale[c] + shift[c];
        y[p * ys + c] = relu ? std::max(t, 0.0f) : t;
      }
  } else {
    const f32x8 zero = {};
    for (size_t p = 0; p < pixels; ++p)
      for (size_t j = 0; j < CN; j += 8) {
        const f32x8 t = load8(x + p * CN + j) * load8(scale + j) + load8(shift + j);
        store8(y + p * ys + j, relu ? (t < zero ? zero : t) : t);
      }
  }
}

// The backward's g at 8 channels: dy where relu_y is active (relu_active),
// else 0; dy itself without relu_y. CN > 0 only.
template <class T>
inline f32x8 masked_g8(const T* dy, const T* relu_y) {
  return relu_y ? select8(relu_active8(relu_y), load8(dy)) : load8(dy);
}

// dy and the forward's output (for the ReLU's mask; null without it) of a
// block: their pixels lie dy_stride and y_stride values apart.
template <class T>
struct Gradient {
  const T* dy;
  size_t dy_stride;
  const T* relu_y;
  size_t y_stride;
  // The same tensors from pixel p on.
  Gradient at(size_t p) const {
    return {dy + p * dy_stride, dy_stride, relu_y ? relu_y + p * y_stride : nullptr, y_stride};
  }
  f32x8 g8(size_t p, size_t j) const {
    return masked_g8(dy + p * dy_stride + j, relu_y ? relu_y + p * y_stride + j : nullptr);
  }
};

// Per channel: sum of g and of g * x (g: dy masked by the ReLU; CN = 0: g
// dense in f32, masked by the caller, and x widened).
template <size_t CN, class T>
void sums_g_gx_block(const Gradient<T>& gr, const T* x, size_t pixels, size_t C, float* sum_g, float* sum_gx) {
  if constexpr (CN == 0) {
    const T* g = gr.dy;
    for (size_t i = 0; i < pixels * C; i += C)
      for (size_t c = 0; c < C; ++c) sum_g[c] += g[i + c], sum_gx[c] += g[i + c] * x[i + c];
  } else {
    constexpr size_t V = CN / 8;
    f32x8 a[V] = {}, b[V] = {};
    for (size_t p = 0; p < pixels; ++p)
      for (size_t j = 0; j < V; ++j) {
        const f32x8 g = gr.g8(p, 8 * j);
        a[j] += g;
        b[j] += g * load8(x + p * CN + 8 * j);
      }
    for (size_t j = 0; j < V; ++j)
      for (size_t l = 0; l < 8; ++l) sum_g[8 * j + l] += a[j][l], sum_gx[8 * j + l] += b[j][l];
  }
}

// dx = k (g - mean_g - xhat mean_gxhat), xhat = (x - mean) invstd, per channel.
template <size_t CN, class T>
void batchnorm_dx_block(const Gradient<T>& gr, const T* x, size_t pixels, size_t C, const float* mean,
                        const float* invstd, const float* k, const float* mean_g, const float* mean_gxhat, T* dx) {
  if constexpr (CN == 0) {
    const T* g = gr.dy;
    for (size_t i = 0; i < pixels * C; i += C)
      for (size_t c = 0; c < C; ++c) {
        const float xhat = (x[i + c] - mean[c]) * invstd[c];
        dx[i + c] = k[c] * (g[i + c] - mean_g[c] - xhat * mean_gxhat[c]);
      }
  } else {
    for (size_t p = 0; p < pixels; ++p)
      for (size_t j = 0; j < CN; j += 8) {
        const size_t i = p * CN + j;
        const f32x8 xhat = (load8(x + i) - load8(mean + j)) * load8(invstd + j);
        store8(dx + i, load8(k + j) * (gr.g8(p, j) - load8(mean_g + j) - xhat * load8(mean_gxhat + j)));
      }
  }
}

// The ReLU-masked gradient of a block of px pixels as dense f32 (the
// generic path): dy where relu_y is active, else 0; dy itself (f32, dense,
// no ReLU) or widened into buf. Slices are first copied dense (dy_buf, y_buf).
template <class T>
Gradient<float> masked_gradient(const Gradient<T>& gr, size_t px, size_t C, std::vector<float>& buf,
                                std::vector<T>& dy_buf, std::vector<T>& y_buf) {
  const size_t n = px * C;
  const float* g = f32_in(dense_pixels(gr.dy, px, C, gr.dy_stride, dy_buf), n, buf);
  if (gr.relu_y) {
    const T* relu_y = dense_pixels(gr.relu_y, px, C, gr.y_stride, y_buf);
    buf.resize(n);
    float* __restrict out = buf.data();
    for (size_t i = 0; i < n; ++i) out[i] = relu_active(relu_y[i]) ? g[i] : 0.0f;
    g = out;
  }
  return {g, C, nullptr, C};
}

// y = x * scale + shift (then ReLU), block by block; y's pixels ys values apart.
template <class T>
void normalize(const BatchNormShape& s, const T* x, const float* scale, const float* shift, T* y, size_t ys,
               bool relu) {
  const size_t C = size_t(s.c);
  const size_t blocks = (s.pixels + kBlock - 1) / kBlock;
  with_channel_count(C, [&](auto cc) {
#pragma omp parallel
    {
      std::vector<float> buf;  // generic path, 16-bit: the widened block, normalised in place
#pragma omp for schedule(static)
      for (size_t blk = 0; blk < blocks; ++blk) {
        const size_t p0 = blk * kBlock, px = std::min(kBlock, s.pixels - p0), n = px * C;
        if constexpr (cc() != 0) {
          normalize_block<cc()>(x + p0 * C, px, C, scale, shift, relu, y + p0 * ys, ys);
        } else {
          const float* v = f32_in(x + p0 * C, n, buf);
          const auto out = f32_out_pixels(y + p0 * ys, px, C, ys, buf, false);
          normalize_block<0>(v, px, C, scale, shift, relu, out.p, out.stride);
          f32_out_pixels_done(out, y + p0 * ys, px, C, ys);
        }
      }
    }
  });
}

}  // namespace

template <class T>
void batchnorm_fwd_train_fast(const BatchNormShape& s, const T* x, const float* gamma, const float* beta, T* y,
                              size_t y_stride, float* save_mean, float* save_invstd, float* running_mean,
                              float* running_var, bool relu) {
  const size_t C = size_t(s.c);
  const std::vector<double> sums = chunked_sums(s, 2, [&](size_t p0, size_t n, double* part) {
    thread_local std::vector<float> buf, acc;
    acc.assign(2 * C, 0.0f);
    with_channel_count(C, [&](auto cc) {
      if constexpr (cc() != 0)
        sums_x_xx_block<cc()>(x + p0 * C, n, C, acc.data(), acc.data() + C);
      else
        sums_x_xx_block<0>(f32_in(x + p0 * C, n * C, buf), n, C, acc.data(), acc.data() + C);
    });
    for (size_t k = 0; k < 2 * C; ++k) part[k] += acc[k];
  });
  const double m = double(s.pixels);
  std::vector<float> scale(C), shift(C);
  for (size_t c = 0; c < C; ++c) {
    const double mean = sums[c] / m, var = std::max(0.0, sums[C + c] / m - mean * mean);
    const double invstd = 1.0 / std::sqrt(var + s.eps);
    save_mean[c] = float(mean);
    save_invstd[c] = float(invstd);
    scale[c] = float(gamma[c] * invstd);
    shift[c] = float(beta[c] - gamma[c] * invstd * mean);
    if (running_mean) running_mean[c] = float((1 - s.momentum) * running_mean[c] + s.momentum * mean);
    if (running_var)
      running_var[c] = float((1 - s.momentum) * running_var[c] + s.momentum * var * m / std::max(m - 1, 1.0));
  }
  normalize(s, x, scale.data(), shift.data(), y, y_stride, relu);
}

template <class T>
void batchnorm_fwd_infer_fast(const BatchNormShape& s, const T* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, T* y, bool relu) {
  std::vector<float> scale(s.c), shift(s.c);
  for (int c = 0; c < s.c; ++c) {
    const double invstd = 1.0 / std::sqrt(double(running_var[c]) + s.eps);
    scale[c] = float(gamma[c] * invstd);
    shift[c] = float(beta[c] - gamma[c] * invstd * running_mean[c]);
  }
  normalize(s, x, scale.data(), shift.data(), y, size_t(s.c), relu);
}

template <class T>
void batchnorm_bwd_fast(const BatchNormShape& s, const T* dy, size_t dy_stride, const T* x, const float* save_mean,
                        const float* save_invstd, const float* gamma, T* dx, float* dgamma, float* dbeta,
                        const T* relu_y, size_t y_stride) {
  const size_t C = size_t(s.c);
  const Gradient<T> gr{dy, dy_stride, relu_y, y_stride};
  // g = dy masked by ReLU (the forward output's zeros); sums of g and of g * x per channel.
  const std::vector<double> sums = chunked_sums(s, 2, [&](size_t p0, size_t n, double* part) {
    thread_local std::vector<float> g_buf, x_buf, acc;
    thread_local std::vector<T> dy_buf, y_buf;
    acc.assign(2 * C, 0.0f);
    with_channel_count(C, [&](auto cc) {
      if constexpr (cc() != 0) {
        sums_g_gx_block<cc()>(gr.at(p0), x + p0 * C, n, C, acc.data(), acc.data() + C);
      } else {
        const Gradient<float> g = masked_gradient(gr.at(p0), n, C, g_buf, dy_buf, y_buf);
        sums_g_gx_block<0>(g, f32_in(x + p0 * C, n * C, x_buf), n, C, acc.data(), acc.data() + C);
      }
    });
    for (size_t k = 0; k < 2 * C; ++k) part[k] += acc[k];
  });
  const double m = double(s.pixels);
  std::vector<float> k(C), mean_g(C), mean_gxhat(C);
  for (size_t c = 0; c < C; ++c) {
    const double sum_gxhat = (sums[C + c] - save_mean[c] * sums[c]) * save_invstd[c];
    dbeta[c] = float(sums[c]);
    dgamma[c] = float(sum_gxhat);
    k[c] = gamma[c] * save_invstd[c];
    mean_g[c] = float(sums[c] / m);
    mean_gxhat[c] = float(sum_gxhat / m);
  }
  const size_t blocks = (s.pixels + kBlock - 1) / kBlock;
  const float *mu = save_mean, *is = save_invstd, *kc = k.data(), *mg = mean_g.data(), *mgx = mean_gxhat.data();
  with_channel_count(C, [&](auto cc) {
#pragma omp parallel
    {
      std::vector<float> g_buf, x_buf, out_buf;  // the generic path's widened blocks
      std::vector<T> dy_buf, y_buf;              // and its slices made dense
#pragma omp for schedule(static)
      for (size_t blk = 0; blk < blocks; ++blk) {
        const size_t p0 = blk * kBlock, px = std::min(kBlock, s.pixels - p0), n = px * C;
        if constexpr (cc() != 0) {
          batchnorm_dx_block<cc()>(gr.at(p0), x + p0 * C, px, C, mu, is, kc, mg, mgx, dx + p0 * C);
        } else {
          const Gradient<float> g = masked_gradient(gr.at(p0), px, C, g_buf, dy_buf, y_buf);
          float* out = f32_out(dx + p0 * C, n, out_buf);
          batchnorm_dx_block<0>(g, f32_in(x + p0 * C, n, x_buf), px, C, mu, is, kc, mg, mgx, out);
          f32_out_done(out, dx + p0 * C, n);
        }
      }
    }
  });
}

#define INSTANTIATE(T)                                                                                                 \
  template void batchnorm_fwd_train_fast<T>(const BatchNormShape&, const T*, const float*, const float*, T*, size_t,   \
                                            float*, float*, float*, float*, bool);                                     \
  template void batchnorm_fwd_infer_fast<T>(const BatchNormShape&, const T*, const float*, const float*, const float*, \
                                            const float*, T*, bool);                                                   \
  template void batchnorm_bwd_fast<T>(const BatchNormShape&, const T*, size_t, const T*, const float*, const float*,   \
                                      const float*, T*, float*, float*, const T*, size_t);
INSTANTIATE(float)
INSTANTIATE(f16)
INSTANTIATE(bf16)

}  // namespace mixseg
