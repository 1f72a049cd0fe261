// Element access for kernels generic over the storage type T. Storage is
// float, f16 or bf16 (and double, used only by the gradient tests so finite
// differences are exact enough); compute happens in acc_t<T>: f32, or double
// for double. load() widens, store() rounds once to the storage type.
#pragma once
#include <cstring>
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"

namespace mixseg {

template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <class T>
inline acc_t<T> load(T v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return to_f32(v);
}

template <class T>
inline T store(acc_t<T> v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return from_f32<T>(v);
}

// ReLU's test "v > 0". For f16 and bf16 it reads the bits as a signed
// 16-bit integer (positive exactly when the sign bit is clear and the value is
// not zero), which vectorises; a positive NaN counts as positive there, where
// the f32 comparison says no. NaN handling of ReLU is not relied on.
template <class T>
inline bool relu_active(T v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>)
    return int16_t(v.bits) > 0;
  else
    return v > 0;
}

// Widens n elements into an acc_t buffer / rounds them back.
// (Bulk paths use the vectorised widen/narrow of dtype.h.)
template <class T>
inline void load_n(const T* src, acc_t<T>* dst, size_t n) {
  if constexpr (std::is_same_v<T, double>)
    std::copy_n(src, n, dst);
  else
    widen(src, dst, n);
}
template <class T>
inline void store_n(const acc_t<T>* src, T* dst, size_t n) {
  if constexpr (std::is_same_v<T, double>)
    std::copy_n(src, n, dst);
  else
    narrow(src, dst, n);
}

// Copies n values of one pixel's channels. Fixed 32-, 16- and 8-byte blocks
// compile to vector moves; a plain copy would become a memmove call per
// pixel, which dominates for the few channels of the U-Net's first level
// (8 channels of f16/bf16 are one 16-byte move, of int8 one 8-byte move).
template <class T>
inline void copy_channels(const T* src, T* dst, int n) {
  constexpr int kBlock = int(32 / sizeof(T)), kHalf = kBlock / 2, kQuarter = kBlock / 4;
  int i = 0;
  for (; i + kBlock <= n; i += kBlock) std::memcpy(dst + i, src + i, 32);
  if (i + kHalf <= n) std::memcpy(dst + i, src + i, 16), i += kHalf;
  if (kQuarter > 0 && i + kQuarter <= n) std::memcpy(dst + i, src + i, 8), i += kQuarter;
  for (; i < n; ++i) dst[i] = src[i];
}

}  // namespace mixseg

// Explicit instantiation of a kernel template for every storage type.
#define MIXSEG_INSTANTIATE_FLOAT_KERNEL(MACRO) \
  MACRO(float)                                 \
  MACRO(::mixseg::f16)                         \
  MACRO(::mixseg::bf16)                        \
  MACRO(double)
