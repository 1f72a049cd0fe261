// CUDA device discovery, the first piece of the CUDA backend: how many GPUs
// the runtime sees and their names. Compiled only when MIXSEG_CUDA is on.
#include <cuda_runtime.h>

#include <string>

#include "cuda/device_query.h"

namespace mixseg {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

std::string cuda_device_name(int device) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return "unknown";
  return p.name;
}

}  // namespace mixseg
