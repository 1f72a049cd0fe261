// The fast int8 convolution (kernels_int8.h). The input is widened once to
// int16 with its zero point subtracted and a border of zeros (a padded tap
// then contributes exactly nothing, as in the reference), so that for an
// output pixel and one kernel row the k*cin inputs are contiguous. Each step
// broadcasts a pair of inputs and multiply-adds it (vpmaddwd: two int16
// products summed into int32, exact) against the same pair of weights of 16
// output channels (8 for the last block when 8 or fewer remain, so 8-channel
// layers do not waste half the lanes); a tile of up to 6 pixels x 16
// channels or 12 x 8 stays in registers. Integer sums do not depend on their
// order, so the sums are bit-exact with the reference; requantization is the
// function of fixed_point.h on 8 lanes at once, each lane its own multiplier
// and shift (tested against the scalar one through the whole kernel).
// Without AVX2 this is the reference.
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

// One tile: P output pixels starting at column ox of the padded rows `rows`
// (one per kernel row) against one block of 8 * V output channels, whose
// weights are packed [ky][pair][lane][2]. Writes the int32 sums to out[P][8 * V].
template <int P, int V>
void tile(const int16_t* const* rows, int ox, int cin, int k, int pairs, const int16_t* wblock, int32_t* out) {
  constexpr int lanes = 8 * V;
  __m256i acc[P][V];
  for (int p = 0; p < P; ++p)
    for (int v = 0; v < V; ++v) acc[p][v] = _mm256_setzero_si256();
  for (int ky = 0; ky < k; ++ky) {
    const int16_t* row = rows[ky] + size_t(ox) * cin;
    const int16_t* wp = wblock + size_t(ky) * pairs * 2 * lanes;
    for (int j = 0; j < pairs; ++j) {
      __m256i w[V];
      for (int v = 0; v < V; ++v)
        w[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + (j * 2 * lanes) + v * 16));
      for (int p = 0; p < P; ++p) {
        int32_t pair;
        std::memcpy(&pair, row + size_t(p) * cin + 2 * j, sizeof pair);
        const __m256i xb = _mm256_set1_epi32(pair);
        for (int v = 0; v < V; ++v) acc[p][v] = _mm256_add_epi32(acc[p][v], _mm256_madd_epi16(xb, w[v]));
      }
    }
  }
  for (int p = 0; p < P; ++p)
    for (int v = 0; v < V; ++v) _mm256_store_si256(reinterpret_cast<__m256i*>(out + p * lanes + v * 8), acc[p][v]);
}

using TileFn = void (*)(const int16_t* const*, int, int, int, int, const int16_t*, int32_t*);
constexpr int kMaxTile16 = 6, kMaxTile8 = 12;  // pixels per tile: registers for 8 * V accumulators
constexpr TileFn kTiles16[kMaxTile16 + 1] = {nullptr, tile<1, 2>, tile<2, 2>, tile<3, 2>, tile<4, 2>, tile<5, 2>, tile<6, 2>};
constexpr TileFn kTiles8[kMaxTile8 + 1] = {nullptr,     tile<1, 1>,  tile<2, 1>, tile<3, 1>, tile<4, 1>,
                                           tile<5, 1>,  tile<6, 1>,  tile<7, 1>, tile<8, 1>, tile<9, 1>,
                                           tile<10, 1>, tile<11, 1>, tile<12, 1>};

// Per output channel, what requantization needs, in int32 lanes.
struct Requant {
  std::vector<int32_t> bias, multiplier, left, right;
};

// multiply_by_quantized_multiplier (fixed_point.h) on 8 lanes, each with its
// own multiplier and shifts. The doubling high multiply rounds half up:
// floor((x * m + 2^30) / 2^31), in 64 bits per lane (even lanes, then odd
// lanes moved down); the multiplier is never INT32_MIN, so it cannot
// saturate. Then the rounding right shift, ties away from zero.
inline __m256i requantize8(__m256i x, __m256i m, __m256i left, __m256i right) {
  x = _mm256_sllv_epi32(x, left);
  const __m256i nudge = _mm256_set1_epi64x(int64_t(1) << 30);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge), 31);
  const __m256i odd = _mm256_srli_epi64(
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), nudge), 31);
  const __m256i high = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), right), _mm256_set1_epi32(1));
  const __m256i remainder = _mm256_and_si256(high, mask);
  const __m256i negative = _mm256_cmpgt_epi32(_mm256_setzero_si256(), high);  // -1 where x < 0
  const __m256i threshold = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), negative);
  const __m256i round_up = _mm256_cmpgt_epi32(remainder, threshold);  // -1 where rounding up
  return _mm256_sub_epi32(_mm256_srav_epi32(high, right), round_up);
}

