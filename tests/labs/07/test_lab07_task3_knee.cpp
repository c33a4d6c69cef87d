// Lab 07, task 3: find_knee. The largest batch whose decode step still takes within `factor`
// (1.25) of the smallest batch's step: up to there, more sequences ride along on the same weight
// reads; past it the step grows with the batch.
#include "tests/labs/07/lab07.h"

namespace day18 {
namespace {

TEST(Lab07_Task3_Knee, TheLastBatchWithinTheFactor) {
  const std::vector<tuning::BatchTime> curve = {
      {1, 10.0}, {4, 10.4}, {16, 12.0}, {64, 18.0}, {256, 60.0}};
  const tuning::Knee k = tuning::find_knee(curve);
  EXPECT_EQ(k.index, 2);
  EXPECT_DOUBLE_EQ(k.batch, 16) << "12.0 <= 1.25 x 10.0; 18.0 is not";
  EXPECT_DOUBLE_EQ(k.ratio, 1.2);
  EXPECT_FALSE(k.at_end);
  EXPECT_NE(k.why.find("B=16"), std::string::npos) << "why names the knee's batch: " << k.why;
  EXPECT_NE(k.why.find("B=64"), std::string::npos) << "...and the next batch: " << k.why;
}

TEST(Lab07_Task3_Knee, TheFactorMovesIt) {
  const std::vector<tuning::BatchTime> curve = {
      {1, 10.0}, {4, 10.4}, {16, 12.0}, {64, 18.0}, {256, 60.0}};
  EXPECT_DOUBLE_EQ(tuning::find_knee(curve, 2.0).batch, 64);
  EXPECT_DOUBLE_EQ(tuning::find_knee(curve, 1.01).batch, 1) << "only the smallest batch is within";
}

TEST(Lab07_Task3_Knee, StillFlatAtTheEnd) {
  const tuning::Knee k = tuning::find_knee({{1, 5.0}, {8, 5.1}, {64, 5.5}});
  EXPECT_EQ(k.index, 2);
  EXPECT_TRUE(k.at_end) << "the last batch is still within the factor";
  EXPECT_NE(k.why.find("no knee inside the sweep"), std::string::npos) << k.why;
}

TEST(Lab07_Task3_Knee, TheLastPointWithinCountsNotTheFirstOneAbove) {
  // A noisy bump at B=2 (13 > 12.5) and back under the line at B=4.
  EXPECT_DOUBLE_EQ(tuning::find_knee({{1, 10}, {2, 13}, {4, 12}, {8, 20}}).batch, 4);
}

TEST(Lab07_Task3_Knee, GrowthIsMeasuredFromTheSmallestBatchNotStepByStep) {
  // Each step is within 1.25x of the one before, but B=4 already takes 1.4x the B=1 step.
  const tuning::Knee k = tuning::find_knee({{1, 10.0}, {2, 12.0}, {4, 14.0}, {8, 16.5}});
  EXPECT_DOUBLE_EQ(k.batch, 2)
      << "compare each step with the SMALLEST batch's, not its neighbour's";
}

}  // namespace
}  // namespace day18
