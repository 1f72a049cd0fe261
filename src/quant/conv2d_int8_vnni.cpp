// The int8 convolution with AVX-512 VNNI (kernels_int8.h), for CPUs that have
// it (checked at run time; the rest of the build targets AVX2).
// vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the four
// products into an int32 lane, exactly (no intermediate saturation): 64
// multiply-adds per instruction, 4x AVX2's vpmaddwd. Its first operand is
// unsigned, so the input is shifted to u = x + 128 and padded with zp + 128;
// then sum (u - (zp + 128)) * w = sum u * w - (zp + 128) * sum w over all k*k
// taps (padded taps included, which is why the border holds zp + 128: they
// cancel), so the correction (zp + 128) * sum w goes into each channel's bias
// once. Integer sums are order-free: bit-exact with the reference.
// Weights: per block of 16 output channels [ky][quad][lane][4] signed bytes,
// zero beyond cout and k*cin, packed once per model (PackedConvInt8); a tile of up to 12 pixels x 32 channels
// (two blocks; an odd last block: 16 pixels x 16 channels) stays in registers; 3x3 kernels over a multiple of
// 4 input channels take tiles that broadcast each input quad once for its three kx taps (tile_k3_vnni), and with
// up to 8 output channels over a multiple of 8 input ones, two quads per broadcast (tile_k3_pairs_vnni); a 1x1
// convolution to one channel (the logits) packs several pixels per vector instead (pointwise_to_one);
// requantization on 16 AVX-512 lanes (requantize_avx512.h). conv2d_int8_amx runs the full 16-pixel tiles of single
// blocks on AMX instead (amx_tiles.h), the rest as here.
#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "core/error.h"
#include "quant/amx_tiles.h"
#include "quant/kernels_int8.h"
#include "quant/padded_rows.h"

namespace mixseg {
namespace {
void check_upsample_concat(const QConv& c, int h, int w, int c_low) {
  if (h % 2 || w % 2) fail("upsample+concat+conv (int8): {}x{} is not twice the low-resolution input", h, w);
  if (c_low < 1 || c_low >= c.cin) fail("upsample+concat+conv (int8): {} upsampled of {} input channels", c_low, c.cin);
}

// conv2d_int8_upsample_concat_fast where it does not fuse: the input formed
// first, as the separate ops would.
void conv2d_int8_upsample_concat_formed(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* low,
                                        int c_low, const int8_t* skip, int8_t* y) {
  thread_local std::vector<int8_t> upsampled, cat;
  upsampled.resize(size_t(n) * h * w * c_low);
  cat.resize(size_t(n) * h * w * c.cin);
  upsample2x_int8(n, h / 2, w / 2, c_low, low, upsampled.data());
  concat_int8(size_t(n) * h * w, c_low, c.cin - c_low, upsampled.data(), skip, cat.data());
  conv2d_int8_fast(c, xq, yq, n, h, w, cat.data(), y);
}
}  // namespace
}  // namespace mixseg

#if defined(__AVX2__) && defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#include "quant/requantize_avx512.h"

#define MIXSEG_VNNI_TARGET MIXSEG_AVX512_TARGET

