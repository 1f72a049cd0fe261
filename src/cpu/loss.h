// Fast CPU segmentation loss: the reference's two passes (ops/loss_ref.h,
// the same formulas in double) with exp and log1p four elements at a time
// from glibc's vector math library (libmvec's AVX2 variants, within 4 ulp of
// the scalar functions) where the build has it, the reference elsewhere.
// The sums are taken in the reference's fixed chunks, each in four lanes
// added in order: the same for any thread count, and within a few ulp of the
// reference's (the backends' loss test holds the total to 1e-9).
#pragma once
#include "ops/loss_ref.h"

namespace mixseg {

template <class T>
void loss_sums_fast(size_t n, const T* logits, const uint8_t* target, double sums[4]);
template <class T>
void loss_grad_fast(size_t n, const T* logits, const uint8_t* target, double den, double num, LossWeights w,
                    double grad_scale, T* dlogits);
// Whether the vector path is built (else the functions above are the reference's).
bool loss_fast_vectorized();

}  // namespace mixseg
