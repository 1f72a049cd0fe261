// dispatch_float: runtime dtype -> compile-time storage type for kernels.
#pragma once
#include "core/error.h"

namespace mixseg {

template <class F>
decltype(auto) dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f16: return f.template operator()<f16>();
    case DType::bf16: return f.template operator()<bf16>();
    default: break;
  }
  fail("dtype {} is not a float type; this kernel needs f32, f16 or bf16", dtype_name(t));
}

}  // namespace mixseg
