// The CUDA backend (backend_cuda.cpp): device memory, cuDNN convolutions
// (conv2d.h) and the own kernels of kernels.h behind the Backend interface.
// Builds without CUDA have only the factory, which says so (core/cuda_absent.cpp).
#pragma once
#include <memory>

#include "core/backend.h"

namespace mixseg {

// Throws naming the reason when no GPU is visible.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace mixseg
