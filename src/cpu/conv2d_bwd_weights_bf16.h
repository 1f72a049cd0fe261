// The weight gradient of a 3x3 convolution (stride 1, padding 1) on bf16
// activations by vdpbf16ps over pairs of horizontally adjacent pixels, for
// the U-Net's narrow levels: where a kernel row's taps and input channels
// (3 cin) fill at most six vectors, every output channel's gradient for a
// kernel row stays in registers while a row of pixel pairs streams past.
//
// Why our own: at 8 and 16 channels oneDNN 2.6's direct bf16 weight gradient
// reaches ~40% of the bf16 dot-product peak on AMD Zen 4 (8->8 and 16->8 at
// 512x256, docs/performance.md v0.32), and the own Winograd F(3x3,2x2) costs
// the same whatever the channel count below 16 (its transforms dominate).
//
// Layout: for each input row, "pair entries" e = q + 1 hold, per input
// channel, the bf16 pair (x[q], x[q + 1]) in one 32-bit lane (q from -1;
// zeros outside the row); the three taps of a kernel row for the output
// pixel pair (2p, 2p + 1) are then entries 2p .. 2p + 2, 3 cin contiguous
// lanes, which is also the [kx][ci] order of the OHWI gradient. The output
// gradient's pixel pairs are lanes too, (dy[2p][co], dy[2p + 1][co]), each
// broadcast once per pair: vdpbf16ps adds dy[2p] x[2p + kx - 1] +
// dy[2p + 1] x[2p + kx] to the lane of (kx, ci).
//
// Numerics: a bf16 x bf16 product is exact in f32, so each lane is an f32
// sum of exact products (vdpbf16ps rounds after each of its two adds, like
// two FMAs; denormals flushed) over a row's pixel pairs, rows added in f32
// within fixed chunks of rows, chunks in order in double: the summation
// order depends on the shape only, not on the thread count. The tolerance
// of a direct f32-accumulated convolution applies (ops/tolerance.h).
#pragma once
#include "core/dtype.h"
#include "ops/conv2d_ref.h"

namespace mixseg {

// Whether this CPU runs the kernel (AVX-512 F/BW/VL and AVX512_BF16).
bool conv2d_bwd_weights_bf16_pairs_available();
// Whether it takes this shape: 3x3 with 3 cin <= 96 (up to 32 input channels).
bool conv2d_bwd_weights_bf16_pairs_applies(const ConvShape& s);
// dw (f32, OHWI [cout][3][3][cin], overwritten) = the sum over pixels of
// dy x x: x [N,H,W,cin] and dy [N,H,W,cout] in bf16.
void conv2d_bwd_weights_bf16_pairs(const ConvShape& s, const bf16* x, const bf16* dy, float* dw);

}  // namespace mixseg
