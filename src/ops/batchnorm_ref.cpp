// Reference BatchNorm kernels (see batchnorm_ref.h).
#include "ops/batchnorm_ref.h"

#include <cmath>
#include <vector>

#include "core/threads.h"

namespace mixseg {

namespace {

// Per-channel sums of f(pixel, channel) in double: kReduceChunks fixed chunks
// of pixels summed in parallel, then the partials added in chunk order.
template <class F>
std::vector<double> channel_sums(size_t pixels, int c, F f) {
  std::vector<double> part(size_t(kReduceChunks) * c, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < kReduceChunks; ++i) {
    size_t b, e;
    chunk_range(pixels, i, b, e);
    double* acc = part.data() + size_t(i) * c;
    for (size_t p = b; p < e; ++p)
      for (int ch = 0; ch < c; ++ch) acc[ch] += f(p, ch);
  }
  std::vector<double> sum(c, 0.0);
  for (int i = 0; i < kReduceChunks; ++i)
    for (int ch = 0; ch < c; ++ch) sum[ch] += part[size_t(i) * c + ch];
  return sum;
}

// y = x * scale + shift per channel, then max(., 0) when relu; rounded once.
template <class T>
void normalize(const BatchNormShape& s, const T* x, const acc_t<T>* scale, const acc_t<T>* shift, T* y, bool relu) {
  const int C = s.c;
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < s.pixels; ++p)
    for (int c = 0; c < C; ++c) {
      const acc_t<T> v = load(x[p * C + c]) * scale[c] + shift[c];
      y[p * C + c] = store<T>(relu && !(v > 0) ? acc_t<T>(0) : v);
    }
}

}  // namespace

template <class T>
void batchnorm_fwd_train_ref(const BatchNormShape& s, const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, T* y,
                             acc_t<T>* save_mean, acc_t<T>* save_invstd, acc_t<T>* running_mean,
                             acc_t<T>* running_var, bool relu) {
  using A = acc_t<T>;
  const int C = s.c;
  const double m = double(s.pixels);
  std::vector<double> mean = channel_sums(s.pixels, C, [&](size_t p, int c) { return double(load(x[p * C + c])); });
  for (auto& v : mean) v /= m;
  std::vector<double> var = channel_sums(s.pixels, C, [&](size_t p, int c) {
    const double d = double(load(x[p * C + c])) - mean[c];
    return d * d;
  });
  std::vector<A> scale(C), shift(C);
  for (int c = 0; c < C; ++c) {
    var[c] /= m;
    const double invstd = 1.0 / std::sqrt(var[c] + s.eps);
    save_mean[c] = A(mean[c]);
    save_invstd[c] = A(invstd);
    scale[c] = A(gamma[c] * invstd);
    shift[c] = A(beta[c] - gamma[c] * invstd * mean[c]);
    if (running_mean) running_mean[c] = A((1 - s.momentum) * running_mean[c] + s.momentum * mean[c]);
    if (running_var)
      running_var[c] = A((1 - s.momentum) * running_var[c] + s.momentum * var[c] * m / std::max(m - 1, 1.0));
  }
  normalize(s, x, scale.data(), shift.data(), y, relu);
}

template <class T>
void batchnorm_fwd_infer_ref(const BatchNormShape& s, const T* x, const acc_t<T>* gamma, const acc_t<T>* beta,
                             const acc_t<T>* running_mean, const acc_t<T>* running_var, T* y, bool relu) {
  using A = acc_t<T>;
  const int C = s.c;
  std::vector<A> scale(C), shift(C);
  for (int c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(double(running_var[c]) + s.eps);
    scale[c] = A(gamma[c] * invstd);
    shift[c] = A(beta[c] - gamma[c] * invstd * running_mean[c]);
  }
  normalize(s, x, scale.data(), shift.data(), y, relu);
}

template <class T>
void batchnorm_bwd_ref(const BatchNormShape& s, const T* dy, const T* x, const acc_t<T>* save_mean,
                       const acc_t<T>* save_invstd, const acc_t<T>* gamma, T* dx, acc_t<T>* dgamma, acc_t<T>* dbeta,
                       const T* relu_y) {
  using A = acc_t<T>;
  const int C = s.c;
  const double m = double(s.pixels);
  // The gradient reaching BatchNorm's output: dy, masked by ReLU when fused.
  auto grad = [&](size_t i) { return relu_y && !relu_active(relu_y[i]) ? A(0) : load(dy[i]); };
  // xhat = (x - mean) * invstd;  dbeta = sum dy;  dgamma = sum dy * xhat
  // dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma)
  std::vector<double> sum_dy = channel_sums(s.pixels, C, [&](size_t p, int c) { return double(grad(p * C + c)); });
  std::vector<double> sum_dy_xhat = channel_sums(s.pixels, C, [&](size_t p, int c) {
    return double(grad(p * C + c)) * (double(load(x[p * C + c])) - save_mean[c]) * save_invstd[c];
  });
  std::vector<A> k(C), mean_dy(C), mean_dy_xhat(C);
  for (int c = 0; c < C; ++c) {
    dbeta[c] = A(sum_dy[c]);
    dgamma[c] = A(sum_dy_xhat[c]);
    k[c] = A(gamma[c] * save_invstd[c]);
    mean_dy[c] = A(sum_dy[c] / m);
    mean_dy_xhat[c] = A(sum_dy_xhat[c] / m);
  }
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < s.pixels; ++p)
    for (int c = 0; c < C; ++c) {
      const A xhat = (load(x[p * C + c]) - save_mean[c]) * save_invstd[c];
      dx[p * C + c] = store<T>(k[c] * (grad(p * C + c) - mean_dy[c] - xhat * mean_dy_xhat[c]));
    }
}

#define INSTANTIATE(T)                                                                                           \
  template void batchnorm_fwd_train_ref<T>(const BatchNormShape&, const T*, const acc_t<T>*, const acc_t<T>*, T*, \
                                           acc_t<T>*, acc_t<T>*, acc_t<T>*, acc_t<T>*, bool);                    \
  template void batchnorm_fwd_infer_ref<T>(const BatchNormShape&, const T*, const acc_t<T>*, const acc_t<T>*,    \
                                           const acc_t<T>*, const acc_t<T>*, T*, bool);                          \
  template void batchnorm_bwd_ref<T>(const BatchNormShape&, const T*, const T*, const acc_t<T>*, const acc_t<T>*, \
                                     const acc_t<T>*, T*, acc_t<T>*, acc_t<T>*, const T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
