// Lab 06, task 2: roofline_point(flops, bytes, seconds, peak_flops, peak_bw): the arithmetic
// intensity, the achieved rates, the ridge, what the roof allows at that intensity, and the
// kernel's % of it. Hand-computed numbers; the roof is an H200-like one (P = 4 TB/s measured,
// 800 TFLOP/s on the tensor cores).
#include <cmath>

#include "tests/labs/06/lab06.h"

namespace day18 {
namespace {

constexpr double kP = 4e12, kPeak = 800e12;  // ridge: 200 FLOP/byte

TEST(Lab06_Task2_Roofline, IntensityIsFlopsPerByte) {
  const RooflinePoint p = roofline_point(8e9, 1e9, 1e-3, kPeak, kP);
  ASSERT_TRUE(p.valid);
  EXPECT_DOUBLE_EQ(p.intensity, 8);  // FLOP per byte, not byte per FLOP
  EXPECT_DOUBLE_EQ(p.achieved_flops, 8e12);
  EXPECT_DOUBLE_EQ(p.achieved_bw, 1e12);
}

TEST(Lab06_Task2_Roofline, LeftOfTheRidgeTheMemoryRoofApplies) {
  // A decode GEMM: 8 FLOP/byte. The roof there is 8 x 4 TB/s = 32 TFLOP/s; it did 8: 25%.
  const RooflinePoint p = roofline_point(8e9, 1e9, 1e-3, kPeak, kP);
  EXPECT_DOUBLE_EQ(p.ridge, 200);
  EXPECT_TRUE(p.memory_side);
  EXPECT_DOUBLE_EQ(p.attainable, 32e12);
  EXPECT_DOUBLE_EQ(p.pct_of_roof, 25) << "% of the roof AT ITS INTENSITY (32 TFLOP/s), not of the "
                                         "800 TFLOP/s peak";
}

TEST(Lab06_Task2_Roofline, RightOfTheRidgeTheComputeRoofApplies) {
  // A large GEMM: 1000 FLOP/byte, 400 TFLOP/s achieved of the 800 the roof allows.
  const RooflinePoint p = roofline_point(400e9, 0.4e9, 1e-3, kPeak, kP);
  EXPECT_FALSE(p.memory_side);
  EXPECT_DOUBLE_EQ(p.attainable, kPeak);
  EXPECT_DOUBLE_EQ(p.pct_of_roof, 50);
}

TEST(Lab06_Task2_Roofline, AKernelWithoutFlopsIsMeasuredAgainstP) {
  // A copy: 2 GB in 1 ms = 2 TB/s of P = 4 TB/s.
  const RooflinePoint p = roofline_point(0, 2e9, 1e-3, kPeak, kP);
  ASSERT_TRUE(p.valid);
  EXPECT_DOUBLE_EQ(p.intensity, 0);
  EXPECT_DOUBLE_EQ(p.pct_of_roof, 50);
}

TEST(Lab06_Task2_Roofline, WithoutARoofThereIsNoPercentage) {
  const RooflinePoint p = roofline_point(8e9, 1e9, 1e-3, 0, 0);
  ASSERT_TRUE(p.valid);
  EXPECT_DOUBLE_EQ(p.intensity, 8);
  EXPECT_EQ(p.ridge, 0);
  EXPECT_EQ(p.attainable, 0);
  EXPECT_EQ(p.pct_of_roof, 0);
  EXPECT_FALSE(roofline_point(8e9, 0, 1e-3, kPeak, kP).valid) << "no bytes: no point";
}

TEST(Lab06_Task2_Roofline, TheCalibrationKernelsLandWhereTheyWereBuiltTo) {
  // From the hand-made fixture's counters: the stream copy sits at ~0 FLOP/byte near P, the FMA
  // loop far right of the ridge near the FMA roof (65 TFLOP/s of ~67).
  const ncu::Table t =
      ncu::read_csv(lab06::source("reference/ncu/fixtures/calibration_handmade.csv"));
  const KernelEvidence copy = evidence_from_ncu(t, 0, lab06::reference_metric);
  const KernelEvidence fma = evidence_from_ncu(t, 2, lab06::reference_metric);
  const RooflinePoint pc = roofline_point(*copy.flops, *copy.bytes, *copy.duration_s, kPeak, kP);
  const RooflinePoint pf = roofline_point(*fma.flops, *fma.bytes, *fma.duration_s, 67e12, kP);
  EXPECT_EQ(pc.intensity, 0);
  EXPECT_NEAR(pc.pct_of_roof, 100, 1) << "4.0 TB/s of P = 4 TB/s";
  EXPECT_FALSE(pf.memory_side);
  EXPECT_NEAR(pf.pct_of_roof, 96, 1) << "64.5 of 67 TFLOP/s";
}

}  // namespace
}  // namespace day18
