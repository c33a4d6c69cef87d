// Summary statistics of repeated measurements: the one definition of "median", "p20" and "p80"
// that every timing in the course reports (the kernel tour, the benchmarks, the bandwidth probe).
//
// Percentiles interpolate linearly between the two closest ranks (numpy's default, Hyndman and
// Fan's type 7): for n sorted samples x[0] <= ... <= x[n-1], the q-quantile (0 <= q <= 1) sits at
// position h = q * (n - 1), and is
//     x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
// So the median of an even count is the mean of the two middle samples, p0 is the minimum, p100
// the maximum, and one sample is every percentile of itself.
//
//   Stats s = summarize({4, 1, 3, 2});  // median 2.5, p20 1.6, p80 3.4, min 1, max 4, mean 2.5
#pragma once

#include <vector>

namespace day18 {

struct Stats {
  std::vector<double> samples;  // as measured, in the order taken (the timers: milliseconds)
  double min = 0, p20 = 0, median = 0, p80 = 0, max = 0, mean = 0;
};

// The q-quantile (0 <= q <= 1) of `sorted` (ascending, non-empty), by linear interpolation.
double percentile_sorted(const std::vector<double>& sorted, double q);

// All of Stats from `samples`. Throws InvalidArgument when there are none or one is NaN (no
// order, so no median).
Stats summarize(std::vector<double> samples);

}  // namespace day18
