// Requantizing a tile of int32 sums (up to 16 pixels x 16 channels, the
// VNNI and AMX tiles' layout) to int8 on 16 AVX-512 lanes: the same bytes
// as the reference's multiply_by_quantized_multiplier (fixed_point.h) and
// AVX2's requantize8 (requantize_avx2.h), its two roundings taken as one in
// 64 bits (requantize16 below). A 16-channel block takes one vector per
// pixel; a block of 8 or fewer channels (the first level's 8) takes two
// pixels per vector, its 8 lanes' parameters repeated. Include only in
// functions compiled for AVX-512 F, BW, VL and VNNI (MIXSEG_AVX512_TARGET,
// which int8_vnni_available checks).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "quant/kernels_int8.h"

#define MIXSEG_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// GCC 12's AVX-512 intrinsic headers trip -W(maybe-)uninitialized on their own
// _mm512_undefined_epi32() merge operands once inlined (GCC bug 105593).
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no such warning (and warns about the unknown name)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace mixseg {

// TFLite's double rounding (fixed_point.h) on 16 lanes, in 64-bit halves
// (even lanes, then odd lanes moved down), folded into one floor division:
// with ab = (x << left) * multiplier and r the right shift,
//   h = srdhm(x << left, multiplier) = floor((ab + 2^30) / 2^31)
// (gemmlowp's nudge of 1 - 2^30 and truncating division for negative ab are
// that floor), and rounding_divide_by_pot(h, r) = floor((h + c) / 2^r) with
// c = 2^(r-1) - [h < 0] for r > 0 (ties away from zero), c = 0 for r = 0.
// As floor((floor(y) + c) / n) = floor((y + c) / n) for integer c, the
// result is
//   floor((ab + 2^30 + c 2^31) / 2^(31 + r)),   h < 0 exactly when ab < -2^30,
// one 64-bit add, a masked subtract of 2^31 and an arithmetic shift per half
// instead of the two roundings' masks and compares. |ab| <= 2^62 and
// c 2^31 <= 2^61: no overflow; the result is h's rounding, in int32.
// The lane constants are made once per block and convolution call
// (requant_block_lanes). alignas: outside AVX-512 functions GCC aligns
// __m512i to 32 bytes only (the target's widest), so a vector of these would
// be, and the AVX-512 code's aligned moves would fault.
struct alignas(64) RequantLanes {
  __m512i bias, multiplier, multiplier_odd, left;
  __m512i add_even, add_odd;      // 2^30 + (r > 0 ? 2^(r + 30) : 0), per 64-bit half
  __m512i below_even, below_odd;  // -2^30 where r > 0, else INT64_MIN (never below)
  __m512i shift_even, shift_odd;  // 31 + r
};

// One half's constants from its right shifts r (64-bit lanes).
MIXSEG_AVX512_TARGET inline void requant_half_lanes(__m512i r, __m512i& add, __m512i& below, __m512i& shift) {
  const __m512i base = _mm512_set1_epi64(int64_t(1) << 30);
  const __mmask8 positive = _mm512_cmpgt_epi64_mask(r, _mm512_setzero_si512());
  add = _mm512_mask_add_epi64(base, positive, base,
                              _mm512_sllv_epi64(_mm512_set1_epi64(1), _mm512_add_epi64(r, _mm512_set1_epi64(30))));
  below = _mm512_mask_blend_epi64(positive, _mm512_set1_epi64(std::numeric_limits<int64_t>::min()),
                                  _mm512_set1_epi64(-(int64_t(1) << 30)));
  shift = _mm512_add_epi64(r, _mm512_set1_epi64(31));
}

MIXSEG_AVX512_TARGET inline RequantLanes requant_lanes(__m512i bias, __m512i m, __m512i left, __m512i right) {
  RequantLanes q;
  q.bias = bias;
  q.multiplier = m;  // _mm512_mul_epi32 reads each 64-bit half's low lane
  q.multiplier_odd = _mm512_srli_epi64(m, 32);
  q.left = left;
  requant_half_lanes(_mm512_and_si512(right, _mm512_set1_epi64(0xffffffff)), q.add_even, q.below_even, q.shift_even);
  requant_half_lanes(_mm512_srli_epi64(right, 32), q.add_odd, q.below_odd, q.shift_odd);
  return q;
}

// The rounding above on one 64-bit half: ab = the product of the low lanes.
MIXSEG_AVX512_TARGET inline __m512i requantize_half(__m512i ab, __m512i add, __m512i below, __m512i shift) {
  const __mmask8 negative = _mm512_cmplt_epi64_mask(ab, below);
  const __m512i t = _mm512_add_epi64(ab, add);
  return _mm512_srav_epi64(_mm512_mask_sub_epi64(t, negative, t, _mm512_set1_epi64(int64_t(1) << 31)), shift);
}

// acc + bias, shifted left, multiplied and rounded: multiply_by_quantized_multiplier on 16 lanes.
MIXSEG_AVX512_TARGET inline __m512i requantize16(__m512i acc, const RequantLanes& q) {
  const __m512i x = _mm512_sllv_epi32(_mm512_add_epi32(acc, q.bias), q.left);
  const __m512i even = requantize_half(_mm512_mul_epi32(x, q.multiplier), q.add_even, q.below_even, q.shift_even);
  const __m512i odd = requantize_half(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), q.multiplier_odd), q.add_odd,
                                      q.below_odd, q.shift_odd);
  // Each half's result is the low 32 bits of its 64-bit lane.
  const __m512i interleave = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
  return _mm512_permutex2var_epi32(even, interleave, odd);
}