namespace mixseg {

namespace {

constexpr int kMaxTile = 16;

template <int P>
MIXSEG_VNNI_TARGET void tile_vnni(const uint8_t* const* rows, int ox, int cin, int k, int quads, const int8_t* wblock,
                                  int32_t* out) {
  __m512i acc[P];
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_si512();
  // One loop over (ky, quad), the weights' order: with a loop per ky GCC
  // stored and reloaded the accumulators between rows (at cin = 1 as many
  // memory accesses as vpdpbusd).
  const uint8_t* row = rows[0] + size_t(ox) * cin;
  for (int t = 0, ky = 0, j = 0; t < k * quads; ++t) {
    const __m512i wv = _mm512_load_si512(wblock + size_t(t) * 64);
    for (int p = 0; p < P; ++p) {
      int32_t quad;
      std::memcpy(&quad, row + size_t(p) * cin + 4 * size_t(j), sizeof quad);
      acc[p] = _mm512_dpbusd_epi32(acc[p], _mm512_set1_epi32(quad), wv);
    }
    if (++j == quads && ++ky < k) j = 0, row = rows[ky] + size_t(ox) * cin;
  }
  for (int p = 0; p < P; ++p) _mm512_store_si512(out + p * 16, acc[p]);
}

// Two 16-channel blocks at once: each broadcast input quad feeds two
// vpdpbusd, so a tile of P pixels loads P + 2 vectors per 2P instructions
// instead of P + 1 per P (the one-block tile is bound by loads: two a cycle
// feed under two vpdpbusd). 2 x 12 accumulators, two weight vectors and the
// broadcast fit in the 32 registers.
constexpr int kMaxTile2 = 12;

template <int P>
MIXSEG_VNNI_TARGET void tile2_vnni(const uint8_t* const* rows, int ox, int cin, int k, int quads, const int8_t* wblock0,
                                   const int8_t* wblock1, int32_t* out0, int32_t* out1) {
  __m512i acc0[P], acc1[P];
  for (int p = 0; p < P; ++p) acc0[p] = acc1[p] = _mm512_setzero_si512();
  const uint8_t* row = rows[0] + size_t(ox) * cin;
  for (int t = 0, ky = 0, j = 0; t < k * quads; ++t) {  // (ky, quad) in one loop, as tile_vnni
    const __m512i w0 = _mm512_load_si512(wblock0 + size_t(t) * 64), w1 = _mm512_load_si512(wblock1 + size_t(t) * 64);
    for (int p = 0; p < P; ++p) {
      int32_t quad;
      std::memcpy(&quad, row + size_t(p) * cin + 4 * size_t(j), sizeof quad);
      const __m512i u = _mm512_set1_epi32(quad);
      acc0[p] = _mm512_dpbusd_epi32(acc0[p], u, w0);
      acc1[p] = _mm512_dpbusd_epi32(acc1[p], u, w1);
    }
    if (++j == quads && ++ky < k) j = 0, row = rows[ky] + size_t(ox) * cin;
  }
  for (int p = 0; p < P; ++p) {
    _mm512_store_si512(out0 + p * 16, acc0[p]);
    _mm512_store_si512(out1 + p * 16, acc1[p]);
  }
}

// 3x3 kernels with cin a multiple of 4 (every quad inside one input
// pixel): pixel p's quad for tap kx and channel quad c is the input column
// p + kx's quad c, so one broadcast of column q's quad feeds pixel q (kx 0),
// q - 1 (kx 1) and q - 2 (kx 2) with their three weight vectors. Per
// (ky, c) a tile of P pixels and NB blocks broadcasts P + 2 quads for 3 P NB
// vpdpbusd, against 3 P for 3 P NB above (the one-block tile issues a
// broadcast load per vpdpbusd). Measured on AMD Zen 4 (kernel bench, 2
// threads): the first level's 8- and 16-channel convolutions 1.09-1.12x,
// the two-block ones 1.01-1.03x (docs/performance.md v0.27). The weights
// are the same packing ([ky][kx * cin / 4 + c] quads); the int32 sums are
// the same, in another order.
constexpr int kMaxTileK3 = 16, kMaxTile2K3 = 12;  // as kMaxTile and kMaxTile2 (checked below)

template <int P, int NB>
MIXSEG_VNNI_TARGET void tile_k3_vnni(const uint8_t* const* rows, int ox, int cin, int quads, const int8_t* wblock,
                                     size_t block_size, int32_t* out0, int32_t* out1) {
  __m512i acc[NB][P];
  for (int b = 0; b < NB; ++b)
    for (int p = 0; p < P; ++p) acc[b][p] = _mm512_setzero_si512();
  const int cq = cin / 4;
  for (int ky = 0; ky < 3; ++ky) {
    const uint8_t* row = rows[ky] + size_t(ox) * cin;
    for (int c = 0; c < cq; ++c) {
      __m512i wv[NB][3];
      for (int b = 0; b < NB; ++b)
        for (int kx = 0; kx < 3; ++kx)
          wv[b][kx] = _mm512_load_si512(wblock + b * block_size + (size_t(ky) * quads + kx * cq + c) * 64);
#pragma GCC unroll 18
      for (int q = 0; q < P + 2; ++q) {
        int32_t quad;
        std::memcpy(&quad, row + size_t(q) * cin + 4 * size_t(c), sizeof quad);
        const __m512i u = _mm512_set1_epi32(quad);
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx) {
          const int p = q - kx;
          if (p < 0 || p >= P) continue;
#pragma GCC unroll 2
          for (int b = 0; b < NB; ++b) acc[b][p] = _mm512_dpbusd_epi32(acc[b][p], u, wv[b][kx]);
        }
      }
    }
  }
  for (int p = 0; p < P; ++p) {
    _mm512_store_si512(out0 + p * 16, acc[0][p]);
    if (NB == 2) _mm512_store_si512(out1 + p * 16, acc[NB - 1][p]);
  }
}

// Up to 8 output channels (f=8's first level), where a 16-channel block
// leaves half of each vpdpbusd idle: lanes hold two quads of input channels
// instead, lane 2 co + s summing quads 2 c + s of output channel co, so one
// 64-bit broadcast of an input pixel's 8 bytes (quads 2c, 2c + 1) feeds all
// 16 lanes. Weights ("quad pairs"): [ky][kx][c][co][s][4] signed bytes, for
// cin a multiple of 8; the kx sharing of tile_k3_vnni. At the end each
// output channel's two lanes are added and the sums moved to lanes 0-7
// (what requantize_tile16 reads at 8 channels or fewer). The same int32
// sums, in another order.
// GCC 12's _mm512_shuffle_epi32 and _mm512_permutexvar_epi32 pass an
// undefined merge operand that -Wuninitialized reports once inlined (GCC
// bug 105593, as below): a false positive.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <int P>
MIXSEG_VNNI_TARGET void tile_k3_pairs_vnni(const uint8_t* const* rows, int ox, int cin, const int8_t* wpairs,
                                           int32_t* out) {
  __m512i acc[P];
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_si512();
  const int cp = cin / 8;
  for (int ky = 0; ky < 3; ++ky) {
    const uint8_t* row = rows[ky] + size_t(ox) * cin;
    for (int c = 0; c < cp; ++c) {
      __m512i wv[3];
      for (int kx = 0; kx < 3; ++kx) wv[kx] = _mm512_load_si512(wpairs + ((size_t(ky) * 3 + kx) * cp + c) * 64);
#pragma GCC unroll 18
      for (int q = 0; q < P + 2; ++q) {
        int64_t quads;
        std::memcpy(&quads, row + size_t(q) * cin + 8 * size_t(c), sizeof quads);
        const __m512i u = _mm512_set1_epi64(quads);
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx) {
          const int p = q - kx;
          if (p >= 0 && p < P) acc[p] = _mm512_dpbusd_epi32(acc[p], u, wv[kx]);
        }
      }
    }
  }
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
  for (int p = 0; p < P; ++p) {
    const __m512i both = _mm512_add_epi32(acc[p], _mm512_shuffle_epi32(acc[p], _MM_PERM_CDAB));
    _mm512_store_si512(out + p * 16, _mm512_permutexvar_epi32(evens, both));
  }
}
#pragma GCC diagnostic pop

