// Reference BCE + soft Dice loss (see loss_ref.h).
#include "ops/loss_ref.h"

#include <cmath>
#include <vector>

#include "core/step_control.h"
#include "core/threads.h"

namespace mixseg {

namespace {
// The stable sigmoid, 1 / (1 + exp(-z)) for z >= 0 and exp(z) / (1 + exp(z))
// below, from e = exp(-|z|), which is exp(-z) and exp(z) there: one exp per
// element serves the sigmoid and BCE's log1p(exp(-|z|)) alike.
inline double sigmoid_from(double z, double e) { return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e); }
}  // namespace

template <class T>
void loss_sums_ref(size_t n, const T* logits, const uint8_t* target, double sums[4]) {
  std::vector<double> part(size_t(kReduceChunks) * 4, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < kReduceChunks; ++i) {
    size_t b, e;
    chunk_range(n, i, b, e);
    double* acc = part.data() + size_t(i) * 4;
    for (size_t k = b; k < e; ++k) {
      const double z = double(load(logits[k])), t = target[k] ? 1.0 : 0.0, ez = std::exp(-std::fabs(z));
      const double p = sigmoid_from(z, ez);
      acc[0] += std::max(z, 0.0) - z * t + std::log1p(ez);
      acc[1] += p;
      acc[2] += t;
      acc[3] += p * t;
    }
  }
  for (int j = 0; j < 4; ++j) sums[j] = 0;
  for (int i = 0; i < kReduceChunks; ++i)
    for (int j = 0; j < 4; ++j) sums[j] += part[size_t(i) * 4 + size_t(j)];
}

template <class T>
void loss_grad_ref(size_t n, const T* logits, const uint8_t* target, double den, double num, LossWeights w,
                   double grad_scale, T* dlogits) {
  // d dice / d p_k = -(2 t_k den - num) / den^2;  d p / d z = p (1 - p)
  const double m = double(n), inv_den2 = 1.0 / (den * den);
#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < n; ++k) {
    const double z = double(load(logits[k])), t = target[k] ? 1.0 : 0.0;
    const double p = sigmoid_from(z, std::exp(-std::fabs(z)));
    const double g_bce = (p - t) / m;
    const double g_dice = -(2 * t * den - num) * inv_den2 * p * (1 - p);
    dlogits[k] = store<T>(acc_t<T>(grad_scale * (w.bce * g_bce + w.dice * g_dice)));
  }
}

template <class T>
LossValue bce_dice_ref(size_t n, const T* logits, const uint8_t* target, LossWeights w, double grad_scale, T* dlogits) {
  StepControl c;
  loss_sums_ref(n, logits, target, c.loss_sums);
  loss_finish(c, double(n), w.bce, w.dice, kDiceSmooth);
  if (dlogits) loss_grad_ref(n, logits, target, c.loss_den, c.loss_num, w, grad_scale, dlogits);
  return {c.loss_total, c.loss_bce, c.loss_dice};
}

#define INSTANTIATE(T)                                                                                     \
  template LossValue bce_dice_ref<T>(size_t, const T*, const uint8_t*, LossWeights, double, T*);           \
  template void loss_sums_ref<T>(size_t, const T*, const uint8_t*, double[4]);                             \
  template void loss_grad_ref<T>(size_t, const T*, const uint8_t*, double, double, LossWeights, double, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
