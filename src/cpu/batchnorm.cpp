// Fast CPU BatchNorm kernels (see batchnorm.h).
#include "cpu/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"
#include "cpu/f32_view.h"

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

// y = x * scale + shift (then ReLU), block by block.
template <class T>
void normalize(const BatchNormShape& s, const T* x, const float* scale, const float* shift, T* y, bool relu) {
  const int C = s.c;
  const size_t blocks = (s.pixels + kBlock - 1) / kBlock;
#pragma omp parallel
  {
    std::vector<float> buf;  // 16-bit: the widened block, normalised in place (same index read, then written)
#pragma omp for schedule(static)
    for (size_t blk = 0; blk < blocks; ++blk) {
      const size_t p0 = blk * kBlock, n = std::min(kBlock, s.pixels - p0) * C;
      const float* v = f32_in(x + p0 * C, n, buf);
      float* out = f32_out(y + p0 * C, n, buf);
      for (size_t i = 0; i < n; i += C)
        for (int c = 0; c < C; ++c) {
          const float t = v[i + c] * scale[c] + shift[c];
          out[i + c] = relu ? std::max(t, 0.0f) : t;
        }
      f32_out_done(out, y + p0 * C, n);
    }
  }
}

}  // namespace

template <class T>
void batchnorm_fwd_train_fast(const BatchNormShape& s, const T* x, const float* gamma, const float* beta, T* y,
                              float* save_mean, float* save_invstd, float* running_mean, float* running_var,
                              bool relu) {
  const int C = s.c;
  const std::vector<double> sums = chunked_sums(s, 2, [&](size_t p0, size_t n, double* part) {
    thread_local std::vector<float> buf, acc;
    acc.assign(2 * size_t(C), 0.0f);
    const float* v = f32_in(x + p0 * C, n * C, buf);
    for (size_t i = 0; i < n * C; i += C)
      for (int c = 0; c < C; ++c) {
        acc[c] += v[i + c];
        acc[C + c] += v[i + c] * v[i + c];
      }
    for (int k = 0; k < 2 * C; ++k) part[k] += acc[k];
  });
  const double m = double(s.pixels);
  std::vector<float> scale(C), shift(C);
  for (int c = 0; c < C; ++c) {
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
  normalize(s, x, scale.data(), shift.data(), y, relu);
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
  normalize(s, x, scale.data(), shift.data(), y, relu);
}

template <class T>
void batchnorm_bwd_fast(const BatchNormShape& s, const T* dy, const T* x, const float* save_mean,
                        const float* save_invstd, const float* gamma, T* dx, float* dgamma, float* dbeta,
                        const T* relu_y) {
  const int C = s.c;
  // g = dy masked by ReLU (the forward output's zeros);  sums of g and of g * x per channel.
  auto masked = [&](size_t i, float g) { return relu_y && !relu_active(relu_y[i]) ? 0.0f : g; };
  const std::vector<double> sums = chunked_sums(s, 2, [&](size_t p0, size_t n, double* part) {
    thread_local std::vector<float> g_buf, x_buf, acc;
    acc.assign(2 * size_t(C), 0.0f);
    const float* g = f32_in(dy + p0 * C, n * C, g_buf);
    const float* v = f32_in(x + p0 * C, n * C, x_buf);
    for (size_t i = 0; i < n * C; i += C)
      for (int c = 0; c < C; ++c) {
        const float gi = masked(p0 * C + i + c, g[i + c]);
        acc[c] += gi;
        acc[C + c] += gi * v[i + c];
      }
    for (int k = 0; k < 2 * C; ++k) part[k] += acc[k];
  });
  const double m = double(s.pixels);
  std::vector<float> k(C), mean_g(C), mean_gxhat(C);
  for (int c = 0; c < C; ++c) {
    const double sum_gxhat = (sums[C + c] - save_mean[c] * sums[c]) * save_invstd[c];
    dbeta[c] = float(sums[c]);
    dgamma[c] = float(sum_gxhat);
    k[c] = gamma[c] * save_invstd[c];
    mean_g[c] = float(sums[c] / m);
    mean_gxhat[c] = float(sum_gxhat / m);
  }
  const size_t blocks = (s.pixels + kBlock - 1) / kBlock;
#pragma omp parallel
  {
    std::vector<float> g_buf, x_buf;  // 16-bit: dx is computed into x's widened block, in place
#pragma omp for schedule(static)
    for (size_t blk = 0; blk < blocks; ++blk) {
      const size_t p0 = blk * kBlock, n = std::min(kBlock, s.pixels - p0) * C;
      const float* g = f32_in(dy + p0 * C, n, g_buf);
      const float* v = f32_in(x + p0 * C, n, x_buf);
      float* out = f32_out(dx + p0 * C, n, x_buf);
      for (size_t i = 0; i < n; i += C)
        for (int c = 0; c < C; ++c) {
          const float xhat = (v[i + c] - save_mean[c]) * save_invstd[c];
          out[i + c] = k[c] * (masked(p0 * C + i + c, g[i + c]) - mean_g[c] - xhat * mean_gxhat[c]);
        }
      f32_out_done(out, dx + p0 * C, n);
    }
  }
}

#define INSTANTIATE(T)                                                                                                 \
  template void batchnorm_fwd_train_fast<T>(const BatchNormShape&, const T*, const float*, const float*, T*, float*,   \
                                            float*, float*, float*, bool);                                             \
  template void batchnorm_fwd_infer_fast<T>(const BatchNormShape&, const T*, const float*, const float*, const float*, \
                                            const float*, T*, bool);                                                   \
  template void batchnorm_bwd_fast<T>(const BatchNormShape&, const T*, const T*, const float*, const float*,           \
                                      const float*, T*, float*, float*, const T*);
INSTANTIATE(float)
INSTANTIATE(f16)
INSTANTIATE(bf16)

}  // namespace mixseg
