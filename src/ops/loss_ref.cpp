// Reference BCE + soft Dice loss (see loss_ref.h).
#include "ops/loss_ref.h"

#include <cmath>
#include <vector>

#include "core/threads.h"

namespace mixseg {

namespace {
inline double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }
}  // namespace

template <class T>
LossValue bce_dice_ref(size_t n, const T* logits, const uint8_t* target, LossWeights w, double grad_scale, T* dlogits) {
  // Fixed-chunk sums (deterministic for any thread count): bce, sum p, sum t, sum p t.
  std::vector<double> part(size_t(kReduceChunks) * 4, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < kReduceChunks; ++i) {
    size_t b, e;
    chunk_range(n, i, b, e);
    double* acc = part.data() + size_t(i) * 4;
    for (size_t k = b; k < e; ++k) {
      const double z = double(load(logits[k])), t = target[k] ? 1.0 : 0.0;
      const double p = sigmoid(z);
      acc[0] += std::max(z, 0.0) - z * t + std::log1p(std::exp(-std::fabs(z)));
      acc[1] += p;
      acc[2] += t;
      acc[3] += p * t;
    }
  }
  double bce = 0, sp = 0, st = 0, spt = 0;
  for (int i = 0; i < kReduceChunks; ++i) {
    bce += part[size_t(i) * 4 + 0];
    sp += part[size_t(i) * 4 + 1];
    st += part[size_t(i) * 4 + 2];
    spt += part[size_t(i) * 4 + 3];
  }
  const double m = double(n), den = sp + st + kDiceSmooth, num = 2 * spt + kDiceSmooth;
  LossValue v;
  v.bce = bce / m;
  v.dice = 1.0 - num / den;
  v.total = w.bce * v.bce + w.dice * v.dice;
  if (!dlogits) return v;
  // d dice / d p_k = -(2 t_k den - num) / den^2;  d p / d z = p (1 - p)
  const double inv_den2 = 1.0 / (den * den);
#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < n; ++k) {
    const double z = double(load(logits[k])), t = target[k] ? 1.0 : 0.0;
    const double p = sigmoid(z);
    const double g_bce = (p - t) / m;
    const double g_dice = -(2 * t * den - num) * inv_den2 * p * (1 - p);
    dlogits[k] = store<T>(acc_t<T>(grad_scale * (w.bce * g_bce + w.dice * g_dice)));
  }
  return v;
}

#define INSTANTIATE(T) \
  template LossValue bce_dice_ref<T>(size_t, const T*, const uint8_t*, LossWeights, double, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
