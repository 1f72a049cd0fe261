// Reference BCE + soft Dice loss (see loss_ref.h).
#include "ops/loss_ref.h"

#include <cmath>
#include <vector>

#include "core/step_control.h"
#include "core/threads.h"

namespace mixseg {

template <class T>
void loss_sums_ref(size_t n, const T* logits, const uint8_t* target, double sums[4]) {
  std::vector<double> part(size_t(kReduceChunks) * 4, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < kReduceChunks; ++i) {
    size_t b, e;
    chunk_range(n, i, b, e);
    double* acc = part.data() + size_t(i) * 4;
    for (size_t k = b; k < e; ++k) loss_sums_add(double(load(logits[k])), target[k] ? 1.0 : 0.0, acc);
  }
  loss_sums_of_chunks(part.data(), kReduceChunks, sums);
}

template <class T>
void loss_grad_ref(size_t n, const T* logits, const uint8_t* target, double den, double num, LossWeights w,
                   double grad_scale, T* dlogits) {
  const double m = double(n), inv_den2 = 1.0 / (den * den);
#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < n; ++k)
    dlogits[k] = store<T>(
        acc_t<T>(loss_grad_at(double(load(logits[k])), target[k] ? 1.0 : 0.0, m, den, num, inv_den2, w, grad_scale)));
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
