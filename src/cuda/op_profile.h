// GPU time per backend op, for finding where a step's time goes on the GPU
// itself: with MIXSEG_CUDA_PROFILE=1 the CUDA backend puts two events around
// every op it runs (recording is off then: the ops run one by one), reads
// them after each synchronisation, and prints the totals per op kind and per
// op and shape to stderr when it goes, with the rate each reached: GB/s from
// the bytes the op's kernels must move (each tensor pass once, as
// bench/gpu_floor.py counts them), TFLOP/s from a convolution's FLOPs.
// Host-side code; off, it costs one branch per op.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <string>
#include <vector>

namespace mixseg {

class OpProfile {
 public:
  explicit OpProfile(cudaStream_t stream);
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;
  bool enabled() const { return enabled_; }
  // Around one op (a nested pair would count twice in the per-kind sums);
  // bytes and flops: the op's work (0 where not counted).
  void begin(std::string key, double bytes, double flops);
  void end();
  // After the stream was synchronised: the finished ops' times into the totals.
  void collect();
  // The tables: per op kind (the key's first word), then the top keys.
  std::string report() const;

 private:
  struct Pending {
    std::string key;
    double bytes, flops;
    cudaEvent_t start = nullptr, stop = nullptr;
  };
  struct Total {
    double ms = 0, bytes = 0, flops = 0;
    long calls = 0;
  };
  cudaEvent_t event();
  cudaStream_t stream_;
  bool enabled_;
  std::vector<Pending> pending_;
  std::vector<size_t> open_;  // indices into pending_ of ops begun, not ended
  std::vector<cudaEvent_t> free_;
  std::map<std::string, Total> totals_;
};

}  // namespace mixseg
