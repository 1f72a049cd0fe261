// The input of an int8 convolution rewritten as padded rows: n images
// [h, w, cin] of int8 become (h + 2 pad) rows per image of (w + 2 pad) * cin
// elements of T, each value converted by `convert`, with `border` around
// the image and `slack` elements after the last row (for kernels that read a
// little past a row's end). Every element is written, so a buffer kept
// between calls needs no clearing. Used by the AVX2 and VNNI convolutions.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace mixseg {

// The layout itself: fill(b, iy, out) writes image b's row iy (w * cin
// elements) at out; the border and slack around it are written here.
// Returns buf.data(); OpenMP's threads write through that pointer.
template <class T, class Fill>
T* padded_rows_filled(std::vector<T>& buf, int n, int h, int w, int cin, int pad, T border, size_t slack, Fill fill) {
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
      std::fill(dst, dst + size_t(pad) * cin, border);
      fill(b, iy, dst + size_t(pad) * cin);
      std::fill(dst + size_t(pad + w) * cin, dst + row_len, border);
    }
  return base;
}

template <class T, class Convert>
T* padded_rows(std::vector<T>& buf, const int8_t* x, int n, int h, int w, int cin, int pad, T border, size_t slack,
               Convert convert) {
  // Locals, not the closure's members, in the loops: a byte store may alias
  // those, which would keep the compiler from vectorizing (measured 1.4-2x
  // the time).
  return padded_rows_filled(buf, n, h, w, cin, pad, border, slack, [=](int b, int iy, T* out) {
    const size_t len = size_t(w) * size_t(cin);
    const int8_t* src = x + (size_t(b) * size_t(h) + size_t(iy)) * len;
    const Convert cv = convert;
    for (size_t i = 0; i < len; ++i) out[i] = cv(src[i]);
  });
}

// The same for the decoder's input concat(upsample2x(low), skip) without
// forming it, converted as the VNNI kernel reads its input (u8 = x + 128,
// x ^ 0x80): low [n, h/2, w/2, c_low] (nearest, each pixel twice in each
// direction), skip [n, h, w, c_skip], h and w even; cin = c_low + c_skip.
// Channel counts that are multiples of 8 (the U-Net's) move 8 bytes at a time.
inline uint8_t* padded_rows_upsample_concat(std::vector<uint8_t>& buf, const int8_t* low, int c_low, const int8_t* skip,
                                            int c_skip, int n, int h, int w, int pad, uint8_t border, size_t slack) {
  const int cin = c_low + c_skip;
  const bool words = c_low % 8 == 0 && c_skip % 8 == 0;
  // Copies c bytes (a multiple of 8 when words), each flipped to unsigned.
  auto copy = [words](const int8_t* src, uint8_t* dst, int c) {
    if (words) {
      for (int i = 0; i < c; i += 8) {
        uint64_t v;
        std::memcpy(&v, src + i, 8);
        v ^= 0x8080808080808080ull;
        std::memcpy(dst + i, &v, 8);
      }
    } else {
      for (int i = 0; i < c; ++i) dst[i] = uint8_t(uint8_t(src[i]) ^ 0x80);
    }
  };
  return padded_rows_filled(buf, n, h, w, cin, pad, border, slack, [=](int b, int iy, uint8_t* out) {
    const int width = w, cl = c_low, cs = c_skip, step = cl + cs;  // locals (see padded_rows)
    const int8_t* lo = low + (size_t(b) * size_t(h / 2) + size_t(iy / 2)) * size_t(width / 2) * size_t(cl);
    const int8_t* sk = skip + (size_t(b) * size_t(h) + size_t(iy)) * size_t(width) * size_t(cs);
    for (int x = 0; x < width; ++x, out += step) {
      copy(lo + size_t(x / 2) * size_t(cl), out, cl);
      copy(sk + size_t(x) * size_t(cs), out + cl, cs);
    }
  });
}

}  // namespace mixseg
