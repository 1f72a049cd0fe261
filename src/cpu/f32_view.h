// Runs of a storage type seen as f32, for the fast CPU kernels that work on
// f32 in blocks or rows: for f32 the memory itself (no copy), for f16/bf16 a
// widened copy in a caller's buffer (the vectorised conversions of
// dtype.h), and for outputs a buffer rounded into place afterwards. The
// *_pixels forms take pixels whose C values lie `stride` values apart (a
// channel slice of a wider tensor when stride > C, Tensor::pixel_stride).
#pragma once
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "cpu/f32x8.h"

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

// Widens (narrows) one pixel's C values: 8-lane vectors, the conversions
// inlined (a call per pixel would cost as much as the pass), then the tail.
template <class T>
void widen_pixel(const T* src, float* dst, size_t C) {
  size_t j = 0;
  for (; j + 8 <= C; j += 8) store8(dst + j, load8(src + j));
  if (j < C) widen(src + j, dst + j, C - j);
}
template <class T>
void narrow_pixel(const float* src, T* dst, size_t C) {
  size_t j = 0;
  for (; j + 8 <= C; j += 8) store8(dst + j, load8(src + j));
  if (j < C) narrow(src + j, dst + j, C - j);
}

// px pixels of C values each, as a storage-type run with its pixel stride.
template <class P>
struct Pixels {
  P* p;
  size_t stride;
};

// The px pixels at src (pixel stride `stride`) as f32: the memory itself
// for float, else widened into buf (dense: stride C).
template <class T>
Pixels<const float> f32_in_pixels(const T* src, size_t px, size_t C, size_t stride, std::vector<float>& buf) {
  if constexpr (std::is_same_v<T, float>) {
    return {src, stride};
  } else {
    if (stride == C) return {f32_in(src, px * C, buf), C};
    buf.resize(px * C);
    for (size_t p = 0; p < px; ++p) widen_pixel(src + p * stride, buf.data() + p * C, C);
    return {buf.data(), C};
  }
}

// Where f32 results for the px pixels at dst go: dst itself for float, else
// buf (dense), which holds dst's values widened when `keep` (to add to);
// f32_out_pixels_done then rounds buf into place.
template <class T>
Pixels<float> f32_out_pixels(T* dst, size_t px, size_t C, size_t stride, std::vector<float>& buf, bool keep) {
  if constexpr (std::is_same_v<T, float>) {
    return {dst, stride};
  } else {
    buf.resize(px * C);
    if (keep) f32_in_pixels(dst, px, C, stride, buf);
    return {buf.data(), C};
  }
}
template <class T>
void f32_out_pixels_done(Pixels<float> out, T* dst, size_t px, size_t C, size_t stride) {
  if constexpr (!std::is_same_v<T, float>) {
    if (stride == C) return narrow(out.p, dst, px * C);
    for (size_t p = 0; p < px; ++p) narrow_pixel(out.p + p * C, dst + p * stride, C);
  }
}

// The px pixels at src in the storage type, dense: src itself when its
// pixel stride is C, else copied into buf.
template <class T>
const T* dense_pixels(const T* src, size_t px, size_t C, size_t stride, std::vector<T>& buf) {
  if (stride == C) return src;
  buf.resize(px * C);
  for (size_t p = 0; p < px; ++p) std::memcpy(buf.data() + p * C, src + p * stride, C * sizeof(T));
  return buf.data();
}

}  // namespace mixseg
