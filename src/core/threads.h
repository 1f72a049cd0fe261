// Threading: OpenMP for the outer loops of kernels. Results never depend on
// the thread count: every output element is computed by one thread in a fixed
// order, and reductions sum fixed chunks whose partials are added in order.
#pragma once
#include <cstddef>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"

namespace mixseg {

void set_threads(int n);  // 0 = OMP_NUM_THREADS where set, else all cores
int max_threads();
// Flush-to-zero and denormals-are-zero on the calling thread and every
// OpenMP worker for the lifetime of this object, each thread's previous
// setting restored afterwards (so the caller's floating-point environment is
// left as it was). f32 denormals slow SIMD arithmetic down by up to ~100x
// (measured: a oneDNN convolution over memory holding denormals ran 3-250
// GFLOP/s from run to run), and values that small carry no signal here.
class ScopedFlushDenormals {
 public:
  ScopedFlushDenormals();
  ~ScopedFlushDenormals();
  ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
  ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

 private:
  unsigned saved_[256];  // per OpenMP thread index (teams beyond 256 threads keep their setting)
  unsigned caller_;
  int team_ = 0;
};

// Inside a parallel region: this thread's index and the team size (0 and 1 outside).
int thread_index();
int thread_count();

// Number of fixed chunks used by deterministic reductions (independent of threads).
constexpr int kReduceChunks = 64;

// Splits [0, n) into kReduceChunks contiguous ranges; chunk i is [begin, end).
inline void chunk_range(size_t n, int i, size_t& begin, size_t& end) {
  begin = n * size_t(i) / kReduceChunks;
  end = n * size_t(i + 1) / kReduceChunks;
}

// Runs body(i) for every i in [begin, end) on the OpenMP threads (dynamic
// schedule, `chunk` indices at a time; on the calling thread alone for a
// single index, so a loader thread does not start a team of its own). An
// exception must not leave a parallel region (the process would end), so
// each is kept, and after all ran the first in index order is thrown again
// as an Error with its message: the failure a serial loop would report.
template <class Body>
void parallel_for_first_error(size_t begin, size_t end, int chunk, Body&& body) {
  if (end <= begin) return;
  std::vector<std::string> errors(end - begin);
#pragma omp parallel for schedule(dynamic, chunk) if (end - begin > 1)
  for (size_t i = begin; i < end; ++i) {
    try {
      body(i);
    } catch (const std::exception& e) {
      errors[i - begin] = e.what();
    }
  }
  for (const std::string& e : errors)
    if (!e.empty()) fail("{}", e);
}

}  // namespace mixseg
