// The int8 convolution with AVX2 (kernels_int8.h). The input is widened to
// int16 (row by row, padded_rows.h) with its zero point subtracted and a
// border of zeros (a padded tap then contributes exactly nothing, as in the
// reference), so that for an output pixel and one kernel row the k*cin
// inputs are contiguous. Each step
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
#include "quant/padded_rows.h"

#ifdef __AVX2__
#include <immintrin.h>

#include "quant/requantize_avx2.h"
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

// Output channels in blocks of 16, the last one of 8 when 8 or fewer remain.
struct Block {
  int o0, lanes;
  size_t offset;  // into the packed weights (int16 elements)
};
std::vector<Block> channel_blocks(int cout, int k, int pairs, size_t* packed) {
  std::vector<Block> blocks;
  *packed = 0;
  for (int o0 = 0; o0 < cout;) {
    const int lanes = cout - o0 <= 8 ? 8 : 16;
    blocks.push_back({o0, lanes, *packed});
    *packed += size_t(k) * pairs * 2 * lanes;
    o0 += lanes;
  }
  return blocks;
}

}  // namespace

std::shared_ptr<const PackedConvInt8> pack_conv_int8_avx2(const QConv& c, QParams xq) {
  const int k = c.k, kw = k * c.cin, pairs = (kw + 1) / 2;
  size_t packed = 0;
  const std::vector<Block> blocks = channel_blocks(c.cout, k, pairs, &packed);
  auto pk = std::make_shared<PackedConvInt8>();
  pk->variant = PackedConvInt8::Variant::avx2;
  pk->input_zero_point = xq.zero_point;  // (not used by this layout)
  // Weights: per block [ky][pair][lane][2] int16, zero beyond cout and kw; 32-byte aligned.
  pk->storage.assign((packed + 16) * sizeof(int16_t) + 32, std::byte{0});
  pk->offset = (32 - reinterpret_cast<uintptr_t>(pk->storage.data()) % 32) % 32;
  int16_t* wpack = reinterpret_cast<int16_t*>(pk->storage.data() + pk->offset);
  for (const Block& b : blocks)
    for (int l = 0; l < b.lanes && b.o0 + l < c.cout; ++l)
      for (int ky = 0; ky < k; ++ky)
        for (int i = 0; i < kw; ++i)
          wpack[b.offset + (size_t(ky) * pairs + size_t(i / 2)) * 2 * b.lanes + size_t(l) * 2 + size_t(i % 2)] =
              c.weights[(size_t(b.o0 + l) * k + ky) * size_t(kw) + size_t(i)];
  pk->requant = prepare_requant(c, blocks.back().o0 + blocks.back().lanes);
  return pk;
}

void conv2d_int8_avx2(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  const int k = c.k, pad = k / 2, cin = c.cin, cout = c.cout;
  if (k > 15) return conv2d_int8_ref(c, xq, yq, n, h, w, x, y);  // rows[] below holds 16
  const int kw = k * cin;          // contiguous inputs per kernel row
  const int pairs = (kw + 1) / 2;  // an odd count reads one more input, against a zero weight
  size_t packed = 0;
  const std::vector<Block> blocks = channel_blocks(cout, k, pairs, &packed);
  // The model's packing (prepare()), else one now.
  std::shared_ptr<const PackedConvInt8> local;
  const PackedConvInt8* pk = c.packed.get();
  if (!pk || pk->variant != PackedConvInt8::Variant::avx2) {
    local = pack_conv_int8_avx2(c, xq);
    pk = local.get();
  }
  const int16_t* wpack = pk->weights<int16_t>();
  const Requant& r = pk->requant;

  // Inputs: int16, zero point subtracted, zero border, slack for the odd pair
  // at a row's end; built row by row per thread (padded_rows.h).
  const auto src = converted_rows(x, h, w, cin, pad, int16_t(0),
                                  [zp = xq.zero_point](int8_t v) { return int16_t(int32_t(v) - zp); });

#pragma omp parallel
  {
    thread_local RowWindow<int16_t> window;  // kept between calls: no fresh pages each time
    window_reset(window, src, k, 16);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < n; ++b)
      for (int oy = 0; oy < h; ++oy) {
        const int16_t* rows[16];
        window_rows(window, src, k, b, oy, rows);
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
                store8(acc + p * blk.lanes + v * 8, r, blk.o0 + v * 8, std::min(8, on - v * 8), yq.zero_point,
                       c.out_min, c.out_max, yp + v * 8);
            }
          }
        }
      }
  }
}
#else
std::shared_ptr<const PackedConvInt8> pack_conv_int8_avx2(const QConv&, QParams) { return nullptr; }
void conv2d_int8_avx2(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  conv2d_int8_ref(c, xq, yq, n, h, w, x, y);
}
#endif

}  // namespace mixseg
