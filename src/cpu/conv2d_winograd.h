// Own Winograd F(2x2,3x3) convolution for the fast CPU backend: 3x3,
// stride 1, padding 1, NHWC activations in f32, f16 or bf16 (f32 arithmetic), an
// optional f32 bias and ReLU fused into the output transform; and the
// weight gradient by F(3x3,2x2) on the same 4x4 tiles. AVX-512 only
// (winograd_f2_available); the caller falls back to oneDNN elsewhere.
//
// Why our own: at the U-Net's first levels (8-64 channels at 512x256 and
// 256x128) oneDNN 2.6's direct kernels reach ~70% of the FMA peak and its
// Winograd is slower still (docs/performance.md v0.6); and oneDNN 2.6 has no
// f16 convolution, so f16 went through two extra passes over f32 copies.
// F(2x2,3x3) does 16 multiplies per 2x2 output tile and channel pair instead
// of 36 (2.25x fewer), with additions only in the transforms; this kernel
// reads f16 with the vector conversion in its loads and rounds its output
// once, so the f16 path costs no extra pass. bf16 likewise (a shift to widen,
// rounding in integer lanes): on CPUs without AVX512_BF16, where oneDNN only
// emulates bf16, it is the one bf16 convolution that needs no f32 copies.
//
// Numerics: y = A^T [ (G g G^T) . (B^T d B) ] A with the weight transform
// in f32 (G's halves and ones make its products exact; only its additions
// round), input and output transforms and the dot products in f32 (FMA). Against direct summation the
// error grows by a small constant factor (the transforms' additions), held
// to the same tolerance (ops/tolerance.h) in the tests.
//
// bf16 with bf16 products (CPUs with AVX512_BF16, bf16_products): the
// transformed input V and weights U (the weight gradient: V and the
// transformed dy) are rounded to bf16, round to nearest even, and their
// products summed in f32 by vdpbf16ps over pairs (of input channels; of
// tiles for the weight gradient), the rest as above: twice the products per
// instruction of f32 FMAs, and V in half the bytes. Each product term then
// carries two bf16 roundings (unit roundoff 2^-8 each), and the transforms'
// sums spread them (V sums four inputs; an output reads nine points), so
// the error reaches several unit roundoffs of |y| + rms(y): 5.5 at worst in
// the tests, where the direct bf16 convolution stays within the output's
// own rounding. The tolerance of bf16 convolutions allows it (x3 on the
// rounding term, ops/tolerance.h; docs/decisions.md): the trade GPU
// libraries make in 16-bit Winograd too, and what bf16 training absorbs.
#pragma once
#include <vector>

#include "core/dtype.h"
#include "ops/conv2d_ref.h"

namespace mixseg {

// The transformed weights U[xi][ci][co] for the 16 points xi of the 4x4
// tile, output channels padded with zeros to a multiple of 16.
// With bf16 products, u is empty and u_pairs holds U rounded to bf16 with
// input channels in pairs, [xi][ci / 2][co][ci % 2] (cin padded to even with
// zeros): one 32-bit lane per output channel, as vdpbf16ps reads it.
// With point_pairs (up to 8 output channels, where a vector of 16 output
// channels would be half zeros), a vector holds two points instead: lane
// 2 co + xi % 2 of row xi / 2, U[xi / 2][ci][co][xi % 2] (bf16 products:
// [xi / 2][ci / 2][co][xi % 2][ci % 2]), cout_pad 16.
struct WinogradF2Weights {
  int cin = 0, cout = 0, cout_pad = 0;
  bool point_pairs = false;
  std::vector<float> u;
  std::vector<bf16> u_pairs;
  bool bf16_products() const { return !u_pairs.empty(); }
};

// Whether this CPU runs the kernel (AVX-512 F/BW/VL).
bool winograd_f2_available();
// Whether it also has the bf16 dot product (AVX512_BF16) for bf16 products.
bool winograd_f2_bf16_products_available();
// Whether the kernel takes this shape and dtype (3x3, f32, f16 or bf16).
bool winograd_f2_applies(const ConvShape& s, DType dt);
// From OHWI weights of dtype dt (f32, f16 or bf16) of the convolution s. With
// for_backward_data, the weights of the convolution that computes s's
// backward-data pass instead: dx = conv(dy, w') over s.cout -> s.cin
// channels, w'[ci][kh][kw][co] = w[co][2-kh][2-kw][ci] (transposed, flipped).
// bf16 weights are prepared for bf16 products where the CPU has them, unless
// bf16_products says otherwise (tests run both forms on one machine).
WinogradF2Weights winograd_f2_transform_weights(const ConvShape& s, DType dt, const void* w_ohwi,
                                                bool for_backward_data = false);
WinogradF2Weights winograd_f2_transform_weights(const ConvShape& s, DType dt, const void* w_ohwi,
                                                bool for_backward_data, bool bf16_products);
// The same into u, reusing its memory (training transforms every step).
void winograd_f2_transform_weights(WinogradF2Weights& u, const ConvShape& s, DType dt, const void* w_ohwi,
                                   bool for_backward_data = false);
void winograd_f2_transform_weights(WinogradF2Weights& u, const ConvShape& s, DType dt, const void* w_ohwi,
                                   bool for_backward_data, bool bf16_products);
// y = conv(x, w) (+ bias[co]) (then ReLU); x, y NHWC of dtype dt; bias f32 or null.
void conv2d_winograd_f2(const ConvShape& s, DType dt, const void* x, const WinogradF2Weights& u, const float* bias,
                        void* y, bool relu);

// The weight gradient of the convolution s: dw (f32, OHWI, overwritten) =
// sum over pixels of dy x x, by Winograd F(3x3,2x2) on the same input
// transform (see conv2d_winograd.cpp). x [N,H,W,cin], dy [N,H,W,cout] of
// dtype dt. The summation order depends on the shape only, not on the
// thread count.
// bf16 with bf16 products where the CPU has them (V and the transformed dy
// rounded to bf16, summed over pairs of tiles by vdpbf16ps), unless
// bf16_products says otherwise.
void conv2d_winograd_f2_backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw);
void conv2d_winograd_f2_backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw,
                                         bool bf16_products);

// The decoder's upsample, concat and convolution in one pass: the input
// concat(upsample2x(low), skip) is read on the fly, never stored. low:
// [N, H/2, W/2, c_low], skip: [N, H, W, s.cin - c_low], H and W even.
void conv2d_winograd_f2_upsample_concat(const ConvShape& s, DType dt, const void* low, int c_low, const void* skip,
                                        const WinogradF2Weights& u, const float* bias, void* y, bool relu);

}  // namespace mixseg
