// A device buffer that grows to the largest size asked of it (cuDNN
// workspaces, scratch). Every pointer it hands out stays valid until the
// buffer goes: a recorded CUDA graph replays the pointers it was captured
// with, so growing keeps the smaller allocation instead of freeing it (the
// sizes only grow while new shapes are first seen: a few MiB at most, or
// the cuDNN workspace's one step down to its full size; see
// conv2d.cpp's find_workspace). Running out of device memory is an OutOfMemory
// naming the buffer (a benchmark sweep skips the configuration); other
// failures are errors. Host-side code (the .cpp files of src/cuda).
#pragma once
#include <cuda_runtime_api.h>

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/error.h"

namespace mixseg {

class DeviceBuffer {
 public:
  explicit DeviceBuffer(const char* what) : what_(what) {}
  ~DeviceBuffer() {
    for (void* p : retired_) cudaFree(p);
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  // At least `bytes` of device memory (the contents are not kept when it grows).
  void* get(size_t bytes) {
    if (bytes > size_) {
      void* p = nullptr;
      const cudaError_t e = cudaMalloc(&p, bytes);
      if (e != cudaSuccess) {
        cudaGetLastError();  // clear it, or the next kernel's launch check reports it as its own
        const std::string text = fmt::format("CUDA: cannot allocate {} of device memory for the {}: {}",
                                             memory_size_text(bytes), what_, cudaGetErrorString(e));
        if (e == cudaErrorMemoryAllocation) throw OutOfMemory(text);
        throw Error(text);
      }
      if (p_) retired_.push_back(p_);
      p_ = p;
      size_ = bytes;
    }
    return p_;
  }
  size_t size() const { return size_; }

 private:
  const char* what_;
  void* p_ = nullptr;
  size_t size_ = 0;
  std::vector<void*> retired_;  // smaller allocations handed out before
};

}  // namespace mixseg
