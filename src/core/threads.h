// Threading: OpenMP for the outer loops of kernels. Results never depend on
// the thread count: every output element is computed by one thread in a fixed
// order, and reductions sum fixed chunks whose partials are added in order.
#pragma once
#include <cstddef>

namespace mixseg {

void set_threads(int n);  // 0 = all cores
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

}  // namespace mixseg
