// The bf16 weight gradient over pixel pairs (see conv2d_bwd_weights_bf16.h).
#include "cpu/conv2d_bwd_weights_bf16.h"

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
#define MIXSEG_PAIRS_AVX512 1
#define MIXSEG_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

namespace mixseg {

namespace {
constexpr int kMaxVectors = 6;  // 16-lane vectors per kernel row: 3 cin <= 96
int vectors_per_row(int cin) { return (3 * cin + 15) / 16; }
// Output channels per pass over a row of pairs: group x vectors accumulators
// within 24 of the 32 registers (the rest: the row's vectors, the broadcast).
int group_size(int nv) { return nv <= 3 ? 8 : 4; }
}  // namespace

bool conv2d_bwd_weights_bf16_pairs_applies(const ConvShape& s) {
  return s.k == 3 && s.cin >= 1 && vectors_per_row(s.cin) <= kMaxVectors && s.cout >= 1 && s.n >= 1 && s.h >= 1 &&
         s.w >= 1;
}

#ifdef MIXSEG_PAIRS_AVX512

bool conv2d_bwd_weights_bf16_pairs_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return ok;
}

namespace {

// One row of output pixel pairs against one kernel row for G output
// channels: acc holds G x NV vectors (channel-major, lane c = kx cin + ci),
// x_pairs the input row's pair entries from e = 0 (q = -1), dy_pairs the
// output gradient's pairs of this row from the group's first channel
// (cout_pad lanes per pair).
template <int NV, int G>
MIXSEG_BF16_TARGET void row_of_pairs(const uint32_t* x_pairs, int cin, const uint32_t* dy_pairs, int cout_pad,
                                     int npairs, float* acc) {
  __m512 a[G][NV];
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v) a[g][v] = _mm512_loadu_ps(acc + (g * NV + v) * 16);
  for (int p = 0; p < npairs; ++p) {
    const uint32_t* xb = x_pairs + size_t(2 * p) * cin;  // entries 2p.. : taps kx of pixels 2p, 2p + 1
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(xb + 16 * v);
    const uint32_t* d = dy_pairs + size_t(p) * cout_pad;
    for (int g = 0; g < G; ++g) {
      const __m512bh dv = (__m512bh)_mm512_set1_epi32(int32_t(d[g]));
      for (int v = 0; v < NV; ++v) a[g][v] = _mm512_dpbf16_ps(a[g][v], dv, b[v]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + (g * NV + v) * 16, a[g][v]);
}

using RowFn = void (*)(const uint32_t*, int, const uint32_t*, int, int, float*);
constexpr std::array<RowFn, kMaxVectors + 1> kRowFns = {nullptr,
                                                        row_of_pairs<1, 8>,
                                                        row_of_pairs<2, 8>,
                                                        row_of_pairs<3, 8>,
                                                        row_of_pairs<4, 4>,
                                                        row_of_pairs<5, 4>,
                                                        row_of_pairs<6, 4>};

// Interleaves the 16-bit values a[j] and b[j] into out[j] = a[j] | b[j] << 16 for j < n.
MIXSEG_BF16_TARGET void interleave16(const uint16_t* a, const uint16_t* b, size_t n, uint32_t* out) {
  // The unpacks interleave within 128-bit lanes (four pairs each, low then
  // high halves); the permutes put lane k's halves in order.
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11),
                second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  size_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512i va = _mm512_loadu_si512(a + j), vb = _mm512_loadu_si512(b + j);
    const __m512i lo = _mm512_unpacklo_epi16(va, vb), hi = _mm512_unpackhi_epi16(va, vb);
    _mm512_storeu_si512(out + j, _mm512_permutex2var_epi64(lo, first, hi));
    _mm512_storeu_si512(out + j + 16, _mm512_permutex2var_epi64(lo, second, hi));
  }
  for (; j + 8 <= n; j += 8) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + j));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + j));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm_unpacklo_epi16(va, vb));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j + 4), _mm_unpackhi_epi16(va, vb));
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
MIXSEG_BF16_TARGET void dy_pair_row(const uint16_t* dy, int w, int cout, int cout_pad, int npairs, uint32_t* out) {
  int p = 0;
  if (cout == cout_pad && cout == 8) {  // both pixels in one 256-bit load
    const __m256i idx = _mm256_setr_epi16(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    for (; 2 * p + 1 < w; ++p)
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(out + size_t(p) * 8),
          _mm256_permutexvar_epi16(idx, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dy + size_t(p) * 16))));
  } else if (cout == cout_pad && cout % 16 == 0) {
    const __m512i idx =
        _mm512_setr_epi32(0x200000, 0x210001, 0x220002, 0x230003, 0x240004, 0x250005, 0x260006, 0x270007, 0x280008,
                          0x290009, 0x2a000a, 0x2b000b, 0x2c000c, 0x2d000d, 0x2e000e, 0x2f000f);
    for (; 2 * p + 1 < w; ++p)
      for (int c0 = 0; c0 < cout; c0 += 16) {  // words c of pixel 2p (index c) and 2p + 1 (32 + c), alternating
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

}  // namespace

void conv2d_bwd_weights_bf16_pairs(const ConvShape& s, const bf16* x, const bf16* dy, float* dw) {
  if (!conv2d_bwd_weights_bf16_pairs_applies(s))
    fail("the bf16 pair weight gradient takes 3x3 kernels over up to 32 input channels, not {}x{} over {}", s.k, s.k,
         s.cin);
  if (!conv2d_bwd_weights_bf16_pairs_available())
    fail("the bf16 pair weight gradient needs AVX-512 with AVX512_BF16, which this CPU lacks");
  const int cin = s.cin, cout = s.cout, w = s.w, h = s.h;
  const int nv = vectors_per_row(cin), g = group_size(nv), cout_pad = (cout + g - 1) / g * g;
  const int npairs = (w + 1) / 2;
  // Entries read: from 2 (npairs - 1), a row's vectors (16 nv lanes).
  const int entries = 2 * npairs + (16 * nv + cin - 1) / cin + 1;
  const size_t lanes = size_t(nv) * 16, acc_size = size_t(3) * cout_pad * lanes;
  const size_t rows = size_t(s.n) * h;
  const RowFn row_fn = kRowFns[size_t(nv)];
  static_assert(sizeof(bf16) == sizeof(uint16_t));
  const auto* xb = reinterpret_cast<const uint16_t*>(x);
  const auto* dyb = reinterpret_cast<const uint16_t*>(dy);
  // Fixed chunks of rows (by shape, not thread count), each summing into
  // its own accumulators; a chunk of few rows would rebuild most of its
  // input pair rows, so they hold 8 rows at least.
  const int chunks = int(std::clamp<size_t>(rows / 8, 1, kReduceChunks));
  thread_local std::vector<float> partial;  // kept between calls: no fresh pages each time
  partial.resize(size_t(chunks) * acc_size);
  float* const part = partial.data();

#pragma omp parallel
  {
    // This thread's rows: three input pair rows (the kernel rows of one
    // output row; slot = input row % 3; zeros past entry w), a dy pair row.
    const size_t slot_size = size_t(entries) * cin;
    std::vector<uint32_t> x_pairs(3 * slot_size, 0);
    std::vector<uint32_t> dy_pairs(size_t(npairs) * cout_pad);
#pragma omp for schedule(static)
    for (int i = 0; i < chunks; ++i) {
      const size_t r0 = rows * size_t(i) / size_t(chunks), r1 = rows * size_t(i + 1) / size_t(chunks);
      float* acc = part + size_t(i) * acc_size;
      std::fill(acc, acc + acc_size, 0.0f);
      size_t built[3] = {SIZE_MAX, SIZE_MAX, SIZE_MAX};  // the input row in each slot
      for (size_t r = r0; r < r1; ++r) {
        const size_t img = r / size_t(h);
        const int oy = int(r % size_t(h));
        dy_pair_row(dyb + r * size_t(w) * cout, w, cout, cout_pad, npairs, dy_pairs.data());
        for (int ky = 0; ky < 3; ++ky) {
          const int iy = oy + ky - 1;
          if (iy < 0 || iy >= h) continue;  // zero padding: no terms
          const size_t in_row = img * size_t(h) + size_t(iy), slot = in_row % 3;
          uint32_t* xp = x_pairs.data() + slot * slot_size;
          if (built[slot] != in_row) {
            x_pair_row(xb + in_row * size_t(w) * cin, w, cin, xp);
            built[slot] = in_row;
          }
          for (int co0 = 0; co0 < cout_pad; co0 += g)
            row_fn(xp, cin, dy_pairs.data() + co0, cout_pad, npairs, acc + (size_t(ky) * cout_pad + co0) * lanes);
        }
      }
    }
    // Chunks in order, in double; lane kx cin + ci of [ky][co] is dw[co][ky][kx][ci].
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

#else

bool conv2d_bwd_weights_bf16_pairs_available() { return false; }
void conv2d_bwd_weights_bf16_pairs(const ConvShape&, const bf16*, const bf16*, float*) {
  fail("the bf16 pair weight gradient needs an x86-64 build with AVX2 (and AVX-512 with AVX512_BF16 to run)");
}

#endif

}  // namespace mixseg
