// The CUDA runtime API calls of the backend (src/cuda), emulated on the CPU
// for the tests: one device whose memory is host memory, streams, stream
// capture into graphs that replay it, events, and the runtime's errors.
// Only the calls mixseg makes are here; the emulated library links these
// instead of libcudart.
//
// Work on a stream runs as late as a GPU may run it: queued, in order, until
// something waits for it (cudaStreamSynchronize, cudaFree, a copy into
// pageable host memory). Host code that reuses a buffer before the copy
// from it has run, or reads a result before waiting for it, sees what a
// slow GPU would make it see. Copies from pageable host memory take their
// bytes at the call, as CUDA stages them; pinned memory is read when the
// copy runs. MIXSEG_CUDA_EMULATION_SYNC=1 runs all work at once instead.
//
// What it checks that a GPU would only show by crashing or by wrong
// results: device memory starts as 0xff bytes (NaN in every float type, so
// reading what nothing wrote shows up); every allocation ends in guard bytes
// and then an unmapped page (a write past the end is reported as the GPU's
// illegal address at the next launch check, a read or write further on stops
// the test with SIGSEGV); copies and kernel pointers must be device memory
// (or pinned host memory for kernels); allocation, synchronisation and
// cuDNN's Find while the thread captures a stream invalidate the capture, as
// they do on a GPU. MIXSEG_CUDA_EMULATION_MEMORY (bytes) caps the device
// memory, to test running out of it.
#include <cuda_runtime_api.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_emulation/emulation.h"

struct CUstream_st {
  bool capturing = false, capture_invalid = false;
  std::vector<std::function<void()>> captured;
};
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> ops;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when;
  bool recorded = false;
};

