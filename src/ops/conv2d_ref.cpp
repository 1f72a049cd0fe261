// Reference convolution kernels (see conv2d_ref.h).
//
// Plain loops, arranged so the compiler vectorises them without reassociating
// any sum: the innermost loop runs over a block of CB consecutive channels
// (CB = 32, 16, 8 or 1, a compile-time constant) held in a local accumulator
// array that lives in registers, and every sum runs in a fixed order:
//   forward:          y[p][co..]  = sum over (ky, kx, ci) of x * w   (w transposed once to [K,K,Cin,Cout])
//   backward-data:    dx[p][ci..] = sum over (ky, kx, co) of dy * w  (w in OHWI: ci contiguous)
//   backward-weights: dw[co][ky][kx][ci..] = sum over rows, then x within the row, of dy * x
// Each output element is summed by one thread, so results never depend on the
// thread count. Rows are widened to acc_t<T> into zero-padded scratch rows so
// the inner loops have no bounds checks and no 16-bit conversions.
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

// The widest channel block that divides c.
inline int block_for(int c) { return c % 32 == 0 ? 32 : c % 16 == 0 ? 16 : c % 8 == 0 ? 8 : 1; }

// Calls f.template operator()<CB>() with CB = block_for(c) as a constant.
template <class F>
void with_block(int c, F&& f) {
  switch (block_for(c)) {
    case 32: return f.template operator()<32>();
    case 16: return f.template operator()<16>();
    case 8: return f.template operator()<8>();
    default: return f.template operator()<1>();
  }
}

}  // namespace

template <class T>
void conv2d_fwd_ref(const ConvShape& s, const T* x, const T* w, T* y, const float* bias, bool relu) {
  using A = acc_t<T>;
  const int K = s.k, pad = K / 2, Ci = s.cin, Co = s.cout, RW = s.w + 2 * pad;
  // Transposed weights [ky][kx][ci][co], widened once.
  std::vector<A> wt(s.weight_numel());
  for (int co = 0; co < Co; ++co)
    for (int t = 0; t < K * K; ++t)
      for (int ci = 0; ci < Ci; ++ci) wt[(size_t(t) * Ci + ci) * Co + co] = load(w[(size_t(co) * K * K + t) * Ci + ci]);

  with_block(Co, [&]<int CB>() {
#pragma omp parallel
    {
      std::vector<A> rows(size_t(K) * RW * Ci), out(size_t(s.w) * Co);
#pragma omp for schedule(static)
      for (int ny = 0; ny < s.n * s.h; ++ny) {
        const int n = ny / s.h, oy = ny % s.h;
        for (int ky = 0; ky < K; ++ky) load_padded_row(x, n, oy + ky - pad, s.h, s.w, Ci, pad, rows.data() + size_t(ky) * RW * Ci);
        for (int ox = 0; ox < s.w; ++ox)
          for (int c0 = 0; c0 < Co; c0 += CB) {
            A acc[CB];
            for (int j = 0; j < CB; ++j) acc[j] = bias ? A(bias[c0 + j]) : A(0);
            for (int ky = 0; ky < K; ++ky)
              for (int kx = 0; kx < K; ++kx) {
                const A* xp = rows.data() + (size_t(ky) * RW + ox + kx) * Ci;
                const A* wp = wt.data() + size_t(ky * K + kx) * Ci * Co + c0;
                for (int ci = 0; ci < Ci; ++ci)
                  for (int j = 0; j < CB; ++j) acc[j] += xp[ci] * wp[size_t(ci) * Co + j];
              }
            if (relu)
              for (int j = 0; j < CB; ++j) acc[j] = std::max(acc[j], A(0));
            std::copy_n(acc, CB, out.data() + size_t(ox) * Co + c0);
          }
        store_n(out.data(), y + size_t(ny) * s.w * Co, out.size());
      }
    }
  });
}

