// What a build without the CUDA toolkit has in place of src/cuda: no GPU,
// and a backend factory that says why there is none. Empty in CUDA builds,
// so callers use cuda/device_query.h and cuda/backend_cuda.h unconditionally.
#ifndef MIXSEG_HAVE_CUDA
#include "core/error.h"
#include "cuda/backend_cuda.h"
#include "cuda/device_query.h"

namespace mixseg {

int cuda_device_count() { return 0; }
std::string cuda_device_name(int) { return "no GPU"; }
std::string cuda_versions() { return "not built with CUDA"; }

std::unique_ptr<Backend> make_cuda_backend() {
  fail("backend 'cuda': this build has no CUDA backend (configure with the CUDA toolkit: cmake --preset cuda)");
}

}  // namespace mixseg
#endif
