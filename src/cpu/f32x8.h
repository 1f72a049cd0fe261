// Eight f32 lanes as a GCC/Clang vector type, with loads that widen each
// storage type and stores that round once to it, bit for bit as dtype.h's
// conversions (f16 through F16C where the build has it, bf16 to nearest
// even with NaNs quietened), and the ReLU test of kernel_types.h on 8 lanes.
// For the fast CPU kernels whose loops run over channels inside a pixel:
// GCC vectorises such loops across pixels instead (a permute per load), so
// they are written over f32x8 directly; x86-64-v3 makes these AVX2
// instructions, other targets lower them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace mixseg {

typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef int16_t i16x8 __attribute__((vector_size(16)));
typedef uint16_t u16x8 __attribute__((vector_size(16)));

template <class V, class P>
inline V load_bits(const P* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class To, class From>
inline To bit_cast_vec(From v) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &v, sizeof t);
  return t;
}

inline f32x8 load8(const float* p) { return load_bits<f32x8>(p); }
inline f32x8 load8(const bf16* p) {
  return bit_cast_vec<f32x8>(__builtin_convertvector(load_bits<u16x8>(p), u32x8) << 16);
}
inline f32x8 load8(const f16* p) {
#if defined(__F16C__)
  return bit_cast_vec<f32x8>(_mm256_cvtph_ps(load_bits<__m128i>(p)));
#else
  f32x8 v;
  for (int l = 0; l < 8; ++l) v[l] = f16_to_f32(p[l]);
  return v;
#endif
}

inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }
inline void store8(bf16* p, f32x8 v) {
  // f32_to_bf16 on 8 lanes: add 0x7fff plus the lowest kept bit, keep the
  // high half; NaN keeps its high half with the quiet bit set.
  const u32x8 u = bit_cast_vec<u32x8>(v);
  const u32x8 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const u32x8 nan = (u >> 16) | 0x0040u;
  const u32x8 r = (v != v) ? nan : rounded;  // the NaN lanes: one unordered compare
  const u16x8 h = __builtin_convertvector(r, u16x8);
  std::memcpy(p, &h, sizeof h);
}
inline void store8(f16* p, f32x8 v) {
#if defined(__F16C__)
  const __m128i h = _mm256_cvtps_ph(bit_cast_vec<__m256>(v), _MM_FROUND_TO_NEAREST_INT);
  std::memcpy(p, &h, sizeof h);
#else
  for (int l = 0; l < 8; ++l) p[l] = f32_to_f16(v[l]);
#endif
}

// relu_active on 8 lanes, as a lane mask (all ones where active): f32 "v > 0";
// f16/bf16 the bits as a signed 16-bit integer > 0 (a positive NaN counts).
inline i32x8 relu_active8(const float* p) { return load8(p) > f32x8{}; }
template <class T>
inline i32x8 relu_active8(const T* p) {
  return __builtin_convertvector(load_bits<i16x8>(p) > i16x8{}, i32x8);
}

// Where mask, v, else +0.
inline f32x8 select8(i32x8 mask, f32x8 v) { return bit_cast_vec<f32x8>(mask & bit_cast_vec<i32x8>(v)); }

}  // namespace mixseg
