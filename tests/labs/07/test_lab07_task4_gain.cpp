// Lab 07, task 4: the expected-gain arithmetic of `day18 report` (engine/report/gain.h), on
// hand-computed cases: the roofline rule time x (1 - now / target), the launch gaps, a measured
// speedup, and the order of the ranked list (the largest saving first, ties kept in order).
// CPU only. The report itself, built from the H200's recorded JSON with these functions, is in
// test_lab07_task4_report.cpp.
#include <cmath>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/report/gain.h"
#include "tests/labs/07/lab07.h"

namespace day18 {
namespace {

using report::Gain;

// The message of the InvalidArgument that f throws. "Not implemented yet" (the stub) is not
// caught: the test then fails with the stub's own message.
template <typename F>
std::string invalid_argument_message(F f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  } catch (const LabNotImplemented&) {
    throw;
  } catch (const std::exception& e) {
    return std::string("(threw another exception, not day18::InvalidArgument: ") + e.what() + ")";
  }
  return "(nothing thrown)";
}

// The message names the argument (and, where given, the value it got).
::testing::AssertionResult names(const std::string& message, const std::string& argument,
                                 const std::string& value = "") {
  if (message.find(argument) != std::string::npos &&
      (value.empty() || message.find(value) != std::string::npos))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "the InvalidArgument should name '" << argument << "'"
         << (value.empty() ? "" : " and the value " + value) << "; its message: \"" << message
         << "\" (the require_* helpers of gain.cpp write such messages)";
}

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Lab07_Task4_ExpectedGain, TheDocsKernelAt57PctOfPAimingAt90PctSaves44usOfA1650usStep) {
  // docs/report.md: 120 us of a 1650 us step at 57% of P; at 90% the same bytes take
  // 120 x 57 / 90 = 76 us, so 120 x (1 - 57 / 90) = 44 us are saved, 2.67% of the step.
  const Gain g = report::expected_gain(120, 57, 90, 1650);
  EXPECT_DOUBLE_EQ(g.time_us, 120) << "time_us is the kernel's time per step, as given";
  EXPECT_NEAR(g.saved_us, 44.0, 1e-9) << "saved = time x (1 - now / target) = 120 x (1 - 57/90)";
  EXPECT_NEAR(g.pct_of_step, 44.0 / 1650 * 100, 1e-9) << "pct_of_step = saved / step x 100";
}

TEST(Lab07_Task4_ExpectedGain, TheSavingScalesWithTheKernelsTimeNotWithItsDistanceFromTheRoof) {
  // The H200's gate_up_proj GEMM: 321 us per step at 82.6% of P. Close to its roof, but so long
  // that it saves 321 x (1 - 82.6/90) = 26.4 us (the report's 26.2 us: from the unrounded 320.96
  // us and 82.64%), six times what a 5 us kernel at 10% of P saves (5 x (1 - 10/90) = 4.44 us).
  EXPECT_NEAR(report::expected_gain(321, 82.6, 90, 1642.5).saved_us, 321 * (1 - 82.6 / 90), 1e-9);
  EXPECT_NEAR(report::expected_gain(5, 10, 90, 1642.5).saved_us, 5 * (1 - 10.0 / 90), 1e-9);
  EXPECT_DOUBLE_EQ(report::expected_gain(10, 0, 90, 100).saved_us, 10)
      << "at 0% of its roof a kernel would save all of its time";
  EXPECT_DOUBLE_EQ(report::expected_gain(0, 30, 90, 100).saved_us, 0)
      << "a kernel that takes no time saves none";
}

TEST(Lab07_Task4_ExpectedGain, AtOrAboveTheTargetItPromisesNothingNeverANegativeGain) {
  const Gain at = report::expected_gain(100, 90, 90, 1000);
  EXPECT_EQ(at.saved_us, 0) << "now = target: nothing to gain";
  EXPECT_EQ(at.pct_of_step, 0);
  EXPECT_DOUBLE_EQ(at.time_us, 100) << "time_us is still the kernel's time";
  // The H200's lm_head GEMM: 128.4 us at 98.3% of P, above the 90% target: 1 - 98.3/90 < 0.
  const Gain above = report::expected_gain(128.4, 98.3, 90, 1642.5);
  EXPECT_EQ(above.saved_us, 0) << "98.3% of P against a 90% target: 0, not "
                               << 128.4 * (1 - 98.3 / 90) << " us (a negative gain)";
  EXPECT_EQ(above.pct_of_step, 0);
}

