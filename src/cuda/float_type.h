// The kernels' storage type (kernels.h) of a project dtype, for the host-side
// CUDA code; throws naming any other dtype.
#pragma once
#include "core/dtype.h"
#include "core/error.h"
#include "cuda/kernels.h"

namespace mixseg {

inline cuda::FloatType float_type(DType t) {
  switch (t) {
    case DType::f32: return cuda::FloatType::f32;
    case DType::f16: return cuda::FloatType::f16;
    case DType::bf16: return cuda::FloatType::bf16;
    default: fail("the CUDA kernels take f32, f16 or bf16 tensors, not {}", dtype_name(t));
  }
}

}  // namespace mixseg