using TilePairsFn = void (*)(const uint8_t* const*, int, int, const int8_t*, int32_t*);
template <int... P>
constexpr std::array<TilePairsFn, sizeof...(P) + 1> pair_tiles(std::integer_sequence<int, P...>) {
  return {nullptr, tile_k3_pairs_vnni<P + 1>...};
}
constexpr auto kTilesPairs = pair_tiles(std::make_integer_sequence<int, kMaxTileK3>{});

bool quad_pairs_apply(const QConv& c) { return c.k == 3 && c.cout <= 8 && c.cin % 8 == 0; }

using TileK3Fn = void (*)(const uint8_t* const*, int, int, int, const int8_t*, size_t, int32_t*, int32_t*);
template <int NB, int... P>
constexpr std::array<TileK3Fn, sizeof...(P) + 1> k3_tiles(std::integer_sequence<int, P...>) {
  return {nullptr, tile_k3_vnni<P + 1, NB>...};
}
constexpr auto kTilesK3 = k3_tiles<1>(std::make_integer_sequence<int, kMaxTileK3>{});
constexpr auto kTiles2K3 = k3_tiles<2>(std::make_integer_sequence<int, kMaxTile2K3>{});
static_assert(kMaxTileK3 == kMaxTile && kMaxTile2K3 == kMaxTile2, "the k3 tiles step as the others");

