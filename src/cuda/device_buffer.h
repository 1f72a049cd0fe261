// A device buffer that grows to the largest size asked of it (cuDNN
// workspaces, scratch): freeing the old one synchronises the device, so no
// kernel still uses it. Host-side code (the .cpp files of src/cuda).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/arena.h"
#include "core/error.h"

namespace mixseg {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  // At least `bytes` of device memory (the contents are not kept when it grows).
  void* get(size_t bytes) {
    if (bytes > size_) {
      if (p_) cudaFree(p_);
      p_ = nullptr;
      size_ = 0;
      const cudaError_t e = cudaMalloc(&p_, bytes);
      if (e != cudaSuccess) {
        cudaGetLastError();  // clear it, or the next kernel's launch check reports it as its own
        fail("CUDA: cannot allocate {} of device memory: {}", memory_size_text(bytes), cudaGetErrorString(e));
      }
      size_ = bytes;
    }
    return p_;
  }
  size_t size() const { return size_; }

 private:
  void* p_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mixseg
