// Reference segmentation loss on logits: w_bce * BCE + w_dice * soft Dice.
//   p = sigmoid(z);  BCE = mean(max(z,0) - z t + log(1 + exp(-|z|)))   (stable)
//   Dice = 1 - (2 sum(p t) + s) / (sum p + sum t + s),  s = 1, pooled over
//   the whole batch (all pixels of all images and classes).
// Everything is computed in double from the widened logits, whatever T is:
// the loss and its reductions are never 16-bit. The gradient w.r.t. the
// logits is multiplied by grad_scale (the loss scale) before it is rounded to
// T, which is what keeps small gradients out of f16's subnormal range.
#pragma once
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

}  // namespace mixseg
