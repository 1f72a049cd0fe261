// Reference 2x2 max pooling kernels (see maxpool_ref.h). Exact in every type.
#include "ops/maxpool_ref.h"

#include "core/error.h"

namespace mixseg {

namespace {
// Offsets (in elements) of the four inputs of a window at (n, oy, ox), channel 0.
inline void window(const Shape& s, int n, int oy, int ox, size_t off[4]) {
  const size_t row = size_t(s.w) * s.c;
  const size_t base = (size_t(n) * s.h + 2 * oy) * row + size_t(2 * ox) * s.c;
  off[0] = base;
  off[1] = base + s.c;
  off[2] = base + row;
  off[3] = base + row + s.c;
}
// Index (0..3) of the first maximum of the window's channel c.
template <class T>
inline int argmax4(const T* x, const size_t off[4], int c) {
  int best = 0;
  for (int k = 1; k < 4; ++k)
    if (load(x[off[k] + c]) > load(x[off[best] + c])) best = k;
  return best;
}

}  // namespace

void check_maxpool2x2_shape(const Shape& s) {
  if (s.h % 2 || s.w % 2) fail("maxpool 2x2: input {} needs an even height and width", to_string(s));
}

template <class T>
void maxpool2x2_fwd_ref(const Shape& s, const T* x, T* y) {
  check_maxpool2x2_shape(s);
  const int oh = s.h / 2, ow = s.w / 2;
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * oh; ++ny) {
    const int n = ny / oh, oy = ny % oh;
    for (int ox = 0; ox < ow; ++ox) {
      size_t off[4];
      window(s, n, oy, ox, off);
      T* out = y + (size_t(ny) * ow + ox) * s.c;
      for (int c = 0; c < s.c; ++c) out[c] = x[off[argmax4(x, off, c)] + c];
    }
  }
}

template <class T>
void maxpool2x2_bwd_ref(const Shape& s, const T* x, const T* dy, T* dx, bool accumulate) {
  check_maxpool2x2_shape(s);
  const int oh = s.h / 2, ow = s.w / 2;
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * oh; ++ny) {
    const int n = ny / oh, oy = ny % oh;
    for (int ox = 0; ox < ow; ++ox) {
      size_t off[4];
      window(s, n, oy, ox, off);
      const T* g = dy + (size_t(ny) * ow + ox) * s.c;
      for (int c = 0; c < s.c; ++c) {
        const int best = argmax4(x, off, c);
        for (int k = 0; k < 4; ++k) {
          const T v = k == best ? g[c] : store<T>(0);
          T& out = dx[off[k] + c];
          out = accumulate ? store<T>(load(out) + load(v)) : v;
        }
      }
    }
  }
}

#define INSTANTIATE(T)                                                    \
  template void maxpool2x2_fwd_ref<T>(const Shape&, const T*, T*); \
  template void maxpool2x2_bwd_ref<T>(const Shape&, const T*, const T*, T*, bool);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
