// Internals shared by the CPU emulation of the GPU (tests/cuda_emulation):
// the stream's order of work and its capture into graphs, device memory
// with guards, and the runtime's last error. device.h is what kernels see;
// runtime.cpp is the CUDA runtime API, cudnn.cpp cuDNN's convolutions,
// grid.cpp the execution of a launch.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>

namespace mixseg::cuda_emulation {

// Queues op on stream, to run when the host waits for the device (at once
// with MIXSEG_CUDA_EMULATION_SYNC=1), or appends it to the graph being
// captured on stream, to run at each replay.
void submit(cudaStream_t stream, std::function<void()> op);

// Whether the calling thread is capturing a stream; an operation a capture
// cannot hold (allocation, synchronisation, cuDNN's Find) invalidates it.
bool capturing();
void invalidate_capture();

// The runtime's last error, as cudaGetLastError returns and clears it.
void set_last_error(cudaError_t e);

// Whether [p, p + bytes) lies inside one device allocation.
bool in_device_memory(const void* p, size_t bytes);
// Device memory or pinned host memory (both reachable from a kernel).
bool reachable_by_device(const void* p);
// Every device allocation ends in guard bytes (and then an unmapped page);
// false when a write past the end has changed them.
bool guards_intact();

// How many times cuDNN's Find functions ran (the tests of following
// recorded algorithms check it does not).
int find_calls();

// The APIs' create and destroy calls, for each kind of object: ok is the
// API's success status.
template <auto ok, class T>
auto make(T** p) {
  *p = new T;
  return ok;
}
template <auto ok, class T>
auto destroy(T* p) {
  delete p;
  return ok;
}

}  // namespace mixseg::cuda_emulation
