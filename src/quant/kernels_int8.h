// The int8 kernels, with TFLite's integer semantics (see qmodel.h and
// fixed_point.h). Activations are NHWC int8. The reference convolution is
// TFLite's reference per-channel convolution loop; the fast variants (AVX2
// int16 multiply-adds; AVX-512 VNNI byte dot products; OpenMP) compute the
// same int32 sums in another order, which integer arithmetic makes
// bit-exact, and requantize with the same function.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "quant/qmodel.h"

namespace mixseg {

// Per output channel, what the vector kernels' requantization needs, in
// int32 lanes for channels [0, padded_cout) (zero beyond cout): the bias
// (with any correction a kernel's input offset needs folded in), the
// multiplier, and the left and right shifts.
struct Requant {
  std::vector<int32_t> bias, multiplier, left, right;
};
Requant prepare_requant(const QConv& c, int padded_cout);

// A convolution prepared for one fast kernel: its weights in the kernel's
// layout and its requantization, made once per model by prepare() (qmodel.h)
// for the input zero point the convolution sees (VNNI folds it into the
// bias). A kernel given none, or one for another variant or zero point (a
// QConv built by hand, as the kernel tests do), packs on the fly.
struct PackedConvInt8 {
  enum class Variant { avx2, vnni };
  Variant variant = Variant::avx2;
  int32_t input_zero_point = 0;
  std::vector<std::byte> storage;  // the packed weights start at `offset` (aligned for the kernel's loads)
  size_t offset = 0;
  // vnni, up to 8 output channels of a 3x3 kernel over a multiple of 8
  // input channels: where the quad-pair packing (conv2d_int8_vnni.cpp)
  // starts, in bytes after the weights' start; 0: none.
  size_t quad_pairs = 0;
  Requant requant;
  template <class T>
  const T* weights() const {
    return reinterpret_cast<const T*>(storage.data() + offset);
  }
};
// The packing for the variant conv2d_int8_fast runs on this CPU (null: the reference).
std::shared_ptr<const PackedConvInt8> pack_conv_int8_fast(const QConv& c, QParams xq);
std::shared_ptr<const PackedConvInt8> pack_conv_int8_avx2(const QConv& c, QParams xq);
std::shared_ptr<const PackedConvInt8> pack_conv_int8_vnni(const QConv& c, QParams xq);

// y[n, h, w, cout] = clamp(requant(sum (x - x_zp) * w + bias) + y_zp), stride
// 1, SAME padding (taps outside the image contribute nothing).
void conv2d_int8_ref(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
// The fastest variant this CPU runs (AMX, else VNNI, else AVX2, else the reference).
void conv2d_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
void conv2d_int8_avx2(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
// Falls back to the AVX2 variant on CPUs without AVX-512 VNNI.
void conv2d_int8_vnni(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
bool int8_vnni_available();
// VNNI with its full 16-pixel tiles on AMX (quant/amx_tiles.h; same packing,
// same sums); falls back to VNNI on CPUs or systems without AMX-INT8.
void conv2d_int8_amx(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x, int8_t* y);
// The decoder's upsample, concat and convolution in one: the input
// concat(upsample2x(low), skip), low [n, h/2, w/2, c_low] and skip [n, h, w,
// c.cin - c_low], both at xq (the engine's upsample and concat copy bytes), is
// read while the kernel lays out its padded input rows, never stored. The
// same bytes as upsample2x_int8, concat_int8 and conv2d_int8_fast (the VNNI
// and AMX variants fuse; elsewhere the input is formed first).
void conv2d_int8_upsample_concat_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* low,
                                      int c_low, const int8_t* skip, int8_t* y);
// Whether this CPU has AMX-TILE and AMX-INT8 and the OS grants this process
// the tile state (Linux: arch_prctl(ARCH_REQ_XCOMP_PERM), asked once).
bool int8_amx_available();
// The variant conv2d_int8_fast runs here: "amx", "avx512_vnni", "avx2" or
// "reference" (for `mixseg info` and the benchmark's metadata).
const char* int8_conv_variant();

// The 2x2 stride-2 transposed convolution (model/deploy.h), TFLite's
// TRANSPOSE_CONV without bias: y[n, 2y + a, 2x + b, c] = clamp(requant(sum over ci
// of (x[n, y, x, ci] - x_zp) * w[c, a, b, ci] + bias[c]) + y_zp) for the input
// [n, h, w, cin]. The reference sums what TFLite's reference kernel sums,
// gathered per output (each takes one input pixel); the fast variant runs the
// prepared 1x1 convolution to 4 * cout channels (QConv::pointwise, made here
// if absent) with conv2d_int8_fast and moves each pixel's four taps into place.
void transposed_conv2x2_int8_ref(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x,
                                 int8_t* y);
void transposed_conv2x2_int8_fast(const QConv& c, QParams xq, QParams yq, int n, int h, int w, const int8_t* x,
                                  int8_t* y);
// The prepared 1x1 form of the transposed convolution c (multipliers and
// clamps set), packed for the fast kernel at input parameters xq.
std::shared_ptr<const QConv> pointwise_of_transposed(const QConv& c, QParams xq);

// 2x2 max-pooling, stride 2 (h, w even; parameters shared, so no requantization).
void maxpool2x2_int8(int n, int h, int w, int c, const int8_t* x, int8_t* y);
// Nearest 2x upsampling of [n, h, w, c] to [n, 2h, 2w, c].
void upsample2x_int8(int n, int h, int w, int c, const int8_t* x, int8_t* y);
// Channel concatenation of a [.., ca] and b [.., cb] over `pixels` pixels.
void concat_int8(size_t pixels, int ca, int cb, const int8_t* a, const int8_t* b, int8_t* y);
// y = table[x as a byte] (TFLite's int8 LOGISTIC).
void lookup_int8(size_t n, const std::array<int8_t, 256>& table, const int8_t* x, int8_t* y);

}  // namespace mixseg
