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
void maxpool2x2_fwd_fast(const Shape& s, const T* x, T* y) {
  check_maxpool2x2_shape(s);
  const int oh = s.h / 2, ow = s.w / 2, C = s.c;
  const size_t in_row = size_t(s.w) * C, out_row_n = size_t(ow) * C;
#pragma omp parallel
  {
    std::vector<float> r0b, r1b, ob;
#pragma omp for schedule(static)
    for (int ny = 0; ny < s.n * oh; ++ny) {
      const T* src = x + size_t(ny) * 2 * in_row;  // rows 2*oy and 2*oy+1 of image n
      const float* r0 = f32_in(src, in_row, r0b);
      const float* r1 = f32_in(src + in_row, in_row, r1b);
      float* o = f32_out(y + size_t(ny) * out_row_n, out_row_n, ob);
      for (int ox = 0; ox < ow; ++ox) {
        const float *a = r0 + size_t(2 * ox) * C, *d = r1 + size_t(2 * ox) * C;
        window_max(C, a, a + C, d, d + C, o + size_t(ox) * C);
      }
      f32_out_done(o, y + size_t(ny) * out_row_n, out_row_n);
    }
  }
}

template <class T>
void maxpool2x2_bwd_fast(const Shape& s, const T* x, const T* dy, T* dx, bool accumulate) {
  check_maxpool2x2_shape(s);
  const int oh = s.h / 2, ow = s.w / 2, C = s.c;
  const size_t in_row = size_t(s.w) * C, out_row_n = size_t(ow) * C;
#pragma omp parallel
  {
    std::vector<float> r0b, r1b, gb, d0b, d1b;
#pragma omp for schedule(static)
    for (int ny = 0; ny < s.n * oh; ++ny) {
      const size_t first = size_t(ny) * 2 * in_row;
      const float* r0 = f32_in(x + first, in_row, r0b);
      const float* r1 = f32_in(x + first + in_row, in_row, r1b);
      const float* g = f32_in(dy + size_t(ny) * out_row_n, out_row_n, gb);
      float* d0 = f32_out(dx + first, in_row, d0b);
      float* d1 = f32_out(dx + first + in_row, in_row, d1b);
      if (accumulate && d0 != static_cast<void*>(dx + first)) {  // 16-bit: what is there, widened, to add to
        widen(dx + first, d0, in_row);
        widen(dx + first + in_row, d1, in_row);
      }
      for (int ox = 0; ox < ow; ++ox) {
        const size_t i0 = size_t(2 * ox) * C, i1 = i0 + C;
        const float* gg = g + size_t(ox) * C;
        if (accumulate)
          window_grads<true>(C, r0 + i0, r0 + i1, r1 + i0, r1 + i1, gg, d0 + i0, d0 + i1, d1 + i0, d1 + i1);
        else
          window_grads<false>(C, r0 + i0, r0 + i1, r1 + i0, r1 + i1, gg, d0 + i0, d0 + i1, d1 + i0, d1 + i1);
      }
      f32_out_done(d0, dx + first, in_row);
      f32_out_done(d1, dx + first + in_row, in_row);
    }
  }
}

#define INSTANTIATE(T)                                                     \
  template void maxpool2x2_fwd_fast<T>(const Shape&, const T*, T*); \
  template void maxpool2x2_bwd_fast<T>(const Shape&, const T*, const T*, T*, bool);
INSTANTIATE(float)
INSTANTIATE(f16)
INSTANTIATE(bf16)

}  // namespace mixseg
