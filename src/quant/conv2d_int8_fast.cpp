// The fast int8 convolution (kernels_int8.h). The input is widened once to
// int16 with its zero point subtracted and a border of zeros (a padded tap
// then contributes exactly nothing, as in the reference), so that for an
// output pixel and one kernel row the k*cin inputs are contiguous. Each step
// broadcasts a pair of inputs and multiply-adds it (vpmaddwd: two int16
// products summed into int32, exact) against the same pair of weights of 16
// output channels; a tile of up to 6 pixels x 16 channels stays in registers.
// Integer sums do not depend on their order, so the result is bit-exact with
// the reference; requantization is the same function. Without AVX2 this is
// the reference.
#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/kernels_int8.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace mixseg {

#ifdef __AVX2__
namespace {

constexpr int kLanes = 16;  // output channels per block (two 8 x int32 vectors)
constexpr int kMaxTile = 6;  // output pixels per register tile

// One tile: P output pixels starting at column ox of padded rows `rows`
// (k of them, one per kernel row), one block of 16 output channels.
template <int P>
void tile(const int16_t* const* rows, int ox, int cin, int k, int pairs, const int16_t* wblock, int32_t* out) {
  __m256i acc[P][2];
  for (int p = 0; p < P; ++p) acc[p][0] = acc[p][1] = _mm256_setzero_si256();
  for (int ky = 0; ky < k; ++ky) {
    const int16_t* row = rows[ky] + size_t(ox) * cin;
    const int16_t* wp = wblock + size_t(ky) * pairs * 2 * kLanes;
    for (int j = 0; j < pairs; ++j) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + j * 2 * kLanes));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + j * 2 * kLanes + kLanes));
      for (int p = 0; p < P; ++p) {
        int32_t pair;
        std::memcpy(&pair, row + size_t(p) * cin + 2 * j, sizeof pair);
        const __m256i xb = _mm256_set1_epi32(pair);
        acc[p][0] = _mm256_add_epi32(acc[p][0], _mm256_madd_epi16(xb, w0));
        acc[p][1] = _mm256_add_epi32(acc[p][1], _mm256_madd_epi16(xb, w1));
      }
    }
  }
  for (int p = 0; p < P; ++p) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + p * kLanes), acc[p][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + p * kLanes + 8), acc[p][1]);
  }
}

using TileFn = void (*)(const int16_t* const*, int, int, int, int, const int16_t*, int32_t*);
constexpr TileFn kTiles[kMaxTile + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

}  // namespace

void conv2d_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  const int k = c.k, pad = k / 2, cin = c.cin, cout = c.cout;
  if (k > 15) return conv2d_int8_ref(c, xq, yq, n, h, w, x, y);  // rows[] below holds 16
  const int ph = h + 2 * pad, pw = w + 2 * pad;
  const int kw = k * cin;                // contiguous inputs per kernel row
  const int pairs = (kw + 1) / 2;        // an odd count reads one more input, against a zero weight
  const int blocks = (cout + kLanes - 1) / kLanes;

  // Weights: [block][ky][pair][lane][2] int16, zero beyond cout and kw.
  const size_t block_size = size_t(k) * pairs * 2 * kLanes;
  std::vector<int16_t> wpack_store(size_t(blocks) * block_size + 16, 0);
  int16_t* wpack = reinterpret_cast<int16_t*>((reinterpret_cast<uintptr_t>(wpack_store.data()) + 31) & ~uintptr_t(31));
  for (int o = 0; o < cout; ++o)
    for (int ky = 0; ky < k; ++ky)
      for (int i = 0; i < kw; ++i) {
        const int lane = o % kLanes;
        int16_t* dst = wpack + size_t(o / kLanes) * block_size + (size_t(ky) * pairs + size_t(i / 2)) * 2 * kLanes;
        dst[lane * 2 + i % 2] = c.weights[(size_t(o) * k + ky) * size_t(kw) + size_t(i)];
      }

  // Inputs: int16, zero point subtracted, zero border, slack for the odd pair at a row's end.
  const size_t row_len = size_t(pw) * cin;
  std::vector<int16_t> xp(size_t(n) * ph * row_len + 16, 0);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < n; ++b)
    for (int iy = 0; iy < h; ++iy) {
      const int8_t* src = x + (size_t(b) * h + iy) * w * size_t(cin);
      int16_t* dst = xp.data() + (size_t(b) * ph + iy + pad) * row_len + size_t(pad) * cin;
      for (size_t i = 0; i < size_t(w) * cin; ++i) dst[i] = int16_t(int32_t(src[i]) - xq.zero_point);
    }

#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < n; ++b)
    for (int oy = 0; oy < h; ++oy) {
      const int16_t* rows[16];
      for (int ky = 0; ky < k; ++ky) rows[ky] = xp.data() + (size_t(b) * ph + oy + ky) * row_len;
      alignas(32) int32_t acc[kMaxTile * kLanes];
      int8_t* yrow = y + (size_t(b) * h + oy) * w * size_t(cout);
      for (int ox = 0; ox < w; ox += kMaxTile) {
        const int P = std::min(kMaxTile, w - ox);
        for (int blk = 0; blk < blocks; ++blk) {
          kTiles[P](rows, ox, cin, k, pairs, wpack + size_t(blk) * block_size, acc);
          const int o0 = blk * kLanes, on = std::min(kLanes, cout - o0);
          for (int p = 0; p < P; ++p) {
            int8_t* yp = yrow + size_t(ox + p) * cout + o0;
            for (int l = 0; l < on; ++l) {
              const int32_t v = multiply_by_quantized_multiplier(acc[p * kLanes + l] + c.bias[size_t(o0 + l)],
                                                                 c.multipliers[size_t(o0 + l)]) + yq.zero_point;
              yp[l] = int8_t(std::clamp(v, c.out_min, c.out_max));
            }
          }
        }
      }
    }
}
#else
void conv2d_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  conv2d_int8_ref(c, xq, yq, n, h, w, x, y);
}
#endif

}  // namespace mixseg
