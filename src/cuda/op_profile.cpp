// GPU time per backend op (see op_profile.h).
#include "cuda/op_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mixseg {

OpProfile::OpProfile(cudaStream_t stream) : stream_(stream) {
  const char* e = std::getenv("MIXSEG_CUDA_PROFILE");
  enabled_ = e && std::strcmp(e, "0") != 0;
}

OpProfile::~OpProfile() {
  if (!enabled_) return;
  cudaStreamSynchronize(stream_);
  collect();
  if (!totals_.empty()) std::fputs(report().c_str(), stderr);
  for (cudaEvent_t e : free_) cudaEventDestroy(e);
}

cudaEvent_t OpProfile::event() {
  if (free_.empty()) {
    cudaEvent_t e = nullptr;
    cudaEventCreate(&e);
    return e;
  }
  cudaEvent_t e = free_.back();
  free_.pop_back();
  return e;
}

void OpProfile::begin(std::string key, double bytes, double flops) {
  if (!enabled_) return;
  Pending p{std::move(key), bytes, flops, event(), nullptr};
  cudaEventRecord(p.start, stream_);
  open_.push_back(pending_.size());
  pending_.push_back(std::move(p));
}

void OpProfile::end() {
  if (!enabled_ || open_.empty()) return;
  Pending& p = pending_[open_.back()];
  open_.pop_back();
  p.stop = event();
  cudaEventRecord(p.stop, stream_);
}

void OpProfile::collect() {
  if (!enabled_ || !open_.empty()) return;  // only between ops
  for (Pending& p : pending_) {
    float ms = 0;
    if (p.stop && cudaEventElapsedTime(&ms, p.start, p.stop) == cudaSuccess) {
      Total& t = totals_[p.key];
      t.ms += ms;
      t.bytes += p.bytes;
      t.flops += p.flops;
      ++t.calls;
    }
    free_.push_back(p.start);
    if (p.stop) free_.push_back(p.stop);
  }
  pending_.clear();
}

std::string OpProfile::report() const {
  std::map<std::string, Total> kinds;
  for (const auto& [key, t] : totals_) {
    Total& k = kinds[key.substr(0, key.find(' '))];
    k.ms += t.ms;
    k.bytes += t.bytes;
    k.flops += t.flops;
    k.calls += t.calls;
  }
  double all = 0;
  for (const auto& [kind, t] : kinds) all += t.ms;
  auto table = [&](const std::map<std::string, Total>& rows, size_t top) {
    std::vector<std::pair<std::string, Total>> v(rows.begin(), rows.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    std::string s =
        fmt::format("{:>7} {:>10} {:>8} {:>9} {:>13}  {}\n", "share", "total ms", "calls", "mean us", "rate", "op");
    for (size_t i = 0; i < v.size() && i < top; ++i) {
      const Total& t = v[i].second;
      auto text = [](double r, const char* unit) {  // 3 figures, plain notation
        return r >= 100 ? fmt::format("{:.0f} {}", r, unit) : r >= 1 ? fmt::format("{:.1f} {}", r, unit)
                                                                     : fmt::format("{:.3f} {}", r, unit);
      };
      const std::string rate = t.ms <= 0      ? "-"
                               : t.flops > 0 ? text(t.flops / t.ms / 1e9, "TFLOP/s")
                               : t.bytes > 0 ? text(t.bytes / t.ms / 1e6, "GB/s")
                                             : "-";
      s += fmt::format("{:>6.1f}% {:>10.2f} {:>8} {:>9.1f} {:>13}  {}\n", 100 * t.ms / all, t.ms, t.calls,
                       1e3 * t.ms / double(t.calls), rate, v[i].first);
    }
    return s;
  };
  return fmt::format("GPU time per op kind (MIXSEG_CUDA_PROFILE=1; {:.1f} ms in all):\n{}top ops by shape:\n{}", all,
                     table(kinds, kinds.size()), table(totals_, 20));
}

}  // namespace mixseg
