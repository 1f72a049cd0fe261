// The own direct weight gradient for narrow layers (see conv2d_bwd_weights_rows.h).
#include "cpu/conv2d_bwd_weights_rows.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

#if defined(__AVX2__) && defined(__GNUC__) && defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass undefined merge operands that
// -W(maybe-)uninitialized reports once inlined (GCC bug 105593): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#define MIXSEG_ROWS_AVX512 1
// avx512bf16 lets the pair kernel's intrinsics compile; it runs only where
// conv2d_bwd_weights_rows_pairs_available says the CPU has them.
#define MIXSEG_ROWS_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma,f16c")))
#endif

namespace mixseg {

namespace {
constexpr int kMaxVectors = 6;  // 16-lane vectors per kernel row: 3 cin <= 96
int vectors_per_row(int cin) { return (3 * cin + 15) / 16; }
// Output channels per pass over a row: group x vectors accumulators within
// 24 of the 32 registers (the rest: the row's vectors and the broadcast).
int group_size(int nv) { return nv <= 3 ? 8 : 4; }
}  // namespace

bool conv2d_bwd_weights_rows_applies(const ConvShape& s, DType dt) {
  return s.k == 3 && (dt == DType::f32 || dt == DType::f16 || dt == DType::bf16) && s.cin >= 1 &&
         vectors_per_row(s.cin) <= kMaxVectors && s.cout >= 1 && s.n >= 1 && s.h >= 1 && s.w >= 1;
}

#ifdef MIXSEG_ROWS_AVX512

bool conv2d_bwd_weights_rows_available() {
  static const bool ok =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return ok;
}

bool conv2d_bwd_weights_rows_pairs_available() {
  return conv2d_bwd_weights_rows_available() && __builtin_cpu_supports("avx512bf16");
}

namespace {

// The kernel rows: one row of output pixels (or pairs) against one kernel
// row for G output channels. acc holds G x NV vectors (channel-major, lane
// c = kx cin + ci); the output gradient's operand has dy_stride lanes per
// pixel (pair) from the group's first channel.

// f32 rows: x_row is the padded input row (pixel -1 first).
template <int NV, int G>
MIXSEG_ROWS_TARGET void row_of_pixels(const float* x_row, int cin, const float* dy_row, int dy_stride, int w,
                                      float* acc) {
  __m512 a[G][NV];
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v) a[g][v] = _mm512_loadu_ps(acc + (g * NV + v) * 16);
  for (int p = 0; p < w; ++p) {
    const float* xb = x_row + size_t(p) * cin;  // pixels p - 1 .. p + 1: the taps kx of pixel p
    __m512 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(xb + 16 * v);
    const float* d = dy_row + size_t(p) * dy_stride;
    for (int g = 0; g < G; ++g) {
      const __m512 dv = _mm512_set1_ps(d[g]);
      for (int v = 0; v < NV; ++v) a[g][v] = _mm512_fmadd_ps(dv, b[v], a[g][v]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + (g * NV + v) * 16, a[g][v]);
}

// bf16 pairs: x_pairs holds the input row's pair entries from e = 0 (q = -1).
template <int NV, int G>
MIXSEG_ROWS_TARGET void row_of_pairs(const uint32_t* x_pairs, int cin, const uint32_t* dy_pairs, int dy_stride,
                                     int npairs, float* acc) {
  __m512 a[G][NV];
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v) a[g][v] = _mm512_loadu_ps(acc + (g * NV + v) * 16);
  for (int p = 0; p < npairs; ++p) {
    const uint32_t* xb = x_pairs + size_t(2 * p) * cin;  // entries 2p.. : taps kx of pixels 2p, 2p + 1
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(xb + 16 * v);
    const uint32_t* d = dy_pairs + size_t(p) * dy_stride;
    for (int g = 0; g < G; ++g) {
      const __m512bh dv = (__m512bh)_mm512_set1_epi32(int32_t(d[g]));
      for (int v = 0; v < NV; ++v) a[g][v] = _mm512_dpbf16_ps(a[g][v], dv, b[v]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + (g * NV + v) * 16, a[g][v]);
}

using PixelsFn = void (*)(const float*, int, const float*, int, int, float*);
using PairsFn = void (*)(const uint32_t*, int, const uint32_t*, int, int, float*);
constexpr std::array<PixelsFn, kMaxVectors + 1> kPixelsFns = {nullptr,
                                                              row_of_pixels<1, 8>,
                                                              row_of_pixels<2, 8>,
                                                              row_of_pixels<3, 8>,
                                                              row_of_pixels<4, 4>,
                                                              row_of_pixels<5, 4>,
                                                              row_of_pixels<6, 4>};
constexpr std::array<PairsFn, kMaxVectors + 1> kPairsFns = {nullptr,
                                                            row_of_pairs<1, 8>,
                                                            row_of_pairs<2, 8>,
                                                            row_of_pairs<3, 8>,
                                                            row_of_pairs<4, 4>,
                                                            row_of_pairs<5, 4>,
                                                            row_of_pairs<6, 4>};

// n values of storage type dt (f32, f16, bf16) as f32.
MIXSEG_ROWS_TARGET void widen(DType dt, const void* src, size_t n, float* dst) {
  if (dt == DType::f32) return (void)std::memcpy(dst, src, n * sizeof(float));
  const auto* s = static_cast<const uint16_t*>(src);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
    _mm512_storeu_ps(dst + i, dt == DType::f16 ? _mm512_cvtph_ps(h)
                                               : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
  }
  for (; i < n; ++i) dst[i] = dt == DType::f16 ? to_f32(f16{s[i]}) : bf16_to_f32(bf16{s[i]});
}

// Interleaves the 16-bit values a[j] and b[j] into out[j] = a[j] | b[j] << 16 for j < n.
MIXSEG_ROWS_TARGET void interleave16(const uint16_t* a, const uint16_t* b, size_t n, uint32_t* out) {
  // The unpacks interleave within 128-bit lanes (four pairs each, low then
  // high halves); the permutes put lane k's halves in order.
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  size_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512i va = _mm512_loadu_si512(a + j), vb = _mm512_loadu_si512(b + j);
    const __m512i lo = _mm512_unpacklo_epi16(va, vb), hi = _mm512_unpackhi_epi16(va, vb);
    _mm512_storeu_si512(out + j, _mm512_permutex2var_epi64(lo, first, hi));
    _mm512_storeu_si512(out + j + 16, _mm512_permutex2var_epi64(lo, second, hi));
  }
  for (; j < n; ++j) out[j] = uint32_t(a[j]) | uint32_t(b[j]) << 16;
}

// An input row's pair entries 0 .. w (w pixels of cin channels): entry e
// lane c = (x[e - 1][c], x[e][c]), zero outside the row. The entries past w
// stay zero from the buffer's start (never written).
void x_pair_row(const uint16_t* row, int w, int cin, uint32_t* out) {
  const size_t c = size_t(cin), last = size_t(w - 1) * c;
  for (size_t i = 0; i < c; ++i) out[i] = uint32_t(row[i]) << 16;                   // (0, x[0])
  interleave16(row, row + c, last, out + c);                                        // (x[e-1], x[e])
  for (size_t i = 0; i < c; ++i) out[size_t(w) * c + i] = uint32_t(row[last + i]);  // (x[w-1], 0)
}

// An output-gradient row's pairs: pair p lane co = (dy[2p][co], dy[2p + 1][co]),
// zero past the row's end and for co >= cout (up to cout_pad). Pairs of
// whole pixels at 8 or a multiple of 16 channels: one word permute per 16 lanes.
MIXSEG_ROWS_TARGET void dy_pair_row(const uint16_t* dy, int w, int cout, int cout_pad, int npairs, uint32_t* out) {
  int p = 0;
  if (cout == cout_pad && cout == 8) {  // both pixels in one 256-bit load
    const __m256i idx = _mm256_setr_epi16(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    for (; 2 * p + 1 < w; ++p)
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(out + size_t(p) * 8),
          _mm256_permutexvar_epi16(idx, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dy + size_t(p) * 16))));
  } else if (cout == cout_pad && cout % 16 == 0) {
    // Word c of pixel 2p (index c) and of pixel 2p + 1 (index 32 + c), alternating.
    const __m512i idx =
        _mm512_setr_epi32(0x200000, 0x210001, 0x220002, 0x230003, 0x240004, 0x250005, 0x260006, 0x270007, 0x280008,
                          0x290009, 0x2a000a, 0x2b000b, 0x2c000c, 0x2d000d, 0x2e000e, 0x2f000f);
    for (; 2 * p + 1 < w; ++p)
      for (int c0 = 0; c0 < cout; c0 += 16) {
        const uint16_t* first = dy + size_t(2 * p) * cout + c0;
        const __m512i a = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first)));
        const __m512i b = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + cout)));
        _mm512_storeu_si512(out + size_t(p) * cout + c0, _mm512_permutex2var_epi16(a, idx, b));
      }
  }
  for (; p < npairs; ++p) {
    const uint16_t* first = dy + size_t(2 * p) * cout;
    uint32_t* o = out + size_t(p) * cout_pad;
    for (int co = 0; co < cout_pad; ++co) {
      const uint32_t lo = co < cout ? first[co] : 0, hi = co < cout && 2 * p + 1 < w ? first[cout + co] : 0;
      o[co] = lo | hi << 16;
    }
  }
}

