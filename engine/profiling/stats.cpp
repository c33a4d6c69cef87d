#include "engine/profiling/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/core/error.h"

namespace day18 {

double percentile_sorted(const std::vector<double>& sorted, double q) {
  DAY18_REQUIRE(!sorted.empty(), "percentile_sorted: no samples");
  DAY18_REQUIRE(q >= 0.0 && q <= 1.0, "percentile_sorted: q must be in [0, 1], got ", q);
  const double h = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();  // q = 1 (or one sample)
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

Stats summarize(std::vector<double> samples) {
  DAY18_REQUIRE(!samples.empty(), "summarize: no samples (nothing was measured)");
  for (size_t i = 0; i < samples.size(); ++i)
    DAY18_REQUIRE(!std::isnan(samples[i]), "summarize: samples[", i, "] is NaN");
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  Stats s;
  s.min = sorted.front();
  s.max = sorted.back();
  s.p20 = percentile_sorted(sorted, 0.2);
  s.median = percentile_sorted(sorted, 0.5);
  s.p80 = percentile_sorted(sorted, 0.8);
  s.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
  s.samples = std::move(samples);
  return s;
}

}  // namespace day18
