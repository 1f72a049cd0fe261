// Reference segmentation loss on logits: w_bce * BCE + w_dice * soft Dice.
//   p = sigmoid(z);  BCE = mean(max(z,0) - z t + log(1 + exp(-|z|)))   (stable)
//   Dice = 1 - (2 sum(p t) + s) / (sum p + sum t + s),  s = 1, pooled over
//   the whole batch (all pixels of all images and classes).
// Everything is computed in double from the widened logits, whatever T is:
// the loss and its reductions are never 16-bit. The gradient w.r.t. the
// logits is multiplied by grad_scale (the loss scale) before it is rounded to
// T, which is what keeps small gradients out of f16's subnormal range.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ops/kernel_types.h"

namespace mixseg {

struct LossWeights {
  double bce = 1.0;
  double dice = 1.0;
};

struct LossValue {
  double total = 0, bce = 0, dice = 0;
};

inline constexpr double kDiceSmooth = 1.0;

// target: 0 or 1 per element. dlogits may be null (loss only).
template <class T>
LossValue bce_dice_ref(size_t n, const T* logits, const uint8_t* target, LossWeights w, double grad_scale, T* dlogits);

// Its two passes (what the backends' loss ops run): the four sums {BCE
// terms, sum p, sum t, sum p t} in fixed chunks (the same for any thread
// count), and, from soft Dice's denominator and numerator (loss_finish in
// core/step_control.h), the gradient times grad_scale.
template <class T>
void loss_sums_ref(size_t n, const T* logits, const uint8_t* target, double sums[4]);
template <class T>
void loss_grad_ref(size_t n, const T* logits, const uint8_t* target, double den, double num, LossWeights w,
                   double grad_scale, T* dlogits);

// The per-element arithmetic of both passes, in double (the fast backend's
// tails run it too).
// The stable sigmoid, 1 / (1 + exp(-z)) for z >= 0 and exp(z) / (1 + exp(z))
// below, from e = exp(-|z|), which is exp(-z) and exp(z) there: one exp per
// element serves the sigmoid and BCE's log1p(exp(-|z|)) alike.
inline double sigmoid_from(double z, double e) { return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e); }
// Adds logit z's {BCE term, p, t, p t} (t: 0 or 1) to acc.
inline void loss_sums_add(double z, double t, double acc[4]) {
  const double ez = std::exp(-std::fabs(z)), p = sigmoid_from(z, ez);
  acc[0] += std::max(z, 0.0) - z * t + std::log1p(ez);
  acc[1] += p;
  acc[2] += t;
  acc[3] += p * t;
}
// The four sums from the chunks' partial sums part[chunk * 4 + j], added in
// chunk order (the same total for any thread count).
inline void loss_sums_of_chunks(const double* part, int chunks, double sums[4]) {
  for (int j = 0; j < 4; ++j) sums[j] = 0;
  for (int i = 0; i < chunks; ++i)
    for (int j = 0; j < 4; ++j) sums[j] += part[size_t(i) * 4 + size_t(j)];
}
// The loss's gradient at logit z times grad_scale, for n elements and
// Dice's den and num (inv_den2 = 1 / den^2):
// d dice / d p = -(2 t den - num) / den^2;  d p / d z = p (1 - p).
inline double loss_grad_at(double z, double t, double n, double den, double num, double inv_den2, LossWeights w,
                           double grad_scale) {
  const double p = sigmoid_from(z, std::exp(-std::fabs(z)));
  const double g_bce = (p - t) / n;
  const double g_dice = -(2 * t * den - num) * inv_den2 * p * (1 - p);
  return grad_scale * (w.bce * g_bce + w.dice * g_dice);
}

}  // namespace mixseg