// The requantized lanes + zero point, clamped to [lo, hi], as 16 bytes.
MIXSEG_AVX512_TARGET inline __m128i requantize_to_int8(__m512i acc, const RequantLanes& q, __m512i zp, __m512i lo,
                                                       __m512i hi) {
  const __m512i v = _mm512_add_epi32(requantize16(acc, q), zp);
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

// The first 8 lanes of tile rows p0 and p1 in one vector.
MIXSEG_AVX512_TARGET inline __m512i two_pixels(const int32_t* acc, int p0, int p1) {
  const __m256i first = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + p0 * 16));
  const __m256i second = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + p1 * 16));
  return _mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1);
}

// Four vectors of requantized lanes (+ zero point, clamped below) as 64
// bytes in their order: two signed saturating packs (the clamp to int8's
// range) and one dword permute, instead of four narrowing moves.
MIXSEG_AVX512_TARGET inline __m512i pack4_to_int8(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  // After the packs, 128-bit lane j holds dwords j of v0, v1, v2, v3 (4 bytes each).
  const __m512i c = _mm512_packs_epi16(_mm512_packs_epi32(v0, v1), _mm512_packs_epi32(v2, v3));
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), c);
}

// The lanes of channels [o0, o0 + on) as requantize_tile16 takes them:
// 16 channels, or (on <= 8) their 8 lanes twice. Made once per block and
// convolution call, not per tile.
MIXSEG_AVX512_TARGET inline RequantLanes requant_block_lanes(const Requant& r, int o0, int on) {
  return on > 8
             ? requant_lanes(lanes16(r.bias, o0), lanes16(r.multiplier, o0), lanes16(r.left, o0), lanes16(r.right, o0))
             : requant_lanes(lanes8_twice(r.bias, o0), lanes8_twice(r.multiplier, o0), lanes8_twice(r.left, o0),
                             lanes8_twice(r.right, o0));
}

// Requantizes P pixels of a tile: acc[p * 16 + i] is pixel p's sum for
// channel o0 + i (i < on <= 16), q = requant_block_lanes(r, o0, on); pixel
// p's bytes go to y + p * pixel_stride. acc is 64-byte aligned. Full
// 16-channel blocks, and 8 channels where nothing lies between pixels,
// narrow four vectors at once (pack4_to_int8).
MIXSEG_AVX512_TARGET inline void requantize_tile16(const int32_t* acc, int P, const RequantLanes& q, int on, int32_t zp,
                                                   int32_t lo, int32_t hi, int8_t* y, size_t pixel_stride) {
  const __m512i vzp = _mm512_set1_epi32(zp), vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
  const __mmask16 keep = __mmask16((1u << on) - 1);
  const bool wide = on > 8;  // else two pixels per vector: lanes 0-7 pixel p, lanes 8-15 pixel p + 1
  const int per_vector = wide ? 1 : 2;
  int p = 0;
  const bool contiguous = pixel_stride == size_t(on);
  if (on == 16 || (on == 8 && contiguous)) {
    const bool clamp_low = lo > -128, clamp_high = hi < 127;  // the packs clamp to [-128, 127]
    for (; p + 4 * per_vector <= P; p += 4 * per_vector) {
      __m512i v[4];
      for (int j = 0; j < 4; ++j) {
        const int pj = p + j * per_vector;
        const __m512i sums = wide ? _mm512_load_si512(acc + pj * 16) : two_pixels(acc, pj, pj + 1);
        v[j] = _mm512_add_epi32(requantize16(sums, q), vzp);
        if (clamp_low) v[j] = _mm512_max_epi32(v[j], vlo);
        if (clamp_high) v[j] = _mm512_min_epi32(v[j], vhi);
      }
      const __m512i bytes = pack4_to_int8(v[0], v[1], v[2], v[3]);
      int8_t* yp = y + size_t(p) * pixel_stride;
      if (contiguous) {
        _mm512_storeu_si512(yp, bytes);
      } else {  // 16 channels of wider pixels
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yp), _mm512_castsi512_si128(bytes));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yp + pixel_stride), _mm512_extracti32x4_epi32(bytes, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yp + 2 * pixel_stride), _mm512_extracti32x4_epi32(bytes, 2));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yp + 3 * pixel_stride), _mm512_extracti32x4_epi32(bytes, 3));
      }
    }
  }
  if (wide) {
    for (; p < P; ++p)
      _mm_mask_storeu_epi8(y + size_t(p) * pixel_stride, keep,
                           requantize_to_int8(_mm512_load_si512(acc + p * 16), q, vzp, vlo, vhi));
    return;
  }
  for (; p < P; p += 2) {
    const __m128i b = requantize_to_int8(two_pixels(acc, p, p + 1 < P ? p + 1 : p), q, vzp, vlo, vhi);
    _mm_mask_storeu_epi8(y + size_t(p) * pixel_stride, keep, b);
    if (p + 1 < P) _mm_mask_storeu_epi8(y + size_t(p + 1) * pixel_stride, keep, _mm_srli_si128(b, 8));
  }
}

}  // namespace mixseg

#pragma GCC diagnostic pop
