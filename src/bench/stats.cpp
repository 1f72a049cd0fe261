// Percentiles and timing summaries (see stats.h).
#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace mixseg {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) fail("percentile of no values");
  if (!(p >= 0 && p <= 100)) fail("percentile {} is outside [0, 100]", p);
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(rank)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - double(lo));
}

TimingSummary summarize(const std::vector<double>& v) {
  if (v.empty()) fail("no timings to summarize");
  return {percentile(v, 50), percentile(v, 90), percentile(v, 99),
          std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()), int(v.size())};
}

}  // namespace mixseg
