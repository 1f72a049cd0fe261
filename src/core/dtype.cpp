// The dtype table and the f16 conversions (bf16 is inline in dtype.h).
#include "core/dtype.h"

#include <algorithm>
#include <cstdint>

#include <array>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "core/error.h"

namespace mixseg {

namespace {
constexpr std::array<DTypeTraits, 6> kTable{{
    {DType::f32, "f32", "F32", 4, true},
    {DType::f16, "f16", "F16", 2, true},
    {DType::bf16, "bf16", "BF16", 2, true},
    {DType::i8, "i8", "I8", 1, false},
    {DType::u8, "u8", "U8", 1, false},
    {DType::i32, "i32", "I32", 4, false},
}};
}  // namespace

const DTypeTraits& traits(DType t) { return kTable.at(size_t(t)); }

DType parse_dtype(std::string_view name) {
  for (const auto& e : kTable)
    if (e.name == name || e.safetensors_name == name) return e.dtype;
  fail("unknown dtype '{}' (expected one of f32, f16, bf16, i8, u8, i32)", name);
}

float f16_to_f32_soft(f16 h) {
  const uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t mant = h.bits & 0x3ffu;
  if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp != 0) return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return f32_from_bits(sign);  // signed zero
  // Subnormal: value = mant * 2^-24; normalise into an f32 (always representable).
  int e = -1;
  do {
    mant <<= 1;
    ++e;
  } while ((mant & 0x400u) == 0);
  return f32_from_bits(sign | uint32_t(112 - e) << 23 | ((mant & 0x3ffu) << 13));
}

f16 f32_to_f16_soft(float x) {
  const uint32_t u = f32_bits(x);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16{uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu))};  // quiet NaN
  if (abs >= 0x477ff000u) return f16{uint16_t(sign | 0x7c00u)};  // rounds to >= 65520: inf
  if (abs >= 0x38800000u) {
    // Normal f16 range (>= 2^-14): rebias the exponent, round the 13 dropped
    // bits to nearest even; a mantissa carry correctly bumps the exponent.
    uint32_t v = abs - 0x38000000u;  // exponent bias 127 -> 15
    v += 0x0fffu + ((v >> 13) & 1u);
    return f16{uint16_t(sign | (v >> 13))};
  }
  if (abs < 0x33000000u) return f16{sign};  // below half the smallest subnormal (2^-25): zero
  // Subnormal f16: value / 2^-24 rounded to an integer, ties to even.
  const uint32_t exp = abs >> 23;
  const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;  // implicit 1
  const uint32_t shift = 126u - exp;                    // so that result = mant >> shift (14..24)
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return f16{uint16_t(sign | q)};
}

template <class T>
void widen(const T* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = to_f32(src[i]);
}
template <class T>
void narrow(const float* src, T* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = from_f32<T>(src[i]);
}
#if defined(__F16C__)
template <>
void widen<f16>(const f16* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}
template <>
void narrow<f16>(const float* src, f16* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}
#endif

namespace {
constexpr size_t kParallelBlock = size_t(1) << 15;  // elements per task: large enough to amortise the fork
}

// Calls f(begin, count) for blocks of kParallelBlock elements, over the OpenMP threads.
template <class F>
void for_blocks(size_t n, F f) {
  const int64_t blocks = int64_t((n + kParallelBlock - 1) / kParallelBlock);
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const size_t i = size_t(b) * kParallelBlock;
    f(i, std::min(kParallelBlock, n - i));
  }
}

template <class T>
void widen_parallel(const T* src, float* dst, size_t n) {
  for_blocks(n, [&](size_t i, size_t count) { widen(src + i, dst + i, count); });
}
template <class T>
void narrow_parallel(const float* src, T* dst, size_t n) {
  for_blocks(n, [&](size_t i, size_t count) { narrow(src + i, dst + i, count); });
}

template void widen_parallel<float>(const float*, float*, size_t);
template void widen_parallel<f16>(const f16*, float*, size_t);
template void widen_parallel<bf16>(const bf16*, float*, size_t);
template void narrow_parallel<float>(const float*, float*, size_t);
template void narrow_parallel<f16>(const float*, f16*, size_t);
template void narrow_parallel<bf16>(const float*, bf16*, size_t);
template void widen<float>(const float*, float*, size_t);
#if !defined(__F16C__)  // else explicitly specialised above
template void widen<f16>(const f16*, float*, size_t);
#endif
template void widen<bf16>(const bf16*, float*, size_t);
template void narrow<float>(const float*, float*, size_t);
#if !defined(__F16C__)
template void narrow<f16>(const float*, f16*, size_t);
#endif
template void narrow<bf16>(const float*, bf16*, size_t);

}  // namespace mixseg
