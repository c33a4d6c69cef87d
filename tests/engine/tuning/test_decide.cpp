// pick_best (a win only outside the noise), the knee of the batch-size curve and the seed's
// trap detector, on hand-made tables.
#include <gtest/gtest.h>

#include "engine/core/error.h"
#include "engine/tuning/decide.h"
#include "tests/engine/tuning/tuning_fixtures.h"
#include "tests/support/test_support.h"

namespace day18::tuning {
namespace {

using testing::timed;
using testing::wrong;

TEST(PickBest, TheFastestCorrectPointWinsOutsideTheNoise) {
  const std::vector<Point> pts = {timed("64", 110, 112, 115), timed("128", 100, 101, 103),
                                  timed("256", 90, 91, 92)};
  const Pick p = pick_best(pts, 1);
  EXPECT_EQ(p.best, 2);
  EXPECT_NEAR(p.speedup, 101.0 / 91.0, 1e-12);
  EXPECT_FALSE(p.within_noise) << "[90, 92] and [100, 103] do not overlap: a real win";
}

TEST(PickBest, AWinInsideTheNoiseIsFlagged) {
  // 99 < 101 by median, but [95, 104] overlaps the baseline's [98, 103]: noise, not a win.
  const std::vector<Point> pts = {timed("128", 98, 101, 103), timed("256", 95, 99, 104)};
  const Pick p = pick_best(pts, 0);
  EXPECT_EQ(p.best, 1);
  EXPECT_TRUE(p.within_noise);
  EXPECT_NEAR(p.speedup, 101.0 / 99.0, 1e-12);
  // Ranges that merely touch still overlap (the rule is <=).
  EXPECT_TRUE(pick_best({timed("a", 98, 100, 102), timed("b", 95, 96, 98)}, 0).within_noise);
}

TEST(PickBest, AWrongConfigurationNeverWinsEvenIfItLooksFastest) {
  Point fast_but_wrong = wrong("512");
  fast_but_wrong.median_us = 1;  // nonsense timing on a wrong point must not matter
  const std::vector<Point> pts = {timed("128", 100, 101, 103), fast_but_wrong,
                                  timed("256", 104, 105, 106)};
  const Pick p = pick_best(pts, 0);
  EXPECT_EQ(p.best, 0) << "only the baseline is both correct and fastest";
  EXPECT_DOUBLE_EQ(p.speedup, 1.0);
  EXPECT_FALSE(p.within_noise) << "the baseline as the best is no win, and no noise flag";
}

TEST(PickBest, NoCorrectPointOrAWrongBaseline) {
  EXPECT_EQ(pick_best({wrong("a"), wrong("b")}, 0).best, -1);
  const Pick p = pick_best({wrong("baseline"), timed("b", 9, 10, 11)}, 0);
  EXPECT_EQ(p.best, 1);
  EXPECT_DOUBLE_EQ(p.speedup, 0) << "nothing to compare with";
  EXPECT_FALSE(p.within_noise);
  EXPECT_INVALID_NAMING(pick_best({timed("a", 1, 2, 3)}, 3), "baseline 3");
}

TEST(PickBest, DecideGroupWritesTheGroup) {
  Group g;
  g.baseline = 0;
  g.points = {timed("128", 100, 101, 103), timed("256", 80, 81, 82)};
  decide_group(g);
  EXPECT_EQ(g.best, 1);
  EXPECT_NEAR(g.speedup, 101.0 / 81.0, 1e-12);
  EXPECT_FALSE(g.within_noise);
}

TEST(Knee, TheLastBatchWithinTheFactorOfTheSmallest) {
  // Flat while the weights dominate (1 -> 16: 10.0 -> 12.0 ms, within 1.25x), then growing.
  const std::vector<BatchTime> curve = {{1, 10.0}, {4, 10.4}, {16, 12.0}, {64, 18.0}, {256, 60.0}};
  const Knee k = find_knee(curve);
  EXPECT_EQ(k.index, 2);
  EXPECT_DOUBLE_EQ(k.batch, 16);
  EXPECT_DOUBLE_EQ(k.ratio, 1.2);
  EXPECT_FALSE(k.at_end);
  EXPECT_NE(k.why.find("B=16"), std::string::npos) << k.why;
  EXPECT_NE(k.why.find("B=64"), std::string::npos) << k.why;
  // A different factor moves it.
  EXPECT_DOUBLE_EQ(find_knee(curve, 2.0).batch, 64);
  EXPECT_DOUBLE_EQ(find_knee(curve, 1.01).batch, 1);
}

TEST(Knee, StillFlatAtTheEndAndANoisyDip) {
  const Knee k = find_knee({{1, 5.0}, {8, 5.1}, {64, 5.5}});
  EXPECT_EQ(k.index, 2);
  EXPECT_TRUE(k.at_end);
  EXPECT_NE(k.why.find("no knee inside the sweep"), std::string::npos) << k.why;
  // A point that comes back under the line after one above it: the LAST one within counts.
  EXPECT_DOUBLE_EQ(find_knee({{1, 10}, {2, 13}, {4, 12}, {8, 20}}).batch, 4);
  EXPECT_EQ(find_knee({}).index, -1);
}

TEST(Knee, BadInputNamesTheValue) {
  EXPECT_INVALID_NAMING(find_knee({{4, 1.0}, {2, 1.0}}), "batch 2");
  EXPECT_INVALID_NAMING(find_knee({{4, 1.0}, {4, 1.0}}), "ascending");
  EXPECT_INVALID_NAMING(find_knee({{0, 1.0}}), "batch 0");
  EXPECT_INVALID_NAMING(find_knee({{1, 0.0}}), "step_ms 0");
  EXPECT_INVALID_NAMING(find_knee({{1, 1.0}}, 1.0), "factor 1");
}

Point launched(int threads, const std::string& record) {
  Point p = timed(std::to_string(threads), 100, 101, 102, threads);
  p.extra["launched"] = record;
  return p;
}

TEST(SeedTrap, DifferentConfigsWithIdenticalLaunchesAreCaught) {
  // The seed's experiment: "block size" 64..512, the same SDPA kernel launched every time.
  Group seed;
  const std::string same = "sdpa_kernel grid(1024,1,1) block(128,1,1)";
  for (int t : {64, 128, 256, 512}) seed.points.push_back(launched(t, same));
  const ParameterCheck c = check_parameter_reached(seed);
  EXPECT_TRUE(c.verified);
  EXPECT_FALSE(c.reached);
  EXPECT_NE(c.why.find("never reached the kernel"), std::string::npos) << c.why;

  Group real;
  for (int t : {64, 128, 256, 512})
    real.points.push_back(
        launched(t, "pa<" + std::to_string(t) + "> block(" + std::to_string(t) + ",1,1)"));
  EXPECT_TRUE(check_parameter_reached(real).reached);
}

TEST(SeedTrap, ALayoutParameterReachesTheKernelThroughItsArguments) {
  // KV block sizes 8/16/32: the same grid and block, different cache shapes.
  Group g;
  for (int bs : {8, 16, 32}) {
    Point p = launched(128, "pa<128> grid(512,1,1) block(128,1,1)");
    p.config["kv_block_size"] = bs;
    p.extra["arguments"] =
        "key_cache [" + std::to_string(16 * 1024 / bs) + ", 8, " + std::to_string(bs) + ", 128]";
    g.points.push_back(p);
  }
  EXPECT_TRUE(check_parameter_reached(g).reached);
  for (Point& p : g.points) p.extra.erase("arguments");
  EXPECT_FALSE(check_parameter_reached(g).reached) << "without the arguments they look alike";
}

TEST(SeedTrap, WithoutLaunchRecordsNothingIsClaimed) {
  Group g;
  g.points = {timed("a", 1, 2, 3, 64), timed("b", 1, 2, 3, 128)};
  const ParameterCheck c = check_parameter_reached(g);
  EXPECT_FALSE(c.verified);
  EXPECT_TRUE(c.reached);
}

}  // namespace
}  // namespace day18::tuning
