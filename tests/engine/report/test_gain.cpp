// The expected-gain arithmetic of the ranked optimization list (engine/report/gain.h), on
// hand-computed cases: the lead turns expected_gain() into a lab 07 task, so each rule has its own
// test and each bad argument its message.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/report/gain.h"

namespace day18::report {
namespace {

std::string message_of(void (*f)()) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "(no InvalidArgument thrown)";
}

TEST(ExpectedGain, AKernelAt57PctOfPThatReaches90PctSavesThatShareOfItsTime) {
  // 120 us at 57% of P; at 90% it takes 120 x 57 / 90 = 76 us: 44 us saved of a 1650 us step.
  const Gain g = expected_gain(120, 57, 90, 1650);
  EXPECT_DOUBLE_EQ(g.time_us, 120);
  EXPECT_NEAR(g.saved_us, 44.0, 1e-12);
  EXPECT_NEAR(g.pct_of_step, 44.0 / 1650 * 100, 1e-12);
}

TEST(ExpectedGain, AKernelAtZeroPctOfItsRoofWouldSaveAllOfItsTime) {
  const Gain g = expected_gain(10, 0, 90, 100);
  EXPECT_DOUBLE_EQ(g.saved_us, 10);
  EXPECT_DOUBLE_EQ(g.pct_of_step, 10);
}

TEST(ExpectedGain, AtOrAboveTheTargetItPromisesNothingNeverANegativeGain) {
  EXPECT_EQ(expected_gain(100, 90, 90, 1000).saved_us, 0);
  EXPECT_EQ(expected_gain(100, 102.5, 90, 1000).saved_us, 0);  // an lm_head GEMM at 103% of P
  EXPECT_EQ(expected_gain(100, 102.5, 90, 1000).pct_of_step, 0);
}

TEST(ExpectedGain, AKernelWithNoTimeSavesNothing) {
  EXPECT_EQ(expected_gain(0, 10, 90, 1000).saved_us, 0);
}

TEST(ExpectedGain, BadArgumentsNameTheArgumentAndTheValue) {
  EXPECT_NE(message_of([] {
              expected_gain(-1, 50, 90, 100);
            }).find("time_us_per_step must be >= 0, got -1"),
            std::string::npos);
  EXPECT_NE(message_of([] { expected_gain(1, -5, 90, 100); }).find("pct_now must be >= 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { expected_gain(1, 5, 0, 100); }).find("pct_target must be > 0, got 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { expected_gain(1, 5, 120, 100); }).find("pct_target must be <= 100"),
            std::string::npos);
  EXPECT_NE(message_of([] { expected_gain(1, 5, 90, 0); }).find("step_us must be > 0, got 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { expected_gain(std::nan(""), 5, 90, 10); }).find("finite"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              expected_gain(1, std::numeric_limits<double>::infinity(), 90, 10);
            }).find("pct_now must be a finite number"),
            std::string::npos);
}

TEST(LaunchGain, RemovingEachLaunchGapSavesLaunchesTimesTheGap) {
  const Gain g = launch_gain(16, 1.8, 1650);
  EXPECT_NEAR(g.saved_us, 28.8, 1e-12);
  EXPECT_NEAR(g.pct_of_step, 28.8 / 1650 * 100, 1e-12);
  EXPECT_EQ(launch_gain(0, 1.8, 1650).saved_us, 0);
}

TEST(LaunchGain, BadArgumentsNameTheArgument) {
  EXPECT_NE(message_of([] { launch_gain(-1, 1, 10); }).find("launches_per_step must be >= 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { launch_gain(1, -1, 10); }).find("gap_us_per_launch must be >= 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { launch_gain(1, 1, -10); }).find("step_us must be > 0"),
            std::string::npos);
}

TEST(SpeedupGain, AMeasuredSpeedupSavesTimeTimesOneMinusItsInverse) {
  // 1.25x faster: the kernel takes 1 / 1.25 = 80% of its time, 20% saved.
  const Gain g = speedup_gain(200, 1.25, 1000);
  EXPECT_NEAR(g.saved_us, 40, 1e-12);
  EXPECT_NEAR(g.pct_of_step, 4, 1e-12);
  EXPECT_EQ(speedup_gain(200, 1.0, 1000).saved_us, 0);
  EXPECT_EQ(speedup_gain(200, 0.8, 1000).saved_us, 0);  // slower: no gain, never negative
  EXPECT_NE(message_of([] { speedup_gain(1, 0, 10); }).find("speedup must be > 0, got 0"),
            std::string::npos);
}

TEST(RankByGain, TheLargestSavingFirstAndEqualSavingsKeepTheirOrder) {
  auto saving = [](double us) { return Gain{us, us, 0}; };
  EXPECT_EQ(rank_by_gain({saving(10), saving(20), saving(10), saving(30)}),
            (std::vector<size_t>{3, 1, 0, 2}));
  EXPECT_TRUE(rank_by_gain({}).empty());
  // The header's example: g 44.0, l 28.8, s 27.7 us, given as {l, s, g}.
  EXPECT_EQ(rank_by_gain({launch_gain(16, 1.8, 1650), speedup_gain(120, 1.30, 1650),
                          expected_gain(120, 57, 90, 1650)}),
            (std::vector<size_t>{2, 0, 1}));
}

TEST(GainTarget, MemoryBoundAndUncoalescedAimAt90PctOfPComputeBoundAt70PctOfThePeak) {
  EXPECT_EQ(gain_target("MEMORY BOUND", false).pct, 90);
  EXPECT_EQ(gain_target("UNCOALESCED", false).pct, 90);
  EXPECT_EQ(gain_target("COMPUTE BOUND", true).pct, 70);
  EXPECT_NE(gain_target("COMPUTE BOUND", true).rule.find("tensor"), std::string::npos);
  EXPECT_NE(gain_target("COMPUTE BOUND", false).rule.find("FMA"), std::string::npos);
}

TEST(GainTarget, LatencyBoundNearTheRoofAndUnknownHaveNoRoofTarget) {
  EXPECT_EQ(gain_target("LATENCY BOUND", false).pct, 0);
  EXPECT_NE(gain_target("LATENCY BOUND", false).rule.find("launch gaps"), std::string::npos);
  EXPECT_EQ(gain_target("NEAR THE ROOF", false).pct, 0);
  EXPECT_EQ(gain_target("UNKNOWN", false).pct, 0);
}

}  // namespace
}  // namespace day18::report
