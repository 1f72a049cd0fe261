// Runs of a storage type seen as f32, for the fast CPU kernels that work on
// f32 in blocks or rows: for f32 the memory itself (no copy), for f16/bf16 a
// widened copy in a caller's buffer (the vectorised conversions of
// dtype.h), and for outputs a buffer rounded into place afterwards.
#pragma once
#include <cstddef>
#include <type_traits>
#include <vector>

#include "core/dtype.h"

namespace mixseg {

// n elements at src as f32: src itself for float, else widened into buf.
template <class T>
const float* f32_in(const T* src, size_t n, std::vector<float>& buf) {
  if constexpr (std::is_same_v<T, float>) {
    return src;
  } else {
    buf.resize(n);
    widen(src, buf.data(), n);
    return buf.data();
  }
}

// Where n f32 results for dst are written: dst itself for float, else buf
// (then f32_out_done rounds buf into dst).
template <class T>
float* f32_out(T* dst, size_t n, std::vector<float>& buf) {
  if constexpr (std::is_same_v<T, float>) {
    return dst;
  } else {
    buf.resize(n);
    return buf.data();
  }
}
template <class T>
void f32_out_done(const float* src, T* dst, size_t n) {
  if constexpr (!std::is_same_v<T, float>) narrow(src, dst, n);
}

}  // namespace mixseg
