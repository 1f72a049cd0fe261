// Requantizing a tile of int32 sums (up to 16 pixels x 16 channels, the
// VNNI and AMX tiles' layout) to int8 on 16 AVX-512 lanes: the AVX2 8-lane
// requantize8 (requantize_avx2.h) widened, the same operations lane for lane,
// so the same bytes. A 16-channel block takes one vector per pixel; a block
// of 8 or fewer channels (the first level's 8) takes two pixels per vector,
// its 8 lanes' parameters repeated. Include only in functions compiled for
// AVX-512 F, BW, VL and VNNI (MIXSEG_AVX512_TARGET, which int8_vnni_available checks).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "quant/kernels_int8.h"

#define MIXSEG_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// GCC 12's AVX-512 intrinsic headers trip -Wmaybe-uninitialized on their own
// _mm512_undefined_epi32() merge operands once inlined (GCC bug 105593).
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no such warning (and warns about the unknown name)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace mixseg {

// requantize8 on 16 lanes: doubling high multiply rounding half up (even
// lanes, then odd lanes moved down, in 64 bits), then the rounding right
// shift with ties away from zero.
MIXSEG_AVX512_TARGET inline __m512i requantize16(__m512i x, __m512i m, __m512i left, __m512i right) {
  x = _mm512_sllv_epi32(x, left);
  const __m512i nudge = _mm512_set1_epi64(int64_t(1) << 30);
  const __m512i even = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), nudge), 31);
  const __m512i odd = _mm512_srli_epi64(
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)), nudge), 31);
  const __m512i high = _mm512_mask_blend_epi32(__mmask16(0xAAAA), even, _mm512_slli_epi64(odd, 32));
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
  const __m512i remainder = _mm512_and_si512(high, mask);
  const __mmask16 negative = _mm512_cmpgt_epi32_mask(_mm512_setzero_si512(), high);
  // threshold = (mask >> 1) + 1 where negative
  const __m512i threshold = _mm512_mask_add_epi32(_mm512_srai_epi32(mask, 1), negative, _mm512_srai_epi32(mask, 1), one);
  const __mmask16 round_up = _mm512_cmpgt_epi32_mask(remainder, threshold);
  const __m512i shifted = _mm512_srav_epi32(high, right);
  return _mm512_mask_add_epi32(shifted, round_up, shifted, one);
}

// acc + bias, requantized, + zero point, clamped to [lo, hi], as 16 bytes.
MIXSEG_AVX512_TARGET inline __m128i requantize_to_int8(__m512i acc, __m512i bias, __m512i m, __m512i left,
                                                       __m512i right, __m512i zp, __m512i lo, __m512i hi) {
  const __m512i v = _mm512_add_epi32(requantize16(_mm512_add_epi32(acc, bias), m, left, right), zp);
  return _mm512_cvtsepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi));  // in int8's range: no saturation
}

// 16 lanes of v from channel o (v holds at least o + 16 values), or its 8
// lanes from o twice.
MIXSEG_AVX512_TARGET inline __m512i lanes16(const std::vector<int32_t>& v, int o) {
  return _mm512_loadu_si512(v.data() + o);
}
MIXSEG_AVX512_TARGET inline __m512i lanes8_twice(const std::vector<int32_t>& v, int o) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.data() + o)));
}

// Requantizes P pixels of a tile: acc[p * 16 + i] is pixel p's sum for
// channel o0 + i (i < on <= 16); pixel p's bytes go to y + p * pixel_stride.
// acc is 64-byte aligned.
MIXSEG_AVX512_TARGET inline void requantize_tile16(const int32_t* acc, int P, const Requant& r, int o0, int on,
                                                   int32_t zp, int32_t lo, int32_t hi, int8_t* y,
                                                   size_t pixel_stride) {
  const __m512i vzp = _mm512_set1_epi32(zp), vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
  const __mmask16 keep = __mmask16((1u << on) - 1);
  if (on > 8) {
    const __m512i bias = lanes16(r.bias, o0), m = lanes16(r.multiplier, o0), left = lanes16(r.left, o0),
                  right = lanes16(r.right, o0);
    for (int p = 0; p < P; ++p)
      _mm_mask_storeu_epi8(y + size_t(p) * pixel_stride, keep,
                           requantize_to_int8(_mm512_load_si512(acc + p * 16), bias, m, left, right, vzp, vlo, vhi));
    return;
  }
  // Two pixels per vector: lanes 0-7 pixel p, lanes 8-15 pixel p + 1.
  const __m512i bias = lanes8_twice(r.bias, o0), m = lanes8_twice(r.multiplier, o0),
                left = lanes8_twice(r.left, o0), right = lanes8_twice(r.right, o0);
  for (int p = 0; p < P; p += 2) {
    const __m256i first = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + p * 16));
    const __m256i second =
        p + 1 < P ? _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + (p + 1) * 16)) : first;
    const __m128i b = requantize_to_int8(_mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1), bias, m, left,
                                         right, vzp, vlo, vhi);
    _mm_mask_storeu_epi8(y + size_t(p) * pixel_stride, keep, b);
    if (p + 1 < P) _mm_mask_storeu_epi8(y + size_t(p + 1) * pixel_stride, keep, _mm_srli_si128(b, 8));
  }
}

}  // namespace mixseg

#pragma GCC diagnostic pop
