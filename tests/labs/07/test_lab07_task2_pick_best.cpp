// Lab 07, task 2: pick_best. The fastest correct, timed median; its speedup over the baseline;
// and "within the noise" when the two p20-p80 ranges overlap.
#include "tests/labs/07/lab07.h"

namespace day18 {
namespace {

using lab07::timed;
using lab07::wrong;
using tuning::Point;

TEST(Lab07_Task2_PickBest, ARealWinOutsideTheNoise) {
  const auto p = tuning::pick_best(
      {timed("64", 110, 112, 115), timed("128", 100, 101, 103), timed("256", 90, 91, 92)}, 1);
  EXPECT_EQ(p.best, 2) << "256 threads has the smallest median";
  EXPECT_NEAR(p.speedup, 101.0 / 91.0, 1e-12) << "speedup = baseline median / best median";
  EXPECT_FALSE(p.within_noise) << "[90, 92] vs [100, 103]: no overlap, a real win";
}

TEST(Lab07_Task2_PickBest, AWinInsideTheNoiseIsFlagged) {
  const auto p = tuning::pick_best({timed("128", 98, 101, 103), timed("256", 95, 99, 104)}, 0);
  EXPECT_EQ(p.best, 1);
  EXPECT_TRUE(p.within_noise) << "99 < 101, but [95, 104] overlaps [98, 103]: noise, not a win";
  EXPECT_TRUE(tuning::pick_best({timed("a", 98, 100, 102), timed("b", 95, 96, 98)}, 0).within_noise)
      << "ranges that touch (98 = 98) overlap";
}

TEST(Lab07_Task2_PickBest, AWrongConfigurationNeverWins) {
  Point w = wrong("512");
  w.median_us = 1;  // whatever a wrong point carries, it was not timed
  const auto p =
      tuning::pick_best({timed("128", 100, 101, 103), w, timed("256", 104, 105, 107)}, 0);
  EXPECT_EQ(p.best, 0);
  EXPECT_DOUBLE_EQ(p.speedup, 1.0) << "the baseline is the best: speedup 1";
  EXPECT_FALSE(p.within_noise) << "no win claimed, so no noise flag";
}

TEST(Lab07_Task2_PickBest, NothingToCompareWith) {
  EXPECT_EQ(tuning::pick_best({wrong("a"), wrong("b")}, 0).best, -1);
  const auto p = tuning::pick_best({wrong("baseline"), timed("b", 9, 10, 11)}, 0);
  EXPECT_EQ(p.best, 1) << "still the fastest correct point";
  EXPECT_DOUBLE_EQ(p.speedup, 0) << "the baseline failed its check: no speedup";
  EXPECT_FALSE(p.within_noise);
}

}  // namespace
}  // namespace day18
