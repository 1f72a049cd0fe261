// Fast CPU segmentation loss (see loss.h).
#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"

#if defined(MIXSEG_HAVE_LIBMVEC) && defined(__AVX2__) && defined(__x86_64__)
#include <immintrin.h>
// libmvec's AVX2 ("d") variants of exp and log1p on four doubles (the x86-64
// vector function ABI names; glibc 2.35 and later).
extern "C" __m256d _ZGVdN4v_exp(__m256d);
extern "C" __m256d _ZGVdN4v_log1p(__m256d);
#define MIXSEG_LOSS_VECTOR 1
#endif

namespace mixseg {

#ifdef MIXSEG_LOSS_VECTOR

bool loss_fast_vectorized() { return true; }

namespace {

template <class T>
__m256d logits4(const T* z) {
  alignas(32) double v[4];
  for (int i = 0; i < 4; ++i) v[i] = double(load(z[i]));
  return _mm256_load_pd(v);
}

__m256d targets4(const uint8_t* t) {
  alignas(32) double v[4];
  for (int i = 0; i < 4; ++i) v[i] = t[i] ? 1.0 : 0.0;
  return _mm256_load_pd(v);
}

// e = exp(-|z|) and the stable sigmoid from it, as sigmoid_from
// (ops/loss_ref.h): 1 / (1 + e) for z >= 0, e / (1 + e) below.
void sigmoid4(__m256d z, __m256d& e, __m256d& p) {
  const __m256d sign = _mm256_set1_pd(-0.0), one = _mm256_set1_pd(1.0);
  e = _ZGVdN4v_exp(_mm256_or_pd(z, sign));  // -|z|
  const __m256d d = _mm256_add_pd(one, e);
  p = _mm256_blendv_pd(_mm256_div_pd(e, d), _mm256_div_pd(one, d), _mm256_cmp_pd(z, _mm256_setzero_pd(), _CMP_GE_OQ));
}

}  // namespace

template <class T>
void loss_sums_fast(size_t n, const T* logits, const uint8_t* target, double sums[4]) {
  std::vector<double> part(size_t(kReduceChunks) * 4, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < kReduceChunks; ++i) {
    size_t b, e;
    chunk_range(n, i, b, e);
    __m256d bce = _mm256_setzero_pd(), sp = bce, st = bce, spt = bce;
    size_t k = b;
    for (; k + 4 <= e; k += 4) {
      const __m256d z = logits4(logits + k), t = targets4(target + k);
      __m256d ez, p;
      sigmoid4(z, ez, p);
      // max(z, 0) - z t + log1p(e), in the reference's order
      const __m256d term = _mm256_sub_pd(_mm256_max_pd(z, _mm256_setzero_pd()), _mm256_mul_pd(z, t));
      bce = _mm256_add_pd(bce, _mm256_add_pd(term, _ZGVdN4v_log1p(ez)));
      sp = _mm256_add_pd(sp, p);
      st = _mm256_add_pd(st, t);
      spt = _mm256_add_pd(spt, _mm256_mul_pd(p, t));
    }
    double* acc = part.data() + size_t(i) * 4;
    alignas(32) double lanes[4][4];
    _mm256_store_pd(lanes[0], bce), _mm256_store_pd(lanes[1], sp), _mm256_store_pd(lanes[2], st),
        _mm256_store_pd(lanes[3], spt);
    for (int j = 0; j < 4; ++j) acc[j] = ((lanes[j][0] + lanes[j][1]) + lanes[j][2]) + lanes[j][3];
    for (; k < e; ++k) loss_sums_add(double(load(logits[k])), target[k] ? 1.0 : 0.0, acc);
  }
  loss_sums_of_chunks(part.data(), kReduceChunks, sums);
}

template <class T>
void loss_grad_fast(size_t n, const T* logits, const uint8_t* target, double den, double num, LossWeights w,
                    double grad_scale, T* dlogits) {
  // As loss_grad_ref: d dice / d p_k = -(2 t_k den - num) / den^2;  d p / d z = p (1 - p).
  const double m = double(n), inv_den2 = 1.0 / (den * den);
  const __m256d vm = _mm256_set1_pd(m), vinv = _mm256_set1_pd(inv_den2), vden = _mm256_set1_pd(den);
  const __m256d vnum = _mm256_set1_pd(num), two = _mm256_set1_pd(2.0), one = _mm256_set1_pd(1.0);
  const __m256d vbce = _mm256_set1_pd(w.bce), vdice = _mm256_set1_pd(w.dice), vscale = _mm256_set1_pd(grad_scale);
  const __m256d minus = _mm256_set1_pd(-0.0);
  const size_t blocks = n / 4;
#pragma omp parallel for schedule(static)
  for (size_t blk = 0; blk < blocks; ++blk) {
    const size_t k = blk * 4;
    const __m256d z = logits4(logits + k), t = targets4(target + k);
    __m256d ez, p;
    sigmoid4(z, ez, p);
    const __m256d g_bce = _mm256_div_pd(_mm256_sub_pd(p, t), vm);
    // -(2 t den - num) * inv_den2 * p * (1 - p), left to right
    const __m256d lead = _mm256_xor_pd(_mm256_sub_pd(_mm256_mul_pd(_mm256_mul_pd(two, t), vden), vnum), minus);
    const __m256d g_dice = _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(lead, vinv), p), _mm256_sub_pd(one, p));
    const __m256d g = _mm256_mul_pd(vscale, _mm256_add_pd(_mm256_mul_pd(vbce, g_bce), _mm256_mul_pd(vdice, g_dice)));
    alignas(32) double out[4];
    _mm256_store_pd(out, g);
    for (int i = 0; i < 4; ++i) dlogits[k + size_t(i)] = store<T>(acc_t<T>(out[i]));
  }
  for (size_t k = blocks * 4; k < n; ++k)  // the tail, as the reference
    dlogits[k] = store<T>(
        acc_t<T>(loss_grad_at(double(load(logits[k])), target[k] ? 1.0 : 0.0, m, den, num, inv_den2, w, grad_scale)));
}

#else

bool loss_fast_vectorized() { return false; }

template <class T>
void loss_sums_fast(size_t n, const T* logits, const uint8_t* target, double sums[4]) {
  loss_sums_ref(n, logits, target, sums);
}
template <class T>
void loss_grad_fast(size_t n, const T* logits, const uint8_t* target, double den, double num, LossWeights w,
                    double grad_scale, T* dlogits) {
  loss_grad_ref(n, logits, target, den, num, w, grad_scale, dlogits);
}

#endif

#define INSTANTIATE(T)                                                          \
  template void loss_sums_fast<T>(size_t, const T*, const uint8_t*, double[4]); \
  template void loss_grad_fast<T>(size_t, const T*, const uint8_t*, double, double, LossWeights, double, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
