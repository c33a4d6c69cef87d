// Lab 04, task 6 (CPU): half_bandwidth_size, where a copy's bandwidth first reaches half of its
// peak in a size sweep. Hand-computed cases, then the latency + bandwidth model a copy follows.
#include <cmath>

#include "tests/labs/04/lab04.h"

namespace day18 {
namespace {

TEST(Lab04_Task6_HalfSize, InterpolatesOnLogSizeNotOnSize) {
  // Peak 50, half 25: between (1 KiB, 10) and (4 KiB, 30), 3/4 of the way from log2 10 to 12,
  // so 2^11.5 = 2896.3 bytes. Linear in size would say 3328, a point the sweep's geometric
  // steps do not treat as "3/4 of the way".
  const HalfBandwidth h = half_bandwidth_size({{1024, 10}, {4096, 30}, {16384, 50}});
  EXPECT_DOUBLE_EQ(h.peak_gbps, 50);
  EXPECT_NEAR(h.bytes, std::pow(2.0, 11.5), 1e-6);
  EXPECT_FALSE(h.at_first_point);
}

TEST(Lab04_Task6_HalfSize, APointExactlyAtHalfIsTheAnswer) {
  const HalfBandwidth h = half_bandwidth_size({{4096, 1}, {8192, 2}, {16384, 4}, {32768, 8}});
  EXPECT_NEAR(h.bytes, 16384, 1e-6);
}

TEST(Lab04_Task6_HalfSize, PointsInAnyOrder) {
  const HalfBandwidth h = half_bandwidth_size({{32768, 8}, {4096, 1}, {16384, 4}, {8192, 2}});
  EXPECT_NEAR(h.bytes, 16384, 1e-6) << "sort by size first";
}

TEST(Lab04_Task6_HalfSize, ThePeakIsTheHighestPointNotTheLast) {
  // The last size is slower (past a cache, or noise): the peak is 100 at 64 KiB, half is 50,
  // reached between 4 KiB (20) and 16 KiB (80), half way in log size: 8 KiB.
  const HalfBandwidth h =
      half_bandwidth_size({{4096, 20}, {16384, 80}, {65536, 100}, {262144, 60}});
  EXPECT_DOUBLE_EQ(h.peak_gbps, 100);
  EXPECT_NEAR(h.bytes, 8192, 1e-6);
}

TEST(Lab04_Task6_HalfSize, TheFirstPointAlreadyAboveHalfIsAnUpperBound) {
  const HalfBandwidth h = half_bandwidth_size({{4096, 60}, {8192, 100}});
  EXPECT_TRUE(h.at_first_point) << "the sweep starts too large to see the half point";
  EXPECT_EQ(h.bytes, 4096);
}

TEST(Lab04_Task6_HalfSize, ALatencyPlusBandwidthCopyIsAtHalfAtLatencyTimesBandwidth) {
  // t(b) = 5 us + b / (50 GB/s): bandwidth b / t(b) reaches half of 50 GB/s where
  // b = 5 us x 50 GB/s = 250 KB (the bytes "in flight" during one latency). A sweep from
  // 4 KiB to 1 GiB in x2 steps, whose peak (1 GiB) is 49.99 GB/s, finds it within 3%.
  std::vector<SweepPoint> pts;
  for (double b = 4096; b <= double(1 << 30); b *= 2)
    pts.push_back({b, b / (5e-6 + b / 50e9) / 1e9});
  const HalfBandwidth h = half_bandwidth_size(pts);
  EXPECT_NEAR(h.peak_gbps, 50, 0.05);
  EXPECT_NEAR(h.bytes, 250e3, 0.03 * 250e3);
}

}  // namespace
}  // namespace day18
