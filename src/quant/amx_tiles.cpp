// The int8 convolution's 16-pixel tile on AMX (see amx_tiles.h).
//
// TDPBUSD multiplies a tile A of 16 rows x 64 unsigned bytes by a tile B of
// 16 rows x 16 lanes x 4 signed bytes and adds into a tile C of 16 x 16 int32:
// C[m][n] += sum over k < 64 of A[m][k] * B[k / 4][n * 4 + k % 4], exactly
// (integer products and sums, no saturation). Here A's rows are 16 pixels:
// for kernel row ky, pixel p's taps are the k * cin bytes of the padded input
// row from (ox + p) * cin on (NHWC: the kx taps and their channels lie side
// by side), so A is loaded with a row stride of cin bytes (rows overlap);
// B is 16 quads of the VNNI packing ([ky][quad][lane][4], 64 bytes per
// quad), loaded as it lies. Kernel rows of more than 64 bytes are cut into
// chunks of 64; a last shorter chunk uses a second pair of tiles configured
// to its width. C accumulates over ky and chunks, then goes to `out`
// (16 x 16 int32, the VNNI tile's layout) for the same requantization.
#include "quant/amx_tiles.h"

#include "quant/kernels_int8.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MIXSEG_AMX_TARGET __attribute__((target("amx-tile,amx-int8")))

namespace mixseg {

namespace {

// Linux: the permission to use the tile data state (XFEATURE_XTILEDATA).
constexpr long kArchReqXcompPerm = 0x1023;
constexpr long kXfeatureXtiledata = 18;

// LDTILECFG's 64-byte operand, palette 1.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

// Tiles: 0 = C; 1, 2 = A, B of a full 64-byte chunk; 3, 4 = A, B of the last, shorter one.

}  // namespace

bool int8_amx_available() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = d & (1u << 24), int8 = d & (1u << 25);
    return tile && int8 && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

MIXSEG_AMX_TARGET void amx_tiles_begin(int quads) {
  TileConfig cfg;
  cfg.rows[0] = 16;
  cfg.colsb[0] = 64;
  if (quads >= 16) {
    cfg.rows[1] = 16;
    cfg.colsb[1] = 64;
    cfg.rows[2] = 16;
    cfg.colsb[2] = 64;
  }
  if (const int tail_quads = quads % 16) {
    cfg.rows[3] = 16;
    cfg.colsb[3] = uint16_t(tail_quads * 4);
    cfg.rows[4] = uint8_t(tail_quads);
    cfg.colsb[4] = 64;
  }
  // Not _tile_loadconfig: GCC 12's intrinsic tells the compiler it reads only
  // a pointer's worth of the 64 bytes, and the stores of the rows and widths
  // were dropped as dead (LDTILECFG then faulted). The whole struct as the
  // operand keeps them.
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

MIXSEG_AMX_TARGET void amx_tiles_end() { _tile_release(); }

MIXSEG_AMX_TARGET void amx_tile16(const uint8_t* const* rows, int ox, int cin, int k, int quads, const int8_t* wblock,
                                  int32_t* out) {
  const int full = quads / 16, tail_quads = quads % 16;  // as configured by amx_tiles_begin(quads)
  _tile_zero(0);
  for (int ky = 0; ky < k; ++ky) {
    const uint8_t* a = rows[ky] + size_t(ox) * cin;
    const int8_t* b = wblock + size_t(ky) * quads * 64;
    for (int chunk = 0; chunk < full; ++chunk) {
      _tile_loadd(1, a + chunk * 64, cin);
      _tile_loadd(2, b + size_t(chunk) * 16 * 64, 64);
      _tile_dpbusd(0, 1, 2);
    }
    if (tail_quads) {
      _tile_loadd(3, a + full * 64, cin);
      _tile_loadd(4, b + size_t(full) * 16 * 64, 64);
      _tile_dpbusd(0, 3, 4);
    }
  }
  _tile_stored(0, out, 64);
}

}  // namespace mixseg

#else
namespace mixseg {
bool int8_amx_available() { return false; }
void amx_tiles_begin(int) {}
void amx_tiles_end() {}
void amx_tile16(const uint8_t* const*, int, int, int, int, const int8_t*, int32_t*) {}
}  // namespace mixseg
#endif