namespace mixseg::cuda_emulation {

namespace {

constexpr size_t kAlignment = 256;  // cudaMalloc's
constexpr unsigned char kGuard = 0xa5;

struct Allocation {
  unsigned char* map;
  size_t map_bytes, bytes, guard;  // guard bytes follow the data up to the unmapped page
  bool pinned;                     // host memory from cudaMallocHost (no guards)
};

std::mutex g_mutex;                                        // allocations
std::map<const unsigned char*, Allocation> g_allocations;  // by start
size_t g_device_bytes = 0;
cudaError_t g_last_error = cudaSuccess, g_sticky_error = cudaSuccess;
CUstream_st g_default_stream;
std::vector<std::function<void()>> g_queued;    // stream work not run yet, in order (one queue: one order)
thread_local CUstream_st* t_capture = nullptr;  // the stream this thread captures

size_t page_size() { return size_t(sysconf(_SC_PAGESIZE)); }

size_t memory_cap() {
  const char* e = std::getenv("MIXSEG_CUDA_EMULATION_MEMORY");
  return e ? size_t(std::strtoull(e, nullptr, 10)) : size_t(64) << 30;
}

void report_illegal_access(int) {
  const char text[] =
      "\nCUDA emulation: SIGSEGV, most likely a kernel or copy reading or writing outside its device "
      "allocation (an illegal address on the GPU)\n";
  [[maybe_unused]] ssize_t n = write(2, text, sizeof text - 1);
  std::signal(SIGSEGV, SIG_DFL);
  std::raise(SIGSEGV);
}

// The data ends where the guard bytes end at the unmapped page.
void* map_device_memory(size_t bytes, Allocation& a) {
  const size_t page = page_size(), rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  const size_t data_pages = (rounded + page - 1) / page;
  a.map_bytes = (data_pages + 1) * page;
  void* m = mmap(nullptr, a.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  a.map = static_cast<unsigned char*>(m);
  mprotect(a.map + data_pages * page, page, PROT_NONE);
  unsigned char* p = a.map + data_pages * page - rounded;
  a.bytes = bytes;
  a.guard = rounded - bytes;
  a.pinned = false;
  std::memset(p, 0xff, bytes);
  std::memset(p + bytes, kGuard, a.guard);
  return p;
}

const Allocation* find(const void* p, const unsigned char** start) {
  auto* c = static_cast<const unsigned char*>(p);
  auto it = g_allocations.upper_bound(c);
  if (it == g_allocations.begin()) return nullptr;
  --it;
  const size_t extent = it->second.bytes ? it->second.bytes : 1;
  if (c >= it->first + extent) return nullptr;
  *start = it->first;
  return &it->second;
}

CUstream_st* stream_of(cudaStream_t s) { return s ? s : &g_default_stream; }

bool run_at_once() {
  static const bool sync = [] {
    const char* e = std::getenv("MIXSEG_CUDA_EMULATION_SYNC");
    return e && std::strcmp(e, "0") != 0;
  }();
  return sync;
}

// Runs one piece of stream work. A kernel the emulator stops (a barrier
// not every thread reaches, __syncthreads() where it was not expected) is
// the GPU's sticky launch failure, with the reason on stderr; work after a
// sticky error does not run.
void run(const std::function<void()>& op) {
  if (g_sticky_error != cudaSuccess) return;
  try {
    op();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "CUDA emulation: %s\n", e.what());
    set_last_error(cudaErrorLaunchFailure);
  }
}

// Runs the queued work (what waiting for the device does).
void finish_queued() {
  std::vector<std::function<void()>> ops;
  ops.swap(g_queued);
  for (const auto& op : ops) run(op);
}

bool pinned(const void* p) {
  std::lock_guard lock(g_mutex);
  const unsigned char* start = nullptr;
  const Allocation* a = find(p, &start);
  return a && a->pinned;
}

cudaError_t fail(cudaError_t e) {
  set_last_error(e);
  return e;
}

// Operations a capture cannot hold: refused, and the capture is invalid.
bool refused_while_capturing() {
  if (!t_capture) return false;
  invalidate_capture();
  set_last_error(cudaErrorStreamCaptureUnsupported);
  return true;
}

const bool g_handler_installed = [] {
  std::signal(SIGSEGV, report_illegal_access);
  return true;
}();

}  // namespace

void submit(cudaStream_t stream, std::function<void()> op) {
  CUstream_st* s = stream_of(stream);
  if (s->capturing)
    s->captured.push_back(std::move(op));
  else if (run_at_once())
    run(op);
  else
    g_queued.push_back(std::move(op));
}

bool capturing() { return t_capture != nullptr; }
void invalidate_capture() {
  if (t_capture) t_capture->capture_invalid = true;
}

void set_last_error(cudaError_t e) {
  g_last_error = e;
  if (e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure)
    g_sticky_error = e;  // the context is lost, as on a GPU
}

bool in_device_memory(const void* p, size_t bytes) {
  std::lock_guard lock(g_mutex);
  const unsigned char* start = nullptr;
  const Allocation* a = find(p, &start);
  return a && !a->pinned && static_cast<const unsigned char*>(p) + bytes <= start + a->bytes;
}

bool reachable_by_device(const void* p) {
  std::lock_guard lock(g_mutex);
  const unsigned char* start = nullptr;
  return find(p, &start) != nullptr;
}

bool guards_intact() {
  std::lock_guard lock(g_mutex);
  for (const auto& [start, a] : g_allocations)
    for (size_t i = 0; i < a.guard; ++i)
      if (start[a.bytes + i] != kGuard) return false;
  return true;
}

}  // namespace mixseg::cuda_emulation