// What the driver below needs of a form, per thread: an input row made into
// the kernel's operand (slot of x_slot elements, zeros past what a row
// writes), an output-gradient row's operand, and the kernel row.

// f32, f16, and bf16 without pairs: padded f32 rows (pixel -1 first).
struct PixelRows {
  using Elem = float;
  DType dt;
  const ConvShape& s;
  int cout_pad;
  PixelsFn fn;
  size_t x_slot() const { return (size_t(s.w) + 2) * s.cin + 16 * kMaxVectors; }
  size_t dy_size() const { return size_t(s.w) * cout_pad; }
  void x_row(const void* x, size_t in_row, float* slot) const {
    const size_t n = size_t(s.w) * s.cin;
    widen(dt, static_cast<const std::byte*>(x) + in_row * n * dtype_size(dt), n, slot + s.cin);
  }
  // The channels past cout stay zero from the buffer's start.
  void dy_row(const void* dy, size_t r, float* out) const {
    const size_t n = size_t(s.w) * s.cout;
    const std::byte* src = static_cast<const std::byte*>(dy) + r * n * dtype_size(dt);
    if (cout_pad == s.cout) return widen(dt, src, n, out);
    for (int p = 0; p < s.w; ++p)
      widen(dt, src + size_t(p) * s.cout * dtype_size(dt), size_t(s.cout), out + size_t(p) * cout_pad);
  }
  void kernel_row(const float* x_slot, const float* dy, int co0, float* acc) const {
    fn(x_slot, s.cin, dy + co0, cout_pad, s.w, acc);
  }
};

