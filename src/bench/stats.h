// Summary statistics of repeated timings: the median and percentiles that
// benchmark rows report (steady state, never "best of").
#pragma once
#include <vector>

namespace mixseg {

// The p-th percentile (p in [0, 100]) with linear interpolation between the
// closest ranks (numpy's default "linear" method). Throws on an empty input.
double percentile(std::vector<double> values, double p);

struct TimingSummary {
  double median, p90, p99, mean;
  int count;
};
TimingSummary summarize(const std::vector<double>& values);

}  // namespace mixseg