using namespace mixseg::cuda_emulation;

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::strncpy(prop->name, "CUDA emulation on the CPU (tests/cuda_emulation)", sizeof prop->name - 1);
  prop->totalGlobalMem = memory_cap();
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->maxThreadsPerBlock = 1024;
  prop->warpSize = 32;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorIllegalState: return "operation not permitted in this state";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return "CUDA error (emulation)";
  }
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = g_sticky_error != cudaSuccess ? g_sticky_error : g_last_error;
  g_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (refused_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  std::lock_guard lock(g_mutex);
  if (g_device_bytes + bytes > memory_cap()) return fail(cudaErrorMemoryAllocation);
  Allocation a{};
  void* data = map_device_memory(bytes, a);
  if (!data) return fail(cudaErrorMemoryAllocation);
  g_allocations.emplace(static_cast<unsigned char*>(data), a);
  g_device_bytes += bytes;
  *p = data;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  if (refused_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  finish_queued();  // cudaFree waits for the device
  if (!guards_intact()) set_last_error(cudaErrorIllegalAddress);
  std::lock_guard lock(g_mutex);
  auto it = g_allocations.find(static_cast<unsigned char*>(p));
  if (it == g_allocations.end() || it->second.pinned) return fail(cudaErrorInvalidValue);
  munmap(it->second.map, it->second.map_bytes);
  g_device_bytes -= it->second.bytes;
  g_allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = nullptr;
  if (refused_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  void* m = std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  if (!m) return fail(cudaErrorMemoryAllocation);
  std::lock_guard lock(g_mutex);
  g_allocations.emplace(static_cast<unsigned char*>(m), Allocation{nullptr, 0, bytes, 0, true});
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  if (refused_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  finish_queued();
  std::lock_guard lock(g_mutex);
  auto it = g_allocations.find(static_cast<unsigned char*>(p));
  if (it == g_allocations.end() || !it->second.pinned) return fail(cudaErrorInvalidValue);
  g_allocations.erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  const bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if ((to_device && !in_device_memory(dst, bytes)) || (from_device && !in_device_memory(src, bytes)) ||
      kind == cudaMemcpyDefault)
    return fail(cudaErrorInvalidValue);
  if (!stream_of(stream)->capturing && !run_at_once()) {
    if (kind == cudaMemcpyDeviceToHost && !pinned(dst)) {  // into pageable memory: the call waits for the copy
      finish_queued();
      if (bytes) std::memcpy(dst, src, bytes);
      return cudaSuccess;
    }
    if (kind == cudaMemcpyHostToDevice && !pinned(src)) {  // from pageable memory: staged at the call
      auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                                 static_cast<const unsigned char*>(src) + bytes);
      submit(stream, [=] {
        if (bytes) std::memcpy(dst, staged->data(), bytes);
      });
      return cudaSuccess;
    }
  }
  submit(stream, [=] {
    if (bytes) std::memcpy(dst, src, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  if (!in_device_memory(p, bytes)) return fail(cudaErrorInvalidValue);
  submit(stream, [=] { std::memset(p, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return make<cudaSuccess>(s); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s && s->capturing) return fail(cudaErrorIllegalState);
  finish_queued();
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (stream_of(s)->capturing) {
    invalidate_capture();
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  finish_queued();
  if (!guards_intact()) set_last_error(cudaErrorIllegalAddress);
  return g_sticky_error;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  CUstream_st* s = stream_of(stream);
  if (!stream || s->capturing || t_capture) return fail(cudaErrorIllegalState);
  s->capturing = true;
  s->capture_invalid = false;
  s->captured.clear();
  t_capture = s;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  CUstream_st* s = stream_of(stream);
  *graph = nullptr;
  if (!s->capturing || t_capture != s) return fail(cudaErrorIllegalState);
  s->capturing = false;
  t_capture = nullptr;
  auto ops = std::move(s->captured);
  s->captured.clear();
  if (s->capture_invalid) return fail(cudaErrorStreamCaptureInvalidated);
  *graph = new CUgraph_st{std::move(ops)};
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new CUgraphExec_st{graph->ops};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidValue);
  submit(stream, [ops = exec->ops] {  // a copy: the graph may be destroyed before this runs, as CUDA allows
    for (const auto& op : ops) op();
  });
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) { return destroy<cudaSuccess>(g); }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g) { return destroy<cudaSuccess>(g); }
cudaError_t cudaEventCreate(cudaEvent_t* e) { return make<cudaSuccess>(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { return destroy<cudaSuccess>(e); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  submit(stream, [e] {
    e->when = std::chrono::steady_clock::now();
    e->recorded = true;
  });
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return fail(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

}  // extern "C"