TEST(Lab07_Task4_ExpectedGain, BadInputsThrowInvalidArgumentNamingTheArgument) {
  using report::expected_gain;
  EXPECT_TRUE(names(invalid_argument_message([] { expected_gain(-1, 50, 90, 100); }),
                    "time_us_per_step", "-1"));
  EXPECT_TRUE(
      names(invalid_argument_message([] { expected_gain(1, -5, 90, 100); }), "pct_now", "-5"));
  EXPECT_TRUE(
      names(invalid_argument_message([] { expected_gain(1, 5, 0, 100); }), "pct_target", "0"));
  EXPECT_TRUE(
      names(invalid_argument_message([] { expected_gain(1, 5, 120, 100); }), "pct_target", "120"))
      << "a target above 100% of the roof is no target";
  EXPECT_TRUE(names(invalid_argument_message([] { expected_gain(1, 5, 90, 0); }), "step_us", "0"))
      << "a step of 0 us: the % of the step would divide by 0";
  EXPECT_TRUE(
      names(invalid_argument_message([] { expected_gain(1, std::nan(""), 90, 10); }), "pct_now"))
      << "NaN compares false with everything: it must be refused, not computed with";
  EXPECT_TRUE(
      names(invalid_argument_message([] { expected_gain(kInf, 5, 90, 10); }), "time_us_per_step"));
  EXPECT_TRUE(names(invalid_argument_message([] { expected_gain(1, 5, 90, kInf); }), "step_us"));
}

TEST(Lab07_Task4_LaunchAndSpeedupGain, RemovingTheLaunchGapsSavesLaunchesTimesTheGap) {
  // 16 launches a step (one per layer of llama-1b), 1.8 us of launch gap before each.
  const Gain l = report::launch_gain(16, 1.8, 1650);
  EXPECT_NEAR(l.saved_us, 28.8, 1e-9) << "launches x gap = 16 x 1.8";
  EXPECT_NEAR(l.time_us, 28.8, 1e-9) << "the time at stake is the gaps themselves";
  EXPECT_NEAR(l.pct_of_step, 28.8 / 1650 * 100, 1e-9);
  EXPECT_EQ(report::launch_gain(0, 1.8, 1650).saved_us, 0);
  EXPECT_TRUE(
      names(invalid_argument_message([] { report::launch_gain(-1, 1, 10); }), "launches_per_step"));
  EXPECT_TRUE(names(invalid_argument_message([] { report::launch_gain(1, -2, 10); }),
                    "gap_us_per_launch", "-2"));
  EXPECT_TRUE(
      names(invalid_argument_message([] { report::launch_gain(1, 1, 0); }), "step_us", "0"));
}

TEST(Lab07_Task4_LaunchAndSpeedupGain, AMeasuredSpeedupSavesTimeTimesOneMinusItsInverse) {
  // A configuration measured 1.30x faster, on a kernel of 120 us per step: 120 / 1.3 = 92.3 us.
  const Gain s = report::speedup_gain(120, 1.30, 1650);
  EXPECT_NEAR(s.saved_us, 120 * (1 - 1 / 1.30), 1e-9) << "time x (1 - 1 / speedup) = 27.7 us";
  EXPECT_DOUBLE_EQ(s.time_us, 120);
  EXPECT_NEAR(s.pct_of_step, 120 * (1 - 1 / 1.30) / 1650 * 100, 1e-9);
  EXPECT_EQ(report::speedup_gain(120, 1.0, 1650).saved_us, 0) << "1.00x: nothing";
  EXPECT_EQ(report::speedup_gain(120, 0.8, 1650).saved_us, 0)
      << "a slower configuration is not applied: 0, never a negative gain";
  EXPECT_TRUE(
      names(invalid_argument_message([] { report::speedup_gain(120, 0, 1650); }), "speedup", "0"));
  EXPECT_TRUE(names(invalid_argument_message([] { report::speedup_gain(-3, 1.2, 1650); }),
                    "time_us_per_step", "-3"));
  EXPECT_TRUE(
      names(invalid_argument_message([] { report::speedup_gain(120, 1.2, -1); }), "step_us", "-1"));
}