// bf16 by pixel pairs.
struct PairRows {
  using Elem = uint32_t;
  const ConvShape& s;
  int cout_pad, npairs;
  PairsFn fn;
  // Entries read: from 2 (npairs - 1), a row's vectors (16 nv lanes).
  size_t x_slot() const { return (size_t(2 * npairs) + (16 * kMaxVectors + s.cin - 1) / s.cin + 1) * s.cin; }
  size_t dy_size() const { return size_t(npairs) * cout_pad; }
  void x_row(const void* x, size_t in_row, uint32_t* slot) const {
    x_pair_row(static_cast<const uint16_t*>(x) + in_row * size_t(s.w) * s.cin, s.w, s.cin, slot);
  }
  void dy_row(const void* dy, size_t r, uint32_t* out) const {
    dy_pair_row(static_cast<const uint16_t*>(dy) + r * size_t(s.w) * s.cout, s.w, s.cout, cout_pad, npairs, out);
  }
  void kernel_row(const uint32_t* x_slot, const uint32_t* dy, int co0, float* acc) const {
    fn(x_slot, s.cin, dy + co0, cout_pad, npairs, acc);
  }
};

// Fixed chunks of output rows (by shape, not thread count), each summing
// into its own accumulators [ky][cout_pad][lanes]; a chunk of few rows would
// remake most of its input rows, so chunks hold 8 rows at least, and all
// the chunks' accumulators fit in 16 MiB (wide outputs: fewer chunks). Then
// the chunks in order, in double: lane kx cin + ci of [ky][co] is dw[co][ky][kx][ci].
template <class Form>
void run_chunks(const Form& form, const ConvShape& s, int g, int cout_pad, const void* x, const void* dy, float* dw) {
  const int cin = s.cin, cout = s.cout, h = s.h;
  const size_t lanes = size_t(vectors_per_row(cin)) * 16, acc_size = size_t(3) * cout_pad * lanes;
  const size_t rows = size_t(s.n) * h;
  const size_t by_memory = std::max<size_t>(1, (size_t(16) << 20) / sizeof(float) / acc_size);
  const int chunks = int(std::clamp<size_t>(std::min(rows / 8, by_memory), 1, kReduceChunks));
  thread_local std::vector<float> partial;  // kept between calls: no fresh pages each time
  partial.resize(size_t(chunks) * acc_size);
  float* const part = partial.data();
#pragma omp parallel
  {
    // This thread's operands: three input rows (the kernel rows of one
    // output row; slot = input row % 3), one output-gradient row.
    using Elem = typename Form::Elem;
    const size_t slot_size = form.x_slot();
    std::vector<Elem> x_slots(3 * slot_size, Elem{0});
    std::vector<Elem> dy_op(form.dy_size(), Elem{0});
#pragma omp for schedule(static)
    for (int i = 0; i < chunks; ++i) {
      const size_t r0 = rows * size_t(i) / size_t(chunks), r1 = rows * size_t(i + 1) / size_t(chunks);
      float* acc = part + size_t(i) * acc_size;
      std::fill(acc, acc + acc_size, 0.0f);
      size_t built[3] = {SIZE_MAX, SIZE_MAX, SIZE_MAX};  // the input row in each slot
      for (size_t r = r0; r < r1; ++r) {
        const size_t img = r / size_t(h);
        const int oy = int(r % size_t(h));
        form.dy_row(dy, r, dy_op.data());
        for (int ky = 0; ky < 3; ++ky) {
          const int iy = oy + ky - 1;
          if (iy < 0 || iy >= h) continue;  // zero padding: no terms
          const size_t in_row = img * size_t(h) + size_t(iy), slot = in_row % 3;
          Elem* xs = x_slots.data() + slot * slot_size;
          if (built[slot] != in_row) {
            form.x_row(x, in_row, xs);
            built[slot] = in_row;
          }
          for (int co0 = 0; co0 < cout_pad; co0 += g)
            form.kernel_row(xs, dy_op.data(), co0, acc + (size_t(ky) * cout_pad + co0) * lanes);
        }
      }
    }
#pragma omp for schedule(static)
    for (int row = 0; row < 3 * cout; ++row) {
      const int co = row / 3, ky = row % 3;
      for (int c = 0; c < 3 * cin; ++c) {
        double sum = 0.0;
        for (int i = 0; i < chunks; ++i)
          sum += part[size_t(i) * acc_size + (size_t(ky) * cout_pad + co) * lanes + size_t(c)];
        dw[(size_t(co) * 3 + ky) * 3 * cin + size_t(c)] = float(sum);
      }
    }
  }
}

}  // namespace

