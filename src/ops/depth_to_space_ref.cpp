// Reference 2x2 depth-to-space kernels (see depth_to_space_ref.h).
#include "ops/depth_to_space_ref.h"

namespace mixseg {

namespace {

// Input pixel (row ny of all images, column ix) and its four output pixels:
// each position p = 2a + b moves channels [pC, (p+1)C) to output pixel
// (2i+a, 2j+b). forward copies input -> output, else output -> input; the
// output's pixels are `stride` elements apart.
template <class T, bool forward>
void move_blocks(const Shape& s, const T* from, T* to, size_t stride) {
  const int c = s.c / 4;
  const size_t orow = size_t(2 * s.w) * stride;  // one output row
#pragma omp parallel for schedule(static)
  for (int ny = 0; ny < s.n * s.h; ++ny)  // output rows 2*iy and 2*iy+1 of image n follow from ny
    for (int ix = 0; ix < s.w; ++ix) {
      const size_t in = (size_t(ny) * s.w + size_t(ix)) * size_t(s.c);
      for (int p = 0; p < 4; ++p) {
        const size_t out = size_t(2 * ny + p / 2) * orow + size_t(2 * ix + p % 2) * stride;
        if constexpr (forward)
          copy_channels(from + in + size_t(p) * size_t(c), to + out, c);
        else
          copy_channels(from + out, to + in + size_t(p) * size_t(c), c);
      }
    }
}

}  // namespace

template <class T>
void depth_to_space2x2_fwd_ref(const Shape& x_shape, const T* x, T* y, size_t y_stride) {
  move_blocks<T, true>(x_shape, x, y, y_stride);
}

template <class T>
void depth_to_space2x2_bwd_ref(const Shape& x_shape, const T* dy, size_t dy_stride, T* dx) {
  move_blocks<T, false>(x_shape, dy, dx, dy_stride);
}

#define INSTANTIATE(T)                                                    \
  template void depth_to_space2x2_fwd_ref<T>(const Shape&, const T*, T*, size_t); \
  template void depth_to_space2x2_bwd_ref<T>(const Shape&, const T*, size_t, T*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)
template void depth_to_space2x2_fwd_ref<int8_t>(const Shape&, const int8_t*, int8_t*, size_t);  // the int8 engine's move

}  // namespace mixseg