using TileFn = void (*)(const uint8_t* const*, int, int, int, int, const int8_t*, int32_t*);
using Tile2Fn = void (*)(const uint8_t* const*, int, int, int, int, const int8_t*, const int8_t*, int32_t*, int32_t*);
constexpr Tile2Fn kTiles2[kMaxTile2 + 1] = {nullptr,       tile2_vnni<1>, tile2_vnni<2>,  tile2_vnni<3>, tile2_vnni<4>,
                                            tile2_vnni<5>, tile2_vnni<6>, tile2_vnni<7>,  tile2_vnni<8>, tile2_vnni<9>,
                                            tile2_vnni<10>, tile2_vnni<11>, tile2_vnni<12>};
constexpr TileFn kTiles[kMaxTile + 1] = {nullptr,      tile_vnni<1>,  tile_vnni<2>,  tile_vnni<3>,  tile_vnni<4>,
                                         tile_vnni<5>,  tile_vnni<6>,  tile_vnni<7>,  tile_vnni<8>,  tile_vnni<9>,
                                         tile_vnni<10>, tile_vnni<11>, tile_vnni<12>, tile_vnni<13>, tile_vnni<14>,
                                         tile_vnni<15>, tile_vnni<16>};

}  // namespace

bool int8_vnni_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return ok;
}

std::shared_ptr<const PackedConvInt8> pack_conv_int8_vnni(const QConv& c, QParams xq) {
  const int k = c.k, kw = k * c.cin, quads = (kw + 3) / 4;
  const int blocks = (c.cout + 15) / 16;
  const size_t block_size = size_t(k) * quads * 64;
  auto pk = std::make_shared<PackedConvInt8>();
  pk->variant = PackedConvInt8::Variant::vnni;
  pk->input_zero_point = xq.zero_point;
  // Up to 8 output channels: the quad-pair layout too (half a block), for
  // the VNNI tiles (AMX's take the blocks).
  const size_t pairs_size = quad_pairs_apply(c) ? size_t(9) * (c.cin / 8) * 64 : 0;
  pk->storage.assign(size_t(blocks) * block_size + pairs_size + 64, std::byte{0});
  pk->offset = (64 - reinterpret_cast<uintptr_t>(pk->storage.data()) % 64) % 64;
  int8_t* wpack = reinterpret_cast<int8_t*>(pk->storage.data() + pk->offset);
  if (pairs_size) pk->quad_pairs = size_t(blocks) * block_size;
  pk->requant = prepare_requant(c, blocks * 16);
  const int32_t shift = xq.zero_point + 128;  // the padded value, and what every tap's input is offset by
  for (int o = 0; o < c.cout; ++o) {
    int32_t sum = 0;
    for (int ky = 0; ky < k; ++ky)
      for (int i = 0; i < kw; ++i) {
        const int8_t v = c.weights[(size_t(o) * k + ky) * size_t(kw) + size_t(i)];
        sum += v;
        wpack[size_t(o / 16) * block_size + (size_t(ky) * quads + size_t(i / 4)) * 64 + size_t(o % 16) * 4 +
              size_t(i % 4)] = v;
        if (pairs_size) {  // i = kx * cin + ci: [ky][kx][ci / 8][o][ci % 8 / 4][ci % 4]
          const int kx = i / c.cin, ci = i % c.cin;
          wpack[pk->quad_pairs + ((size_t(ky) * 3 + size_t(kx)) * size_t(c.cin / 8) + size_t(ci / 8)) * 64 +
                size_t(o) * 8 + size_t(ci % 8)] = v;
        }
      }
    pk->requant.bias[size_t(o)] -= shift * sum;
  }
  return pk;
}

