// The one place where test tolerances live. A kernel's output in storage type
// `dtype` is compared with the double-precision reference run on the same
// (already rounded) inputs; it passes when, element by element,
//   |got - ref| <= tolerance(op, dtype, k) * (|ref| + rms(ref))
// where k is the op's reduction length (terms summed per output). The bound
// is the final rounding to the storage type (half an ulp, relative) plus f32
// accumulation error growing like sqrt(k), with a safety factor of 4.
// Ops that only move or compare values are exact: tolerance 0. int8 kernels
// (later) are bit-exact and do not use this. The same bound holds for the
// fast backend's Winograd F(4x4,3x3) inference convolutions (oneDNN's, f32):
// tested with that algorithm forced on shapes up to 64 -> 128 channels.
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
    case Op::concat_fwd:
    case Op::concat_bwd: return 0.0;
    default: break;
  }
  const double f32_acc = std::ldexp(1.0, -24) * std::sqrt(double(reduction_length) + 1.0);
  return 4.0 * (unit_roundoff(dtype) + f32_acc);
}

}  // namespace mixseg
