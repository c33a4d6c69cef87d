// The timing statistics (engine/profiling/stats.h) on hand-computed cases, and the host-side
// contract of the timers (engine/profiling/timing.h) that needs no GPU.
//
// Percentiles interpolate linearly: the q-quantile of n sorted samples sits at h = q * (n - 1).
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <vector>

#include "engine/profiling/stats.h"
#include "engine/profiling/timing.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

TEST(Summarize, OddCountMedianIsTheMiddleSample) {
  // Sorted 1 3 5. p20: h = 0.4 -> 1 + 0.4 * (3 - 1) = 1.8; p80: h = 1.6 -> 3 + 0.6 * 2 = 4.2.
  const Stats s = summarize({5, 1, 3});
  EXPECT_DOUBLE_EQ(s.median, 3.0);
  EXPECT_DOUBLE_EQ(s.p20, 1.8);
  EXPECT_DOUBLE_EQ(s.p80, 4.2);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 5.0);
  EXPECT_DOUBLE_EQ(s.mean, 3.0);
}

TEST(Summarize, EvenCountMedianIsTheMeanOfTheTwoMiddleSamples) {
  // Sorted 1 2 3 4. median: h = 1.5 -> 2.5; p20: h = 0.6 -> 1.6; p80: h = 2.4 -> 3.4.
  const Stats s = summarize({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.p20, 1.6);
  EXPECT_DOUBLE_EQ(s.p80, 3.4);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 4.0);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
}

TEST(Summarize, TenSamplesInterpolateBetweenRanks) {
  // 1..10: median h = 4.5 -> 5.5; p20 h = 1.8 -> 2.8; p80 h = 7.2 -> 8.2.
  const Stats s = summarize({10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  EXPECT_DOUBLE_EQ(s.median, 5.5);
  EXPECT_NEAR(s.p20, 2.8, 1e-12);
  EXPECT_NEAR(s.p80, 8.2, 1e-12);
  EXPECT_DOUBLE_EQ(s.mean, 5.5);
}

TEST(Summarize, OneSampleIsEveryStatisticOfItself) {
  const Stats s = summarize({7.25});
  for (double v : {s.min, s.p20, s.median, s.p80, s.max, s.mean}) EXPECT_DOUBLE_EQ(v, 7.25);
  ASSERT_EQ(s.samples.size(), 1u);
}

TEST(Summarize, KeepsTheSamplesInTheOrderTaken) {
  const Stats s = summarize({3, 1, 2});
  EXPECT_EQ(s.samples, (std::vector<double>{3, 1, 2}));
}

TEST(Summarize, EqualSamplesGiveThatValue) {
  const Stats s = summarize({2, 2, 2, 2});
  EXPECT_DOUBLE_EQ(s.p20, 2.0);
  EXPECT_DOUBLE_EQ(s.p80, 2.0);
}

TEST(Summarize, NoSamplesIsAnError) {
  EXPECT_THROW_WITH(summarize({}), InvalidArgument, "summarize: no samples");
}

TEST(Summarize, NanSampleIsAnErrorNamingItsIndex) {
  EXPECT_THROW_WITH(summarize({1, std::numeric_limits<double>::quiet_NaN(), 3}), InvalidArgument,
                    "samples[1] is NaN");
}

TEST(PercentileSorted, EndsAreMinAndMax) {
  const std::vector<double> v{1, 2, 4, 8};
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 1.0), 8.0);
  // h = 0.25 * 3 = 0.75 -> 1 + 0.75 * (2 - 1).
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 0.25), 1.75);
}

TEST(PercentileSorted, RejectsQOutsideZeroOne) {
  EXPECT_THROW_WITH(percentile_sorted({1, 2}, 1.5), InvalidArgument, "q must be in [0, 1]", "1.5");
  EXPECT_THROW_WITH(percentile_sorted({1, 2}, -0.1), InvalidArgument, "q must be in [0, 1]");
  EXPECT_THROW_WITH(percentile_sorted({}, 0.5), InvalidArgument, "no samples");
}

TEST(TimeCpu, RunsWarmupThenRepeatsAndTimesOnlyTheRepeats) {
  int calls = 0;
  const Stats s = time_cpu([&] { ++calls; }, /*warmup=*/2, /*repeats=*/5);
  EXPECT_EQ(calls, 7);
  ASSERT_EQ(s.samples.size(), 5u);
  for (double ms : s.samples) EXPECT_GE(ms, 0.0);
  EXPECT_LE(s.min, s.p20);
  EXPECT_LE(s.p20, s.median);
  EXPECT_LE(s.median, s.p80);
  EXPECT_LE(s.p80, s.max);
}

TEST(TimeCpu, MeasuresHostTimeInMilliseconds) {
  // A busy loop of at least 2 ms on the steady clock: each sample is >= 2 ms.
  const Stats s = time_cpu(
      [] {
        const auto t0 = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2)) {
        }
      },
      /*warmup=*/0, /*repeats=*/3);
  EXPECT_GE(s.min, 2.0);
  EXPECT_LT(s.median, 2000.0);
}

TEST(TimeCpu, RejectsBadCounts) {
  EXPECT_THROW_WITH(time_cpu([] {}, 0, 0), InvalidArgument, "time_cpu", "repeats must be > 0",
                    "got 0");
  EXPECT_THROW_WITH(time_cpu([] {}, -1, 3), InvalidArgument, "warmup must be >= 0", "got -1");
}

TEST(TimeGpu, RejectsBadCountsBeforeTouchingTheGpu) {
  TimingOptions o;
  o.repeats = 0;
  EXPECT_THROW_WITH(time_gpu([](cudaStream_t) {}, o), InvalidArgument, "time_gpu",
                    "repeats must be > 0", "got 0");
  o.repeats = 3;
  o.warmup = -2;
  EXPECT_THROW_WITH(time_gpu([](cudaStream_t) {}, o), InvalidArgument, "warmup must be >= 0");
}

}  // namespace
}  // namespace day18