namespace {

// The model's VNNI packing when it was made for this input zero point, else one made now.
std::shared_ptr<const PackedConvInt8> vnni_packing(const QConv& c, QParams xq) {
  const std::shared_ptr<const PackedConvInt8>& pk = c.packed;
  if (pk && pk->variant == PackedConvInt8::Variant::vnni && pk->input_zero_point == xq.zero_point) return pk;
  return pack_conv_int8_vnni(c, xq);
}

// Both variants: VNNI tiles, or AMX ones (amx_tiles.h) for full 16-pixel
// tiles. The input's padded rows (u8 = x + 128, border zp + 128) come from
// src (padded_rows.h), with slack for the last quad's over-read.
template <class Fill>
MIXSEG_VNNI_TARGET void conv2d_int8_tiles(const QConv& c, QParams yq, int n, int h, int w,
                                          const PaddedSource<uint8_t, Fill>& src,
                                          const std::shared_ptr<const PackedConvInt8>& pk, int8_t* y, bool amx) {
  const int k = c.k, cin = c.cin, cout = c.cout;
  const int kw = k * cin, quads = (kw + 3) / 4;
  const int blocks = (cout + 15) / 16;
  const size_t block_size = size_t(k) * quads * 64;
  const int8_t* wpack = pk->weights<int8_t>();
  const Requant& r = pk->requant;
  const bool k3 = k == 3 && cin % 4 == 0;  // the tiles that share broadcasts across kx
  std::vector<RequantLanes> lanes(static_cast<size_t>(blocks));
  for (int blk = 0; blk < blocks; ++blk)
    lanes[size_t(blk)] = requant_block_lanes(r, blk * 16, std::min(16, cout - blk * 16));

#pragma omp parallel
  {
    thread_local RowWindow<uint8_t> window;  // kept between calls: no fresh pages each time
    window_reset(window, src, k, 64);
    if (amx) amx_tiles_begin(quads);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < n; ++b)
      for (int oy = 0; oy < h; ++oy) {
        const uint8_t* rows[16];
        window_rows(window, src, k, b, oy, rows);
        alignas(64) int32_t acc[kMaxTile * 16], acc1[kMaxTile2 * 16];
        int8_t* yrow = y + (size_t(b) * h + oy) * w * size_t(cout);
        int blk = 0;
        if (!amx)  // pairs of blocks (the last one of an odd count alone, below)
          for (; blk + 1 < blocks; blk += 2) {
            const int o0 = blk * 16, on1 = std::min(16, cout - o0 - 16);
            const int8_t* w0 = wpack + size_t(blk) * block_size;
            for (int ox = 0; ox < w; ox += kMaxTile2) {
              const int P = std::min(kMaxTile2, w - ox);
              if (k3)
                kTiles2K3[P](rows, ox, cin, quads, w0, block_size, acc, acc1);
              else
                kTiles2[P](rows, ox, cin, k, quads, w0, w0 + block_size, acc, acc1);
              int8_t* yt = yrow + size_t(ox) * cout + o0;
              requantize_tile16(acc, P, lanes[size_t(blk)], 16, yq.zero_point, c.out_min, c.out_max, yt, size_t(cout));
              requantize_tile16(acc1, P, lanes[size_t(blk) + 1], on1, yq.zero_point, c.out_min, c.out_max, yt + 16,
                                size_t(cout));
            }
          }
        if (!amx && pk->quad_pairs) {  // up to 8 output channels: tiles of quad pairs
          for (int ox = 0; ox < w; ox += kMaxTileK3) {
            const int P = std::min(kMaxTileK3, w - ox);
            kTilesPairs[P](rows, ox, cin, wpack + pk->quad_pairs, acc);
            requantize_tile16(acc, P, lanes[0], cout, yq.zero_point, c.out_min, c.out_max, yrow + size_t(ox) * cout,
                              size_t(cout));
          }
          continue;
        }
        for (; blk < blocks; ++blk) {
          const int o0 = blk * 16, on = std::min(16, cout - o0);
          for (int ox = 0; ox < w; ox += kMaxTile) {
            const int P = std::min(kMaxTile, w - ox);
            if (amx && P == kMaxTile)
              amx_tile16(rows, ox, cin, k, quads, wpack + size_t(blk) * block_size, acc);
            else if (k3)
              kTilesK3[P](rows, ox, cin, quads, wpack + size_t(blk) * block_size, block_size, acc, nullptr);
            else
              kTiles[P](rows, ox, cin, k, quads, wpack + size_t(blk) * block_size, acc);
            requantize_tile16(acc, P, lanes[size_t(blk)], on, yq.zero_point, c.out_min, c.out_max,
                              yrow + size_t(ox) * cout + o0, size_t(cout));
          }
        }
      }
    if (amx) amx_tiles_end();
  }
}

