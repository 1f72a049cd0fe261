// The one place where test tolerances live. A kernel's output in storage type
// `dtype` is compared with the double-precision reference run on the same
// (already rounded) inputs; it passes when, element by element,
//   |got - ref| <= tolerance(op, dtype, k) * (|ref| + rms(ref))
// where k is the op's reduction length (terms summed per output). The bound
// is the final rounding to the storage type (half an ulp, relative) plus f32
// accumulation error growing like sqrt(k), with a safety factor of 4.
// Ops that only move or compare values are exact: tolerance 0. int8 kernels
// (later) are bit-exact and do not use this.
//
// Convolutions may run as Winograd F(4x4,3x3) in the fast backend (oneDNN's,
// f32): its input, filter and output transforms round at every stage and
// their coefficients (up to 5.25 in magnitude) amplify that rounding, so the
// accumulation term of the convolution ops is multiplied by kWinogradGrowth.
// With Winograd forced, the test shapes reach up to 1.8x the direct bound
// (f32, 1 input channel); 4 leaves a margin and stays ~1e-5 relative.
//
// bf16 convolutions may run as the own Winograd F(2x2,3x3) with bf16
// products (cpu/conv2d_winograd.h): the transformed input and weights are
// rounded to bf16 before their products, and the transforms' sums carry
// that rounding into every output, so the rounding term of bf16
// convolutions is multiplied by kBf16WinogradGrowth. Its tests' worst
// element reached 5.5 bf16 unit roundoffs of |ref| + rms(ref) (1 input
// channel; 3.8-4.8 at 16-64), against the 4 of the bound without it; 3
// makes the bound 12 and leaves a margin of 2.2x. An indexing or
// accumulation bug still shows: it is off by the order of rms(ref) (256).
#pragma once
#include <cmath>
#include <cstddef>

#include "core/backend.h"
#include "core/dtype.h"

namespace mixseg {

inline double unit_roundoff(DType t) {
  switch (t) {
    case DType::f32: return std::ldexp(1.0, -24);
    case DType::f16: return std::ldexp(1.0, -11);
    case DType::bf16: return std::ldexp(1.0, -8);
    default: return 0.0;
  }
}

inline double tolerance(Op op, DType dtype, size_t reduction_length) {
  switch (op) {
    case Op::relu_fwd:
    case Op::relu_bwd:
    case Op::maxpool_fwd:
    case Op::maxpool_bwd:
    case Op::upsample_fwd:
    case Op::upsample_concat_fwd:
    case Op::depth_to_space_fwd:
    case Op::depth_to_space_bwd:
    case Op::concat_fwd:
    case Op::concat_bwd:
    case Op::convert: return 0.0;
    default: break;
  }
  constexpr double kWinogradGrowth = 4.0, kBf16WinogradGrowth = 3.0;
  const bool conv = op == Op::conv2d_fwd || op == Op::conv2d_fwd_bias || op == Op::conv2d_bwd_data ||
                    op == Op::conv2d_bwd_weights;
  const double f32_acc = std::ldexp(1.0, -24) * std::sqrt(double(reduction_length) + 1.0) * (conv ? kWinogradGrowth : 1.0);
  const double rounding = unit_roundoff(dtype) * (conv && dtype == DType::bf16 ? kBf16WinogradGrowth : 1.0);
  return 4.0 * (rounding + f32_acc);
}

}  // namespace mixseg