template <class T>
void conv2d_bwd_data_ref(const ConvShape& s, const T* dy, const T* w, T* dx) {
  using A = acc_t<T>;
  const int K = s.k, pad = K / 2, Ci = s.cin, Co = s.cout, RW = s.w + 2 * pad;
  std::vector<A> wf(s.weight_numel());
  load_n(w, wf.data(), wf.size());

  with_block(Ci, [&]<int CB>() {
#pragma omp parallel
    {
      std::vector<A> rows(size_t(K) * RW * Co), out(size_t(s.w) * Ci);
#pragma omp for schedule(static)
      for (int ny = 0; ny < s.n * s.h; ++ny) {
        const int n = ny / s.h, iy = ny % s.h;
        // dx[iy][ix] gathers dy[iy - ky + pad][ix - kx + pad] * w[co][ky][kx].
        for (int ky = 0; ky < K; ++ky)
          load_padded_row(dy, n, iy - ky + pad, s.h, s.w, Co, pad, rows.data() + size_t(ky) * RW * Co);
        for (int ix = 0; ix < s.w; ++ix)
          for (int c0 = 0; c0 < Ci; c0 += CB) {
            A acc[CB] = {};
            for (int ky = 0; ky < K; ++ky)
              for (int kx = 0; kx < K; ++kx) {
                // padded index of ox = ix - kx + pad is ix - kx + 2*pad
                const A* gp = rows.data() + (size_t(ky) * RW + ix - kx + 2 * pad) * Co;
                const A* wp = wf.data() + size_t(ky * K + kx) * Ci + c0;
                for (int co = 0; co < Co; ++co)
                  for (int j = 0; j < CB; ++j) acc[j] += gp[co] * wp[size_t(co) * K * K * Ci + j];
              }
            std::copy_n(acc, CB, out.data() + size_t(ix) * Ci + c0);
          }
        store_n(out.data(), dx + size_t(ny) * s.w * Ci, out.size());
      }
    }
  });
}

template <class T>
void conv2d_bwd_weights_ref(const ConvShape& s, const T* x, const T* dy, acc_t<T>* dw) {
  using A = acc_t<T>;
  const int K = s.k, pad = K / 2, Ci = s.cin, Co = s.cout, RW = s.w + 2 * pad;
  std::fill(dw, dw + s.weight_numel(), A(0));
  // Threads own disjoint ranges of output channels; each visits all rows in
  // order, so the result is the same for any thread count.
  with_block(Ci, [&]<int CB>() {
#pragma omp parallel
    {
      const int t = thread_index(), nt = thread_count();
      const int co0 = int(int64_t(Co) * t / nt), co1 = int(int64_t(Co) * (t + 1) / nt);
      std::vector<A> rows(size_t(K) * RW * Ci), g(size_t(s.w) * Co);
      for (int ny = 0; co0 < co1 && ny < s.n * s.h; ++ny) {
        const int n = ny / s.h, oy = ny % s.h;
        for (int ky = 0; ky < K; ++ky) load_padded_row(x, n, oy + ky - pad, s.h, s.w, Ci, pad, rows.data() + size_t(ky) * RW * Ci);
        load_n(dy + size_t(ny) * s.w * Co, g.data(), g.size());
        for (int co = co0; co < co1; ++co)
          for (int ky = 0; ky < K; ++ky)
            for (int kx = 0; kx < K; ++kx)
              for (int c0 = 0; c0 < Ci; c0 += CB) {
                A acc[CB] = {};
                const A* xp = rows.data() + size_t(ky) * RW * Ci + size_t(kx) * Ci + c0;
                for (int ox = 0; ox < s.w; ++ox)
                  for (int j = 0; j < CB; ++j) acc[j] += g[size_t(ox) * Co + co] * xp[size_t(ox) * Ci + j];
                A* d = dw + (size_t(co) * K * K + ky * K + kx) * Ci + c0;
                for (int j = 0; j < CB; ++j) d[j] += acc[j];
              }
      }
    }
  });
}

#define INSTANTIATE(T)                                                                  \
  template void conv2d_fwd_ref<T>(const ConvShape&, const T*, const T*, T*, const float*, bool); \
  template void conv2d_bwd_data_ref<T>(const ConvShape&, const T*, const T*, T*);     \
  template void conv2d_bwd_weights_ref<T>(const ConvShape&, const T*, const T*, acc_t<T>*);
MIXSEG_INSTANTIATE_FLOAT_KERNEL(INSTANTIATE)

}  // namespace mixseg