// A 1x1 convolution to one output channel (every model's last layer: the
// logits) over cin in {4, 8, 16, 32, 64}: the tiles above would fill one of
// 16 lanes per vpdpbusd. Here 64 input bytes hold 64 / cin whole pixels;
// vpdpbusd against the cin weights repeated across the vector leaves each
// pixel's sum spread over its cin / 4 dword lanes, which rotate-and-add
// steps gather into the group's first lane; the first lanes of 16 pixels
// are packed into one vector and requantized together with channel 0's
// parameters. The input is shifted to unsigned (x ^ 0x80 = x + 128) in
// registers, the correction in the packed bias as above (no padding at
// k = 1); a tail's missing bytes load as zeros and only feed pixels that are
// not stored. Same int32 sums, bit-exact.
bool pointwise_to_one_applies(const QConv& c) { return c.k == 1 && c.cout == 1 && c.cin % 4 == 0 && 64 % c.cin == 0; }

// GCC 12's _mm512_alignr_epi32 passes an undefined merge operand that
// -Wmaybe-uninitialized reports once inlined (GCC bug 105593, as in
// requantize_avx512.h): a false positive.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Blocks [b0, b1) of 16 pixels (the last one may be short). Its own
// function with the target attribute: an OpenMP region's outlined body does
// not inherit it (clang then rejects the 512-bit values inside).
MIXSEG_VNNI_TARGET void pointwise_to_one_blocks(const QConv& c, const Requant& r, int32_t y_zp, const int8_t* wrep,
                                                size_t pixels, size_t b0, size_t b1, const int8_t* x, int8_t* y) {
  const int cin = c.cin, group = cin / 4, per_vector = 64 / cin;  // dword lanes per pixel, pixels per vector
  const __m512i wv = _mm512_load_si512(wrep), flip = _mm512_set1_epi8(char(0x80));
  const RequantLanes q = requant_lanes(_mm512_set1_epi32(r.bias[0]), _mm512_set1_epi32(r.multiplier[0]),
                                       _mm512_set1_epi32(r.left[0]), _mm512_set1_epi32(r.right[0]));
  const __m512i zp = _mm512_set1_epi32(y_zp), lo = _mm512_set1_epi32(c.out_min), hi = _mm512_set1_epi32(c.out_max);
  __mmask16 leaders = 0;  // the first lane of each pixel's group
  for (int i = 0; i < 16; i += group) leaders = __mmask16(leaders | (1u << i));
  for (size_t blk = b0; blk < b1; ++blk) {
    const size_t p0 = blk * 16, count = std::min<size_t>(16, pixels - p0), bytes = count * size_t(cin);
    const int8_t* xb = x + p0 * size_t(cin);
    alignas(64) int32_t sums[16];
    for (int v = 0; v * 64 < cin * 16; ++v) {  // cin / 4 vectors of per_vector pixels each
      const size_t done = size_t(v) * 64, valid = bytes > done ? std::min<size_t>(64, bytes - done) : 0;
      const __mmask64 k = valid == 64 ? ~__mmask64(0) : (__mmask64(1) << valid) - 1;
      const __m512i u = _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, xb + done), flip);
      __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, wv);
      if (group > 1) t = _mm512_add_epi32(t, _mm512_alignr_epi32(t, t, 1));
      if (group > 2) t = _mm512_add_epi32(t, _mm512_alignr_epi32(t, t, 2));
      if (group > 4) t = _mm512_add_epi32(t, _mm512_alignr_epi32(t, t, 4));
      if (group > 8) t = _mm512_add_epi32(t, _mm512_alignr_epi32(t, t, 8));
      _mm512_mask_storeu_epi32(sums + v * per_vector, __mmask16((1u << per_vector) - 1),
                               _mm512_maskz_compress_epi32(leaders, t));
    }
    const __m128i out = requantize_to_int8(_mm512_load_si512(sums), q, zp, lo, hi);
    _mm_mask_storeu_epi8(y + p0, __mmask16((1u << count) - 1), out);
  }
}
#pragma GCC diagnostic pop

