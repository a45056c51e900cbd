// Latency statistics for pkm bench: mean and percentiles of a sample set.
#pragma once

#include <vector>

namespace pkm::cli {

struct LatencySummary {
  long count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

// The q-th percentile (q in [0, 100]) of `sorted` (ascending) by linear interpolation between
// closest ranks, as numpy.percentile's default: rank = q / 100 * (n - 1). 0 for no samples.
double Percentile(const std::vector<double>& sorted, double q);

// Sorts a copy of `samples` and summarises it.
LatencySummary SummarizeLatencies(std::vector<double> samples);

}  // namespace pkm::cli