Gain saving(double us) {
  Gain g;
  g.time_us = us;
  g.saved_us = us;
  return g;
}

std::string order_str(const std::vector<size_t>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "}";
}

TEST(Lab07_Task4_RankByGain, TheLargestSavingFirst) {
  const Gain g = report::expected_gain(120, 57, 90, 1650);  // 44.0 us
  const Gain l = report::launch_gain(16, 1.8, 1650);        // 28.8 us
  const Gain s = report::speedup_gain(120, 1.30, 1650);     // 27.7 us
  const std::vector<size_t> order = report::rank_by_gain({l, s, g});
  EXPECT_EQ(order, (std::vector<size_t>{2, 0, 1}))
      << "got " << order_str(order) << ": g (44.0 us) first, then l (28.8), then s (27.7)";
  EXPECT_TRUE(report::rank_by_gain({}).empty());
  EXPECT_EQ(report::rank_by_gain({saving(3)}), (std::vector<size_t>{0}));
}

TEST(Lab07_Task4_RankByGain, NotByTheLowestPctOfRoofNorByTheLongestKernel) {
  // The trap: "the kernel furthest from its roof" and "the kernel that takes the most time" both
  // sound like the one to fix first. Neither is; the saving per step is.
  const double step = 1642.5;
  const Gain gemm = report::expected_gain(321, 82.6, 90, step);  // long, near its roof: 26.4 us
  const Gain tiny = report::expected_gain(5, 10, 90, step);      // at 10% of P, 5 us: 4.44 us
  const Gain gaps = report::launch_gain(16, 1.84, step);         // 16 gaps of 1.84 us: 29.4 us
  const std::vector<size_t> order = report::rank_by_gain({gemm, tiny, gaps});
  EXPECT_EQ(order, (std::vector<size_t>{2, 0, 1}))
      << "got " << order_str(order)
      << ": the launch gaps save 29.4 us, the 321 us GEMM at 82.6% of P 26.4 us, the 5 us kernel "
         "at 10% of P only 4.44 us. Rank by saved_us, not by time_us nor by how far from the roof";
}

TEST(Lab07_Task4_RankByGain, EqualSavingsKeepTheirOrder) {
  // The H200 report has nine rows of exactly 16 x 1.84 us: their order must be the analysis's.
  EXPECT_EQ(report::rank_by_gain({saving(10), saving(20), saving(10), saving(20), saving(5)}),
            (std::vector<size_t>{1, 3, 0, 2, 4}));
  // Many ties (std::sort reorders equal elements once there are more than a handful).
  std::vector<Gain> many;
  for (int i = 0; i < 60; ++i) many.push_back(saving(i % 3));
  const std::vector<size_t> order = report::rank_by_gain(many);
  ASSERT_EQ(order.size(), many.size()) << "every index once";
  int bad = 0;
  std::string first;
  for (size_t k = 1; k < order.size(); ++k) {
    const double a = many[order[k - 1]].saved_us, b = many[order[k]].saved_us;
    if (a < b || (a == b && order[k - 1] > order[k])) {
      if (bad++ == 0)
        first = "position " + std::to_string(k) + ": index " + std::to_string(order[k - 1]) +
                " (saves " + std::to_string(a) + ") before index " + std::to_string(order[k]) +
                " (saves " + std::to_string(b) + ")";
    }
  }
  EXPECT_EQ(bad, 0) << bad << " pairs out of order, the first at " << first
                    << " (a stable sort keeps equal savings in their order)";
}

}  // namespace
}  // namespace day18