void pointwise_to_one(const QConv& c, QParams xq, QParams yq, size_t pixels, const int8_t* x, int8_t* y) {
  const std::shared_ptr<const PackedConvInt8> pk = vnni_packing(c, xq);
  alignas(64) int8_t wrep[64];  // the cin weights repeated across a vector
  for (int i = 0; i < 64; ++i) wrep[i] = c.weights[size_t(i % c.cin)];
  constexpr size_t kBlocksPerChunk = 64;  // 1024 pixels per parallel step
  const size_t blocks = (pixels + 15) / 16;
  const int64_t chunks = int64_t((blocks + kBlocksPerChunk - 1) / kBlocksPerChunk);
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const size_t b0 = size_t(ch) * kBlocksPerChunk;
    pointwise_to_one_blocks(c, pk->requant, yq.zero_point, wrep, pixels, b0, std::min(blocks, b0 + kBlocksPerChunk), x,
                            y);
  }
}

// Both entry points: the AVX2 kernel where VNNI does not apply, the logits
// layer's own kernel, else the tiles (AMX's for full tiles when amx).
void conv2d_int8_vnni_or_amx(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y,
                             bool amx) {
  if (c.k > 15 || !int8_vnni_available()) return conv2d_int8_avx2(c, xq, yq, n, h, w, x, y);
  if (pointwise_to_one_applies(c)) return pointwise_to_one(c, xq, yq, size_t(n) * h * w, x, y);
  const auto to_unsigned = [](int8_t v) { return uint8_t(uint8_t(v) ^ 0x80); };
  const auto src = converted_rows(x, h, w, c.cin, c.k / 2, uint8_t(xq.zero_point + 128), to_unsigned);
  conv2d_int8_tiles(c, yq, n, h, w, src, vnni_packing(c, xq), y, amx);
}

}  // namespace

void conv2d_int8_vnni(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  conv2d_int8_vnni_or_amx(c, xq, yq, n, h, w, x, y, false);
}

void conv2d_int8_upsample_concat_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* low,
                                      int c_low, const int8_t* skip, int8_t* y) {
  check_upsample_concat(c, h, w, c_low);
  if (c.k <= 15 && int8_vnni_available() && !pointwise_to_one_applies(c)) {
    const auto src = upsample_concat_rows(low, c_low, skip, c.cin - c_low, h, w, c.k / 2, uint8_t(xq.zero_point + 128));
    return conv2d_int8_tiles(c, yq, n, h, w, src, vnni_packing(c, xq), y, int8_amx_available());
  }
  conv2d_int8_upsample_concat_formed(c, xq, yq, n, h, w, low, c_low, skip, y);
}

void conv2d_int8_amx(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  conv2d_int8_vnni_or_amx(c, xq, yq, n, h, w, x, y, int8_amx_available());
}

}  // namespace mixseg
#else
namespace mixseg {
bool int8_vnni_available() { return false; }
std::shared_ptr<const PackedConvInt8> pack_conv_int8_vnni(const QConv& c, QParams xq) { return pack_conv_int8_avx2(c, xq); }
void conv2d_int8_vnni(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  conv2d_int8_avx2(c, xq, yq, n, h, w, x, y);
}
void conv2d_int8_amx(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y) {
  conv2d_int8_avx2(c, xq, yq, n, h, w, x, y);
}
void conv2d_int8_upsample_concat_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* low,
                                      int c_low, const int8_t* skip, int8_t* y) {
  check_upsample_concat(c, h, w, c_low);
  conv2d_int8_upsample_concat_formed(c, xq, yq, n, h, w, low, c_low, skip, y);
}
}  // namespace mixseg
#endif
