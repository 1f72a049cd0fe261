// The int8 convolution's 16-pixel tile on Intel AMX (the tile unit of Xeon
// Sapphire Rapids and later), for conv2d_int8_amx (kernels_int8.h): the same
// sums as the VNNI tile (conv2d_int8_vnni.cpp), on the same packed weights
// and shifted u8 input rows, so the same int32 accumulators bit for bit.
#pragma once
#include <cstdint>

namespace mixseg {

// int8_amx_available() (kernels_int8.h) says whether these may run.

// Per thread, around its tiles: configures the tile registers for kernel rows
// of `quads` 4-byte groups (at most 16 per tile, the rest in a second,
// narrower pair of tiles), then releases them.
void amx_tiles_begin(int quads);
void amx_tiles_end();

// out[p * 16 + o] = sum over ky < k and i < 4 * quads of
// rows[ky][(ox + p) * cin + i] * wblock[(ky * quads + i / 4) * 64 + o * 4 + i % 4]
// for 16 pixels p and the block's 16 output channels o: what tile_vnni<16> computes.
void amx_tile16(const uint8_t* const* rows, int ox, int cin, int k, int quads, const int8_t* wblock, int32_t* out);

}  // namespace mixseg
