// The input of an int8 convolution as padded rows: image b's row iy of
// [h, w, cin] int8 becomes padded row iy + pad of (w + 2 pad) * cin elements
// of T, each value converted as the kernel reads it, with `border` around
// the image (pad rows above and below, pad pixels left and right). Each
// thread builds the k rows its current output row reads in a window of k
// slots as its (ascending) output rows reach them: a padded row is written
// once per thread that reads it and read back from L1/L2, instead of the
// whole padded input written first and streamed back three times (measured
// in docs/performance.md v0.35). Used by the AVX2 and VNNI convolutions.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace mixseg {

// A thread's k padded rows: slot py % k holds padded row py of image
// held[slot] / ph (k consecutive rows take distinct slots), then `slack`
// elements for kernels that read a little past a row's end (whatever they
// read there meets zero weights).
template <class T>
struct RowWindow {
  std::vector<T> buf;
  int64_t held[16];  // b * ph + py per slot, -1: none
};

// Where the padded rows come from: fill(b, iy, out) writes image b's row
// iy (w * cin converted elements) at out.
template <class T, class Fill>
struct PaddedSource {
  int h, w, cin, pad;
  T border;
  Fill fill;
  size_t row_len() const { return size_t(w + 2 * pad) * size_t(cin); }
};

// Empties the window (a new input) and sizes it for k rows and the slack.
template <class T, class Fill>
void window_reset(RowWindow<T>& win, const PaddedSource<T, Fill>& src, int k, size_t slack) {
  win.buf.resize(size_t(k) * src.row_len() + slack);
  std::fill(win.buf.end() - std::ptrdiff_t(slack), win.buf.end(), src.border);
  std::fill(std::begin(win.held), std::end(win.held), int64_t(-1));
}

// rows[ky] (ky < k) = padded row oy + ky of image b, the ones the window
// does not hold yet written now.
template <class T, class Fill>
void window_rows(RowWindow<T>& win, const PaddedSource<T, Fill>& src, int k, int b, int oy, const T** rows) {
  const size_t row_len = src.row_len();
  const int64_t ph = src.h + 2 * src.pad;
  for (int ky = 0; ky < k; ++ky) {
    const int py = oy + ky, slot = py % k;
    T* dst = win.buf.data() + size_t(slot) * row_len;
    rows[ky] = dst;
    if (win.held[slot] == b * ph + py) continue;
    win.held[slot] = b * ph + py;
    const int iy = py - src.pad;
    if (iy < 0 || iy >= src.h) {
      std::fill(dst, dst + row_len, src.border);
      continue;
    }
    const size_t left = size_t(src.pad) * size_t(src.cin);
    std::fill(dst, dst + left, src.border);
    src.fill(b, iy, dst + left);
    std::fill(dst + left + size_t(src.w) * size_t(src.cin), dst + row_len, src.border);
  }
}

// The rows of x [n, h, w, cin] each value converted by `convert`.
template <class T, class Convert>
auto converted_rows(const int8_t* x, int h, int w, int cin, int pad, T border, Convert convert) {
  // Locals, not the closure's members, in the loop: a byte store may alias
  // those, which would keep the compiler from vectorizing (measured 1.4-2x
  // the time).
  auto fill = [=](int b, int iy, T* out) {
    const size_t len = size_t(w) * size_t(cin);
    const int8_t* row = x + (size_t(b) * size_t(h) + size_t(iy)) * len;
    const Convert cv = convert;
    for (size_t i = 0; i < len; ++i) out[i] = cv(row[i]);
  };
  return PaddedSource<T, decltype(fill)>{h, w, cin, pad, border, fill};
}

// The rows of the decoder's input concat(upsample2x(low), skip) without
// forming it, converted as the VNNI kernel reads its input (u8 = x + 128,
// x ^ 0x80): low [n, h/2, w/2, c_low] (nearest, each pixel twice in each
// direction), skip [n, h, w, c_skip], h and w even; cin = c_low + c_skip.
// Channel counts that are multiples of 8 (the U-Net's) move 8 bytes at a time.
inline auto upsample_concat_rows(const int8_t* low, int c_low, const int8_t* skip, int c_skip, int h, int w, int pad,
                                 uint8_t border) {
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
  auto fill = [=](int b, int iy, uint8_t* out) {
    const int width = w, cl = c_low, cs = c_skip, step = cl + cs;  // locals (see converted_rows)
    const int8_t* lo = low + (size_t(b) * size_t(h / 2) + size_t(iy / 2)) * size_t(width / 2) * size_t(cl);
    const int8_t* sk = skip + (size_t(b) * size_t(h) + size_t(iy)) * size_t(width) * size_t(cs);
    for (int x = 0; x < width; ++x, out += step) {
      copy(lo + size_t(x / 2) * size_t(cl), out, cl);
      copy(sk + size_t(x) * size_t(cs), out + cl, cs);
    }
  };
  return PaddedSource<uint8_t, decltype(fill)>{h, w, c_low + c_skip, pad, border, fill};
}

}  // namespace mixseg
