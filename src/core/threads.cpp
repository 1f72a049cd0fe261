// Thread count control (OpenMP).
#include "core/threads.h"

#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace mixseg {

void set_threads(int n) {
#ifdef _OPENMP
  if (n <= 0) {
    // OpenMP has read OMP_NUM_THREADS already: a user who set it gets it.
    const char* env = std::getenv("OMP_NUM_THREADS");
    if (env && *env) return;
    n = omp_get_num_procs();
  }
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

namespace {
constexpr unsigned kFtzDaz = 0x8040;  // MXCSR bits 15 (flush to zero) and 6 (denormals are zero)
}

ScopedFlushDenormals::ScopedFlushDenormals() {
#if defined(__SSE__)
  caller_ = _mm_getcsr();
  _mm_setcsr(caller_ | kFtzDaz);
#pragma omp parallel
  {
    const int t = thread_index();
    if (t == 0) team_ = thread_count();
    if (t < 256) saved_[t] = _mm_getcsr();
    _mm_setcsr(_mm_getcsr() | kFtzDaz);
  }
#endif
}

ScopedFlushDenormals::~ScopedFlushDenormals() {
#if defined(__SSE__)
#pragma omp parallel
  {
    const int t = thread_index();
    if (t != 0 && t < 256 && t < team_) _mm_setcsr(saved_[t]);
  }
  _mm_setcsr(caller_);
#endif
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace mixseg
