// The one dtype table (name, size, is_float) and the 16-bit float types with
// their conversions. f32 -> f16/bf16 rounds to nearest, ties to even; inf and
// NaN are preserved (NaN stays a quiet NaN); f16 subnormals are produced and
// read exactly. Tested exhaustively over all 65536 bit patterns.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace mixseg {

enum class DType : uint8_t { f32, f16, bf16, i8, u8, i32 };

struct DTypeTraits {
  DType dtype;
  std::string_view name;  // as in safetensors' dtype field, lower case here
  std::string_view safetensors_name;
  int size;  // bytes per element
  bool is_float;
};

const DTypeTraits& traits(DType t);
inline int dtype_size(DType t) { return traits(t).size; }
inline std::string_view dtype_name(DType t) { return traits(t).name; }
// Parses "f32", "f16", ... or a safetensors name ("F32", "BF16", ...); throws on anything else.
DType parse_dtype(std::string_view name);

// IEEE 754 binary16 and bfloat16, stored as bits. Plain structs so that no
// implicit arithmetic happens in 16 bits by accident: compute widens to f32.
struct f16 {
  uint16_t bits;
};
struct bf16 {
  uint16_t bits;
};

inline uint32_t f32_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

inline float bf16_to_f32(bf16 h) { return f32_from_bits(uint32_t(h.bits) << 16); }

inline bf16 f32_to_bf16(float x) {
  uint32_t u = f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x0040u)};  // quiet NaN
  // Round to nearest even: add 0x7fff plus the lowest kept bit; a carry into the
  // exponent is correct (it rounds up to the next binade or to inf).
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}

// f16 conversions: the portable definitions (*_soft), and the ones kernels
// use, which take the CPU's F16C instructions where the build has them; both
// are tested to agree on all inputs that matter (every f16, every midpoint).
float f16_to_f32_soft(f16 h);
f16 f32_to_f16_soft(float x);
#if defined(__F16C__)
// _cvtss_sh with imm 0 rounds to nearest even and quiets NaNs, as the soft version does.
inline float f16_to_f32(f16 h) { return _cvtsh_ss(h.bits); }
inline f16 f32_to_f16(float x) { return f16{uint16_t(_cvtss_sh(x, 0))}; }
#else
inline float f16_to_f32(f16 h) { return f16_to_f32_soft(h); }
inline f16 f32_to_f16(float x) { return f32_to_f16_soft(x); }
#endif

// Widening and narrowing for kernels that are generic over the storage type.
inline float to_f32(float x) { return x; }
inline float to_f32(f16 x) { return f16_to_f32(x); }
inline float to_f32(bf16 x) { return bf16_to_f32(x); }

template <class T>
T from_f32(float x);
template <>
inline float from_f32<float>(float x) { return x; }
template <>
inline f16 from_f32<f16>(float x) { return f32_to_f16(x); }
template <>
inline bf16 from_f32<bf16>(float x) { return f32_to_bf16(x); }

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
template <>
constexpr DType dtype_of<f16>() { return DType::f16; }
template <>
constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <>
constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <>
constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <>
constexpr DType dtype_of<int32_t>() { return DType::i32; }

// Bulk conversions between a storage type and f32 (dst and src must not overlap).
template <class T>
void widen(const T* src, float* dst, size_t n);
template <class T>
void narrow(const float* src, T* dst, size_t n);
// The same, split into blocks over the OpenMP threads when n is large
// (element-wise, so the results equal the serial ones).
template <class T>
void widen_parallel(const T* src, float* dst, size_t n);
template <class T>
void narrow_parallel(const float* src, T* dst, size_t n);

// Calls f.template operator()<T>() with T the C++ type of a float dtype
// (float, f16, bf16); throws for the integer dtypes.
template <class F>
decltype(auto) dispatch_float(DType t, F&& f);

}  // namespace mixseg

#include "core/dtype_dispatch.h"
