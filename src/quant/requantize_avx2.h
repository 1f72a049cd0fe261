// Requantizing int32 sums to int8 on 8 AVX2 lanes, each lane its own output
// channel's multiplier and shifts: multiply_by_quantized_multiplier
// (fixed_point.h) vectorised, shared by the AVX2 and VNNI int8 convolutions.
// Include only where __AVX2__ is defined.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "quant/kernels_int8.h"

namespace mixseg {

// multiply_by_quantized_multiplier (fixed_point.h) on 8 lanes, each with its
// own multiplier and shifts. The doubling high multiply rounds half up:
// floor((x * m + 2^30) / 2^31), in 64 bits per lane (even lanes, then odd
// lanes moved down); the multiplier is never INT32_MIN, so it cannot
// saturate. Then the rounding right shift, ties away from zero.
inline __m256i requantize8(__m256i x, __m256i m, __m256i left, __m256i right) {
  x = _mm256_sllv_epi32(x, left);
  const __m256i nudge = _mm256_set1_epi64x(int64_t(1) << 30);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge), 31);
  const __m256i odd = _mm256_srli_epi64(
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), nudge), 31);
  const __m256i high = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), right), _mm256_set1_epi32(1));
  const __m256i remainder = _mm256_and_si256(high, mask);
  const __m256i negative = _mm256_cmpgt_epi32(_mm256_setzero_si256(), high);  // -1 where x < 0
  const __m256i threshold = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), negative);
  const __m256i round_up = _mm256_cmpgt_epi32(remainder, threshold);  // -1 where rounding up
  return _mm256_sub_epi32(_mm256_srav_epi32(high, right), round_up);
}

// Requantizes n (<= 8) sums of one pixel starting at channel o into y.
inline void store8(const int32_t* acc, const Requant& r, int o, int n, int32_t zp, int32_t lo, int32_t hi, int8_t* y) {
  auto lane = [&](const std::vector<int32_t>& v) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.data() + o)); };
  __m256i v = _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(acc)), lane(r.bias));
  v = _mm256_add_epi32(requantize8(v, lane(r.multiplier), lane(r.left), lane(r.right)), _mm256_set1_epi32(zp));
  v = _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
  const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i b8 = _mm_packs_epi16(w16, w16);
  if (n == 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y), b8);
  } else {
    alignas(16) int8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b8);
    std::memcpy(y, tmp, size_t(n));
  }
}

}  // namespace mixseg