// Requantizes n (<= 8) sums of one pixel starting at channel o into y.
inline void store8(const int32_t* acc, const Requant& r, int o, int n, int32_t zp, int32_t lo, int32_t hi, int8_t* y) {
  auto lane = [&](const std::vector<int32_t>& v) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.data() + o)); };
  __m256i v = _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(acc)), lane(r.bias));
  v = _mm256_add_epi32(requantize8(v, lane(r.multiplier), lane(r.left), lane(r.right)), _mm256_set1_epi32(zp));
  v = _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
  const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i b8 = _mm_packs_epi16(w16, w16);
  if (n == 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y), b8);
  } else {
    alignas(16) int8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b8);
    std::memcpy(y, tmp, size_t(n));
  }
}

}  // namespace

void conv2d_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  const int k = c.k, pad = k / 2, cin = c.cin, cout = c.cout;
  if (k > 15) return conv2d_int8_ref(c, xq, yq, n, h, w, x, y);  // rows[] below holds 16
  const int ph = h + 2 * pad, pw = w + 2 * pad;
  const int kw = k * cin;          // contiguous inputs per kernel row
  const int pairs = (kw + 1) / 2;  // an odd count reads one more input, against a zero weight

  // Output channels in blocks of 16, the last one of 8 when 8 or fewer remain.
  struct Block {
    int o0, lanes;
    size_t offset;  // into the packed weights
  };
  std::vector<Block> blocks;
  size_t packed = 0;
  for (int o0 = 0; o0 < cout;) {
    const int lanes = cout - o0 <= 8 ? 8 : 16;
    blocks.push_back({o0, lanes, packed});
    packed += size_t(k) * pairs * 2 * lanes;
    o0 += lanes;
  }
  const int padded_cout = blocks.back().o0 + blocks.back().lanes;
  // Weights: per block [ky][pair][lane][2] int16, zero beyond cout and kw; 32-byte aligned.
  std::vector<int16_t> wstore(packed + 16, 0);
  int16_t* wpack = reinterpret_cast<int16_t*>((reinterpret_cast<uintptr_t>(wstore.data()) + 31) & ~uintptr_t(31));
  for (const Block& b : blocks)
    for (int l = 0; l < b.lanes && b.o0 + l < cout; ++l)
      for (int ky = 0; ky < k; ++ky)
        for (int i = 0; i < kw; ++i)
          wpack[b.offset + (size_t(ky) * pairs + size_t(i / 2)) * 2 * b.lanes + size_t(l) * 2 + size_t(i % 2)] =
              c.weights[(size_t(b.o0 + l) * k + ky) * size_t(kw) + size_t(i)];
  Requant r;
  for (auto* v : {&r.bias, &r.multiplier, &r.left, &r.right}) v->assign(size_t(padded_cout), 0);
  for (int o = 0; o < cout; ++o) {
    const QuantizedMultiplier q = c.multipliers[size_t(o)];
    r.bias[size_t(o)] = c.bias[size_t(o)];
    r.multiplier[size_t(o)] = q.multiplier;
    r.left[size_t(o)] = q.shift > 0 ? q.shift : 0;
    r.right[size_t(o)] = q.shift > 0 ? 0 : -q.shift;
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
      alignas(32) int32_t acc[kMaxTile8 * 8];
      int8_t* yrow = y + (size_t(b) * h + oy) * w * size_t(cout);
      for (const Block& blk : blocks) {
        const int max_tile = blk.lanes == 16 ? kMaxTile16 : kMaxTile8;
        const int on = std::min(blk.lanes, cout - blk.o0);
        for (int ox = 0; ox < w; ox += max_tile) {
          const int P = std::min(max_tile, w - ox);
          (blk.lanes == 16 ? kTiles16 : kTiles8)[P](rows, ox, cin, k, pairs, wpack + blk.offset, acc);
          for (int p = 0; p < P; ++p) {
            int8_t* yp = yrow + size_t(ox + p) * cout + blk.o0;
            for (int v = 0; v < blk.lanes / 8 && v * 8 < on; ++v)
              store8(acc + p * blk.lanes + v * 8, r, blk.o0 + v * 8, std::min(8, on - v * 8), yq.zero_point, c.out_min,
                     c.out_max, yp + v * 8);
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
