// CUDA device discovery, the first piece of the CUDA backend: how many GPUs
// the runtime sees and their names. Compiled only when MIXSEG_CUDA is on.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "cuda/device_query.h"

namespace mixseg {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

std::string cuda_versions() {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  const size_t dnn = cudnnGetVersion();  // major * 10000 + minor * 100 + patch (cuDNN 9)
  auto cuda_text = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  return "CUDA runtime " + cuda_text(runtime) + ", driver " + cuda_text(driver) + ", cuDNN " +
         std::to_string(dnn / 10000) + "." + std::to_string(dnn % 10000 / 100) + "." + std::to_string(dnn % 100);
}

std::string cuda_device_name(int device) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return "unknown";
  return p.name;
}

}  // namespace mixseg
