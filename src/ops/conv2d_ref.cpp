// Reference convolution kernels (see conv2d_ref.h).
//
// Loop orders are chosen so the innermost loop is a contiguous axpy that the
// compiler vectorises without reassociating sums: the forward pass walks
// input channels and adds into all output channels (weights transposed once to
// [K,K,Cin,Cout]); backward-data adds into input channels straight from OHWI;
// backward-weights adds into one filter row per output channel. Every output
// element is summed by one thread in a fixed order, so results do not depend
// on the thread count. Rows are widened into zero-padded scratch rows so the
// inner loops have no bounds checks.
#include "ops/conv2d_ref.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/threads.h"

namespace mixseg {

namespace {

// Widens input row iy of image n into a zero-padded row of (w + 2*pad) * c values.
template <class T>
void load_padded_row(const T* x, int n, int iy, int h, int w, int c, int pad, acc_t<T>* row) {
  std::fill(row, row + size_t(w + 2 * pad) * c, acc_t<T>(0));
  if (iy < 0 || iy >= h) return;
  load_n(x + (size_t(n) * h + iy) * w * c, row + size_t(pad) * c, size_t(w) * c);
}

}  // namespace

template <class T>
void conv2d_fwd_ref(const ConvShape& s, const T* x, const T* w, T* y) {
  using A = acc_t<T>;
  const int K = s.k, pad = K / 2, Ci = s.cin, Co = s.cout;
  // Transposed weights [ky][kx][ci][co], widened once.
  std::vector<A> wt(s.weight_numel());
  for (int co = 0; co < Co; ++co)
    for (int t = 0; t < K * K; ++t)
      for (int ci = 0; ci < Ci; ++ci) wt[(size_t(t) * Ci + ci) * Co + co] = load(w[(size_t(co) * K * K + t) * Ci + ci]);

#pragma omp parallel
  {
    std::vector<A> rows(size_t(K) * (s.w + 2 * pad) * Ci), acc(size_t(s.w) * Co);
#pragma omp for schedule(static)
    for (int ny = 0; ny < s.n * s.h; ++ny) {
      const int n = ny / s.h, oy = ny % s.h;
      for (int ky = 0; ky < K; ++ky)
        load_padded_row(x, n, oy + ky - pad, s.h, s.w, Ci, pad, rows.data() + size_t(ky) * (s.w + 2 * pad) * Ci);
      std::fill(acc.begin(), acc.end(), A(0));
      for (int ox = 0; ox < s.w; ++ox) {
        A* a = acc.data() + size_t(ox) * Co;
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) {
            const A* xp = rows.data() + (size_t(ky) * (s.w + 2 * pad) + ox + kx) * Ci;
            const A* wp = wt.data() + size_t(ky * K + kx) * Ci * Co;
            for (int ci = 0; ci < Ci; ++ci) {
              const A v = xp[ci];
              const A* wr = wp + size_t(ci) * Co;
              for (int co = 0; co < Co; ++co) a[co] += v * wr[co];
            }
          }
      }
      store_n(acc.data(), y + size_t(ny) * s.w * Co, acc.size());
    }
  }
}

template <class T>
void conv2d_bwd_data_ref(const ConvShape& s, const T* dy, const T* w, T* dx) {
  using A = acc_t<T>;
  const int K = s.k, pad = K / 2, Ci = s.cin, Co = s.cout;
  std::vector<A> wf(s.weight_numel());
  load_n(w, wf.data(), wf.size());

#pragma omp parallel
  {
    std::vector<A> rows(size_t(K) * (s.w + 2 * pad) * Co), acc(size_t(s.w) * Ci);
#pragma omp for schedule(static)
    for (int ny = 0; ny < s.n * s.h; ++ny) {
      const int n = ny / s.h, iy = ny % s.h;
      // dx[iy][ix] gathers dy[iy - ky + pad][ix - kx + pad] * w[co][ky][kx].
      for (int ky = 0; ky < K; ++ky)
        load_padded_row(dy, n, iy - ky + pad, s.h, s.w, Co, pad, rows.data() + size_t(ky) * (s.w + 2 * pad) * Co);
      std::fill(acc.begin(), acc.end(), A(0));
      for (int ix = 0; ix < s.w; ++ix) {
        A* a = acc.data() + size_t(ix) * Ci;
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) {
            // padded index of ox = ix - kx + pad is ox + pad = ix - kx + 2*pad
            const A* gp = rows.data() + (size_t(ky) * (s.w + 2 * pad) + ix - kx + 2 * pad) * Co;
            for (int co = 0; co < Co; ++co) {
              const A g = gp[co];
              if (g == A(0)) continue;  // exact: skipping a zero term changes no sum
              const A* wr = wf.data() + (size_t(co) * K * K + ky * K + kx) * Ci;
              for (int ci = 0; ci < Ci; ++ci) a[ci] += g * wr[ci];
            }
          }
      }
      store_n(acc.data(), dx + size_t(ny) * s.w * Ci, acc.size());
    }
  }
}

template <class T>
void conv2d_bwd_weights_ref(const ConvShape& s, const T* x, const T* dy, acc_t<T>* dw) {
  using A = acc_t<T>;
  const int K = s.k, pad = K / 2, Ci = s.cin, Co = s.cout;
  std::fill(dw, dw + s.weight_numel(), A(0));
  // Threads own disjoint ranges of output channels; each sums over all pixels
  // in pixel order, so the result is the same for any thread count.
#pragma omp parallel
  {
    const int t = thread_index(), nt = thread_count();
    const int co0 = int(int64_t(Co) * t / nt), co1 = int(int64_t(Co) * (t + 1) / nt);
    std::vector<A> rows(size_t(K) * (s.w + 2 * pad) * Ci), g(size_t(s.w) * Co);
    for (int ny = 0; co0 < co1 && ny < s.n * s.h; ++ny) {
      const int n = ny / s.h, oy = ny % s.h;
      for (int ky = 0; ky < K; ++ky)
        load_padded_row(x, n, oy + ky - pad, s.h, s.w, Ci, pad, rows.data() + size_t(ky) * (s.w + 2 * pad) * Ci);
      load_n(dy + size_t(ny) * s.w * Co, g.data(), g.size());
      for (int ox = 0; ox < s.w; ++ox)
        for (int co = co0; co < co1; ++co) {
          const A gv = g[size_t(ox) * Co + co];
          if (gv == A(0)) continue;
          for (int ky = 0; ky < K; ++ky)
            for (int kx = 0; kx < K; ++kx) {
              const A* xp = rows.data() + (size_t(ky) * (s.w + 2 * pad) + ox + kx) * Ci;
              A* dwp = dw + (size_t(co) * K * K + ky * K + kx) * Ci;
              for (int ci = 0; ci < Ci; ++ci) dwp[ci] += gv * xp[ci];
            }
        }
    }
  }
}

#define INSTANTIATE(T)                                                         \
  template void conv2d_fwd_ref<T>(const ConvShape&, const T*, const T*, T*); \
  template void conv2d_bwd_data_ref<T>(const ConvShape&, const T*, const T*, T*); \
  template void conv2d_bwd_weights_ref<T>(const ConvShape&, const T*, const T*, acc_t<T>*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
