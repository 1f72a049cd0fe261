// The input of an int8 convolution rewritten as padded rows: n images
// [h, w, cin] of int8 become (h + 2 pad) rows per image of (w + 2 pad) * cin
// elements of T, each value converted by `convert`, with `border` around
// the image and `slack` elements after the last row (for kernels that read a
// little past a row's end). Every element is written, so a buffer kept
// between calls needs no clearing. Used by the AVX2 and VNNI convolutions.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace mixseg {

// Returns buf.data(); OpenMP's threads write through that pointer.
template <class T, class Convert>
T* padded_rows(std::vector<T>& buf, const int8_t* x, int n, int h, int w, int cin, int pad, T border, size_t slack,
               Convert convert) {
  const int ph = h + 2 * pad;
  const size_t row_len = size_t(w + 2 * pad) * cin;
  buf.resize(size_t(n) * ph * row_len + slack);
  T* const base = buf.data();
  std::fill(base + size_t(n) * ph * row_len, base + buf.size(), border);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < n; ++b)
    for (int py = 0; py < ph; ++py) {
      T* dst = base + (size_t(b) * ph + py) * row_len;
      const int iy = py - pad;
      if (iy < 0 || iy >= h) {
        std::fill(dst, dst + row_len, border);
        continue;
      }
      const int8_t* src = x + (size_t(b) * h + iy) * w * size_t(cin);
      std::fill(dst, dst + size_t(pad) * cin, border);
      for (size_t i = 0; i < size_t(w) * cin; ++i) dst[size_t(pad) * cin + i] = convert(src[i]);
      std::fill(dst + size_t(pad + w) * cin, dst + row_len, border);
    }
  return base;
}

}  // namespace mixseg
