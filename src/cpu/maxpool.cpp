// Fast CPU max pooling kernels (see maxpool.h).
#include "cpu/maxpool.h"

#include <type_traits>
#include <vector>

#include "cpu/f32_view.h"
#include "ops/kernel_types.h"
#include "ops/maxpool_ref.h"

namespace mixseg {

namespace {

// One window row of C channels: the four inputs a, b (upper row), d, e
// (lower row) give their gradients from g to the first maximum (added to
// da..de with Accumulate). Restrict pointers and selects rather than
// branches, so the loop vectorises.
template <bool Accumulate>
void window_grads(int C, const float* __restrict a, const float* __restrict b, const float* __restrict d,
                  const float* __restrict e, const float* __restrict g, float* __restrict da, float* __restrict db,
                  float* __restrict dd, float* __restrict de) {
#pragma omp simd
  for (int c = 0; c < C; ++c) {
    const bool gt_b = b[c] > a[c];
    const float m_ab = gt_b ? b[c] : a[c];
    const bool gt_d = d[c] > m_ab;
    const bool gt_e = e[c] > (gt_d ? d[c] : m_ab);
    const int k = gt_e ? 3 : gt_d ? 2 : gt_b ? 1 : 0;
    const float va = k == 0 ? g[c] : 0.0f, vb = k == 1 ? g[c] : 0.0f, vd = k == 2 ? g[c] : 0.0f,
                ve = k == 3 ? g[c] : 0.0f;
    if constexpr (Accumulate) {
      da[c] += va, db[c] += vb, dd[c] += vd, de[c] += ve;
    } else {
      da[c] = va, db[c] = vb, dd[c] = vd, de[c] = ve;
    }
  }
}

void window_max(int C, const float* __restrict a, const float* __restrict b, const float* __restrict d,
                const float* __restrict e, float* __restrict out) {
#pragma omp simd
  for (int c = 0; c < C; ++c) {
    float m = a[c];
    m = b[c] > m ? b[c] : m;
    m = d[c] > m ? d[c] : m;
    m = e[c] > m ? e[c] : m;
    out[c] = m;
  }
}

}  // namespace

template <class T>
void maxpool2x2_fwd_fast(const Shape& s, const T* x, size_t xs, T* y) {
  check_maxpool2x2_shape(s);
  const int oh = s.h / 2, ow = s.w / 2, C = s.c;
  const size_t in_row = size_t(s.w) * xs, out_row_n = size_t(ow) * C;
#pragma omp parallel
  {
    std::vector<float> r0b, r1b, ob;
#pragma omp for schedule(static)
    for (int ny = 0; ny < s.n * oh; ++ny) {
      const T* src = x + size_t(ny) * 2 * in_row;  // rows 2*oy and 2*oy+1 of image n
      const auto r0 = f32_in_pixels(src, size_t(s.w), size_t(C), xs, r0b);
      const auto r1 = f32_in_pixels(src + in_row, size_t(s.w), size_t(C), xs, r1b);
      float* o = f32_out(y + size_t(ny) * out_row_n, out_row_n, ob);
      for (int ox = 0; ox < ow; ++ox) {
        const float *a = r0.p + size_t(2 * ox) * r0.stride, *d = r1.p + size_t(2 * ox) * r1.stride;
        window_max(C, a, a + r0.stride, d, d + r1.stride, o + size_t(ox) * C);
      }
      f32_out_done(o, y + size_t(ny) * out_row_n, out_row_n);
    }
  }
}

template <class T>
void maxpool2x2_bwd_fast(const Shape& s, const T* x, size_t xs, const T* dy, T* dx, size_t dxs, bool accumulate) {
  check_maxpool2x2_shape(s);
  const int oh = s.h / 2, ow = s.w / 2, C = s.c;
  const size_t W = size_t(s.w), out_row_n = size_t(ow) * C;
#pragma omp parallel
  {
    std::vector<float> r0b, r1b, gb, d0b, d1b;
#pragma omp for schedule(static)
    for (int ny = 0; ny < s.n * oh; ++ny) {
      const T* xr = x + size_t(ny) * 2 * W * xs;  // rows 2*oy and 2*oy+1 of image n
      T* dr = dx + size_t(ny) * 2 * W * dxs;
      const auto r0 = f32_in_pixels(xr, W, size_t(C), xs, r0b);
      const auto r1 = f32_in_pixels(xr + W * xs, W, size_t(C), xs, r1b);
      const float* g = f32_in(dy + size_t(ny) * out_row_n, out_row_n, gb);
      // 16-bit and accumulating: what is there, widened, to add to.
      const auto d0 = f32_out_pixels(dr, W, size_t(C), dxs, d0b, accumulate);
      const auto d1 = f32_out_pixels(dr + W * dxs, W, size_t(C), dxs, d1b, accumulate);
      for (int ox = 0; ox < ow; ++ox) {
        const size_t x0 = size_t(2 * ox) * r0.stride, x1 = x0 + r0.stride;  // r0, r1: one stride
        const size_t o0 = size_t(2 * ox) * d0.stride, o1 = o0 + d0.stride;  // d0, d1: one stride
        const float* gg = g + size_t(ox) * C;
        if (accumulate)
          window_grads<true>(C, r0.p + x0, r0.p + x1, r1.p + x0, r1.p + x1, gg, d0.p + o0, d0.p + o1, d1.p + o0,
                             d1.p + o1);
        else
          window_grads<false>(C, r0.p + x0, r0.p + x1, r1.p + x0, r1.p + x1, gg, d0.p + o0, d0.p + o1, d1.p + o0,
                              d1.p + o1);
      }
      f32_out_pixels_done(d0, dr, W, size_t(C), dxs);
      f32_out_pixels_done(d1, dr + W * dxs, W, size_t(C), dxs);
    }
  }
}

#define INSTANTIATE(T)                                                      \
  template void maxpool2x2_fwd_fast<T>(const Shape&, const T*, size_t, T*); \
  template void maxpool2x2_bwd_fast<T>(const Shape&, const T*, size_t, const T*, T*, size_t, bool);
INSTANTIATE(float)
INSTANTIATE(f16)
INSTANTIATE(bf16)

}  // namespace mixseg
