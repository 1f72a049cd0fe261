// The own direct weight gradient of a 3x3 convolution (stride 1, padding 1)
// for the U-Net's narrow levels: a kernel row's taps and input channels,
// 3 cin lanes in the [kx][ci] order of the OHWI gradient, fill at most six
// 16-lane vectors, so the gradient of a group of output channels for one
// kernel row stays in registers while a row of pixels streams past, each
// pixel's dy broadcast once per channel. AVX-512.
//
// Why our own: at 8 and 16 channels oneDNN 2.6's direct weight gradient
// runs at 35-45% of the FMA or bf16 dot-product peak on AMD Zen 4 (8->8 and
// 16->8 at 512x256, docs/performance.md v0.32), its blocking made for wider
// layers; the own Winograd F(3x3,2x2) costs the same whatever the channel
// count below 16 (its transforms dominate).
//
// f32, f16, and bf16 on CPUs without AVX512_BF16: each input row widened to
// f32 with one zero pixel on each side, so the taps of pixel p are the 3 cin
// floats from padded pixel p; one FMA per pixel, vector and output channel.
// bf16 with AVX512_BF16: pixel pairs. Each input row becomes "pair entries",
// entry e = q + 1 holding per input channel the bf16 pair (x[q], x[q + 1])
// in one 32-bit lane (zeros outside the row): the taps of the output pair
// (2p, 2p + 1) are entries 2p .. 2p + 2. The output gradient's pairs
// (dy[2p][co], dy[2p + 1][co]) are broadcast as 32-bit lanes, and vdpbf16ps
// adds dy[2p] x[2p + kx - 1] + dy[2p + 1] x[2p + kx] to the lane of (kx, ci):
// twice the products per instruction.
//
// Numerics: 16-bit values and their products are exact in f32 (11-bit f16
// significands give 22 bits, bf16's 8 give 16), so every lane is an f32 sum
// of exact products (FMA; vdpbf16ps rounds after each of its two adds,
// denormals flushed) over a row, rows added in f32 within fixed chunks of
// rows, chunks in order in double: the summation order depends on the shape
// only, not on the thread count. The tolerance of a direct f32-accumulated
// convolution applies (ops/tolerance.h).
#pragma once
#include "core/dtype.h"
#include "ops/conv2d_ref.h"

namespace mixseg {

// Whether this CPU runs the kernel (AVX-512 F/BW/VL).
bool conv2d_bwd_weights_rows_available();
// Whether it also runs bf16 by pixel pairs (AVX512_BF16).
bool conv2d_bwd_weights_rows_pairs_available();
// Whether the kernel takes this shape and dtype: 3x3, up to 32 input
// channels, f32, f16 or bf16.
bool conv2d_bwd_weights_rows_applies(const ConvShape& s, DType dt);
// dw (f32, OHWI [cout][3][3][cin], overwritten) = the sum over pixels of
// dy x x: x [N,H,W,cin] and dy [N,H,W,cout] of dtype dt. bf16 by pixel pairs
// where the CPU has them, unless bf16_pairs says otherwise (tests run both
// forms on one machine).
void conv2d_bwd_weights_rows(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw);
void conv2d_bwd_weights_rows(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw, bool bf16_pairs);

}  // namespace mixseg
