// The CUDA backend (backend_cuda.cpp): device memory, cuDNN convolutions
// (conv2d.h) and the own kernels of kernels.h behind the Backend interface.
// Present only in CUDA builds (MIXSEG_HAVE_CUDA).
#pragma once
#include <memory>

#include "core/backend.h"

namespace mixseg {

// Throws naming the reason when no GPU is visible.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace mixseg