void conv2d_bwd_weights_rows(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw) {
  conv2d_bwd_weights_rows(s, dt, x, dy, dw, dt == DType::bf16 && conv2d_bwd_weights_rows_pairs_available());
}

void conv2d_bwd_weights_rows(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw, bool bf16_pairs) {
  if (!conv2d_bwd_weights_rows_applies(s, dt))
    fail(
        "the own direct weight gradient takes 3x3 kernels over up to 32 input channels in f32, f16 or bf16, not "
        "{}x{} over {} in {}",
        s.k, s.k, s.cin, dtype_name(dt));
  if (!conv2d_bwd_weights_rows_available()) fail("the own direct weight gradient needs AVX-512, which this CPU lacks");
  if (bf16_pairs && (dt != DType::bf16 || !conv2d_bwd_weights_rows_pairs_available()))
    fail("the weight gradient by pixel pairs is for bf16 on CPUs with AVX512_BF16 only (asked for {})", dtype_name(dt));
  const int nv = vectors_per_row(s.cin), g = group_size(nv), cout_pad = (s.cout + g - 1) / g * g;
  if (bf16_pairs)
    return run_chunks(PairRows{s, cout_pad, (s.w + 1) / 2, kPairsFns[size_t(nv)]}, s, g, cout_pad, x, dy, dw);
  run_chunks(PixelRows{dt, s, cout_pad, kPixelsFns[size_t(nv)]}, s, g, cout_pad, x, dy, dw);
}

#else

bool conv2d_bwd_weights_rows_available() { return false; }
bool conv2d_bwd_weights_rows_pairs_available() { return false; }
void conv2d_bwd_weights_rows(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw) {
  conv2d_bwd_weights_rows(s, dt, x, dy, dw, false);
}
void conv2d_bwd_weights_rows(const ConvShape&, DType, const void*, const void*, float*, bool) {
  fail("the own direct weight gradient needs an x86-64 build with AVX2 (and AVX-512 to run)");
}

#endif

}  // namespace mixseg
