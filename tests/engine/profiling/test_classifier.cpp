// The bottleneck classifier: the seed's example (the regression that started it: MEMORY BOUND,
// not the COMPUTE BOUND the seed's own tree prints), the seed's tree kept as the trap, every branch
// of the decision procedure on hand-written evidence, the roofline arithmetic, and the thresholds
// table.
#include <gtest/gtest.h>

#include "engine/profiling/classifier.h"

namespace day18 {
namespace {

// Evidence with just the speed of light.
KernelEvidence sol(double sm, double mem) {
  KernelEvidence k;
  k.name = "k";
  k.sm_pct = sm;
  k.mem_pct = mem;
  return k;
}

TEST(SeedExample, IsMemoryBound) {
  const Classification c = classify(evidence_from_seed(kSeedExample));
  EXPECT_EQ(c.decision.bound, Bound::memory);
  EXPECT_EQ(c.verdict, "MEMORY BOUND");
  EXPECT_EQ(seed_classify_fixed(kSeedExample), SeedVerdict::memory_bound);
}

TEST(SeedExample, TheSeedsOwnTreeSaysComputeBound) {
  // The trap, kept: SM utilization 45.2 < 50 is tested first and called compute-bound, although
  // memory is at 88.5% of its peak.
  EXPECT_EQ(seed_classify(kSeedExample), SeedVerdict::compute_bound);
  EXPECT_STREQ(seed_verdict_name(seed_classify(kSeedExample)), "COMPUTE BOUND");
}

TEST(SeedTree, FaithfulToTheSeedsOrderAndThresholds) {
  EXPECT_EQ(seed_classify({10, 10, 10, 10}), SeedVerdict::compute_bound);  // sm < 50 wins all
  EXPECT_EQ(seed_classify({50, 81, 10, 10}), SeedVerdict::memory_bound);
  EXPECT_EQ(seed_classify({50, 80, 29, 10}), SeedVerdict::occupancy_limited);
  EXPECT_EQ(seed_classify({50, 80, 30, 59}), SeedVerdict::uncoalesced);
  EXPECT_EQ(seed_classify({50, 80, 30, 60}), SeedVerdict::well_optimized);
}

TEST(SeedTreeFixed, LowSmAndLowMemoryIsLatencyNotCompute) {
  EXPECT_EQ(seed_classify_fixed({20, 25, 62, 90}), SeedVerdict::latency_bound);
  EXPECT_EQ(seed_classify_fixed({20, 25, 12, 90}), SeedVerdict::occupancy_limited);
  EXPECT_EQ(seed_classify_fixed({85, 30, 62, 90}), SeedVerdict::compute_bound);
  EXPECT_EQ(seed_classify_fixed({85, 85, 62, 90}), SeedVerdict::well_optimized);
  EXPECT_EQ(seed_classify_fixed({20, 75, 62, 30}), SeedVerdict::uncoalesced);
  EXPECT_EQ(seed_classify_fixed({90, 40, 62, 30}), SeedVerdict::compute_bound);  // busy compute
}

TEST(Decide, BothBelowSixtyPercentIsLatencyBound) {
  EXPECT_EQ(decide(sol(59.9, 59.9)).bound, Bound::latency);
  EXPECT_EQ(decide(sol(59.9, 59.9)).cause, Cause::stalls);
  EXPECT_EQ(decide(sol(60, 10)).bound, Bound::compute);
  EXPECT_EQ(decide(sol(10, 60)).bound, Bound::memory);
}

TEST(Decide, TheBusierUnitDecidesAndBothAtTheRoofIsNearTheRoof) {
  EXPECT_EQ(decide(sol(70, 75)).bound, Bound::memory);
  EXPECT_EQ(decide(sol(75, 70)).bound, Bound::compute);
  EXPECT_EQ(decide(sol(80, 80)).bound, Bound::near_roof);
  EXPECT_EQ(decide(sol(95, 79)).bound, Bound::compute);
}

TEST(Decide, MemoryLevelIsTheBusiestUnit) {
  KernelEvidence k = sol(20, 90);
  EXPECT_EQ(decide(k).cause, Cause::memory_level_unknown);
  k.dram_pct = 90;
  k.l2_pct = 40;
  k.l1_pct = 20;
  EXPECT_EQ(decide(k).cause, Cause::dram);
  k.dram_pct = 30;
  k.l2_pct = 90;
  EXPECT_EQ(decide(k).cause, Cause::l2);
  k.l1_pct = 95;
  EXPECT_EQ(decide(k).cause, Cause::l1);
}

TEST(Decide, AGemmFeedingItsTensorPipeFromSharedMemoryIsComputeBoundNotNearTheRoof) {
  // cuBLAS's 8192^3 GEMM on the H200 (reference/ncu/h200/calibration.csv): SM 93%, memory 95%,
  // but that 95% is L1 / shared memory staging tiles for the tensor pipe at 97%; DRAM 20%.
  KernelEvidence k = sol(93.4, 94.6);
  k.dram_pct = 20.5;
  k.l2_pct = 48.3;
  k.l1_pct = 98.2;
  k.tensor_pipe_pct = 97.0;
  EXPECT_TRUE(operand_staging(k));
  EXPECT_EQ(decide(k), (Decision{Bound::compute, Cause::tensor_pipe, Limiter::none}));
  // The same counters with the L2 at its roof too: off-chip memory is busy, near the roof.
  k.l2_pct = 85;
  EXPECT_EQ(decide(k).bound, Bound::near_roof);
  // No pipe at its roof: the L1 is the bound (bank conflicts, say), not an operand feed.
  k.l2_pct = 48.3;
  k.tensor_pipe_pct = 40;
  k.sm_pct = 70;
  EXPECT_FALSE(operand_staging(k));
  EXPECT_EQ(decide(k), (Decision{Bound::memory, Cause::l1, Limiter::none}));
  // Without DRAM / L2 counters there is nothing to judge memory by instead: the plain rule.
  KernelEvidence bare = sol(93.4, 94.6);
  bare.l1_pct = 98.2;
  bare.tensor_pipe_pct = 97;
  EXPECT_FALSE(operand_staging(bare));
  EXPECT_EQ(decide(bare).bound, Bound::near_roof);
}

TEST(Decide, ComputePipeIsTheBusiestPipe) {
  KernelEvidence k = sol(90, 30);
  EXPECT_EQ(decide(k).cause, Cause::pipe_unknown);
  k.tensor_op = true;
  EXPECT_EQ(decide(k).cause, Cause::tensor_pipe);  // a GEMM without pipe counters
  k.tensor_pipe_pct = 2;
  k.fma_pipe_pct = 95;
  EXPECT_EQ(decide(k).cause, Cause::fma_pipe);
  k.tensor_pipe_pct = 96;
  EXPECT_EQ(decide(k).cause, Cause::tensor_pipe);
}

TEST(Decide, UncoalescedComesFirstUnlessComputeIsTheBusyUnit) {
  KernelEvidence k = sol(20, 75);
  k.load_efficiency_pct = 12.5;
  EXPECT_EQ(decide(k).bound, Bound::uncoalesced);
  k.mem_pct = 10;  // latency-bound with scattered loads: still the access pattern first
  EXPECT_EQ(decide(k).bound, Bound::uncoalesced);
  k.sm_pct = 90;  // compute-bound: the loads are not what limits it
  EXPECT_EQ(decide(k).bound, Bound::compute);
  k = sol(20, 75);
  k.load_efficiency_pct = 60;
  EXPECT_EQ(decide(k).bound, Bound::memory);
  k.load_efficiency_pct.reset();
  k.sectors_per_request = 32;  // no efficiency metric: more sectors than coalesced 16-byte loads
  EXPECT_EQ(decide(k).bound, Bound::uncoalesced);
  k.sectors_per_request = 16;
  EXPECT_EQ(decide(k).bound, Bound::memory);
}

TEST(Decide, LatencyCausesInOrderLaunchGridOccupancyStalls) {
  KernelEvidence k = sol(5, 5);
  k.duration_s = 3e-6;
  k.launch_gap_s = 4e-6;
  k.waves_per_sm = 0.05;
  k.theoretical_occupancy_pct = 12.5;
  k.limit_registers = 4;
  k.limit_shared_mem = 1;
  k.limit_warps = 8;
  k.limit_blocks = 32;
  EXPECT_EQ(decide(k), (Decision{Bound::latency, Cause::launch_overhead, Limiter::none}));
  k.launch_gap_s = 2e-6;  // the gap is shorter than the kernel: not launch-bound
  EXPECT_EQ(decide(k).cause, Cause::grid_below_one_wave);
  k.launch_gap_s = 40e-6;
  k.duration_s = 30e-6;  // not "a few us"
  EXPECT_EQ(decide(k).cause, Cause::grid_below_one_wave);
  k.waves_per_sm = 4;
  EXPECT_EQ(decide(k), (Decision{Bound::latency, Cause::occupancy, Limiter::shared_memory}));
  k.limit_registers = 0.5;
  EXPECT_EQ(decide(k).limiter, Limiter::registers);
  k.theoretical_occupancy_pct = 75;
  EXPECT_EQ(decide(k).cause, Cause::stalls);
}

TEST(Decide, WithoutSpeedOfLightTheVerdictIsUnknown) {
  KernelEvidence k;
  EXPECT_EQ(decide(k).bound, Bound::unknown);
  EXPECT_EQ(classify(k).verdict, "UNKNOWN");
}

TEST(Roofline, IntensityRatesAndPercentOfRoof) {
  // 1 GFLOP and 1 GB in 1 ms: 1 FLOP/byte, 1 TFLOP/s, 1 TB/s; roof 100 TFLOP/s and 4 TB/s:
  // ridge 25 FLOP/byte, attainable at 1 FLOP/byte = 4 TFLOP/s, so 25% of the roof.
  const RooflinePoint p = roofline_point(1e9, 1e9, 1e-3, 100e12, 4e12);
  ASSERT_TRUE(p.valid);
  EXPECT_DOUBLE_EQ(p.intensity, 1);
  EXPECT_DOUBLE_EQ(p.achieved_flops, 1e12);
  EXPECT_DOUBLE_EQ(p.achieved_bw, 1e12);
  EXPECT_DOUBLE_EQ(p.ridge, 25);
  EXPECT_DOUBLE_EQ(p.attainable, 4e12);
  EXPECT_DOUBLE_EQ(p.pct_of_roof, 25);
  EXPECT_TRUE(p.memory_side);
  // Right of the ridge: the compute roof. 100 GFLOP over 1 GB in 2 ms: 50 TFLOP/s of 100.
  const RooflinePoint q = roofline_point(100e9, 1e9, 2e-3, 100e12, 4e12);
  EXPECT_FALSE(q.memory_side);
  EXPECT_DOUBLE_EQ(q.attainable, 100e12);
  EXPECT_DOUBLE_EQ(q.pct_of_roof, 50);
}

TEST(Roofline, AKernelWithoutFlopsIsMeasuredAgainstP) {
  const RooflinePoint p = roofline_point(0, 2e9, 1e-3, 100e12, 4e12);  // 2 TB/s of 4
  EXPECT_TRUE(p.valid);
  EXPECT_DOUBLE_EQ(p.pct_of_roof, 50);
  const RooflinePoint none = roofline_point(1e9, 0, 1e-3, 100e12, 4e12);
  EXPECT_FALSE(none.valid);
  const RooflinePoint no_roof = roofline_point(1e9, 1e9, 1e-3, 0, 0);
  EXPECT_TRUE(no_roof.valid);
  EXPECT_EQ(no_roof.pct_of_roof, 0);
}

TEST(Classify, ATraceKernelIsJudgedByTheRooflineAgainstP) {
  // No counters: 4 MB in 1.2 us = 3.3 TB/s of P = 4 TB/s: 83% -> memory-bound.
  KernelEvidence k;
  k.name = "rms_norm_kernel";
  k.duration_s = 1.2e-6;
  k.bytes = 4e6;
  k.flops = 4e6;
  const Roof roof{4e12, 800e12, 60e12, "test"};
  const Classification c = classify(k, roof);
  EXPECT_EQ(c.decision.bound, Bound::memory);
  ASSERT_FALSE(c.evidence.empty());
  EXPECT_NE(c.evidence[0].find("no speed-of-light counters"), std::string::npos) << c.evidence[0];
  // A short kernel at a small fraction of P whose launch gaps are longer than it: launch-bound.
  k.bytes = 64e3;
  k.duration_s = 2e-6;
  k.launch_gap_s = 5e-6;
  EXPECT_EQ(classify(k, roof).decision.cause, Cause::launch_overhead);
  EXPECT_EQ(classify(k, roof).label(), "LATENCY BOUND (launch/overhead)");
}

TEST(Classify, EveryVerdictComesWithEvidenceAndAdvice) {
  const Classification c = classify(evidence_from_seed(kSeedExample));
  EXPECT_FALSE(c.evidence.empty());
  EXPECT_FALSE(c.recommendations.empty());
  EXPECT_NE(c.evidence[0].find("88.5%"), std::string::npos) << c.evidence[0];
}

TEST(Thresholds, OneTableHoldsEveryNumberTheProcedureUses) {
  const auto rows = threshold_table();
  const Thresholds& t = default_thresholds();
  EXPECT_EQ(t.high_throughput_pct, 60);  // Nsight Compute's SOL rule
  EXPECT_EQ(t.roof_pct, 80);
  ASSERT_EQ(rows.size(), 9u);
  for (const auto& r : rows) {
    EXPECT_FALSE(r.rule.empty()) << r.name;
    EXPECT_FALSE(r.source.empty()) << r.name;
  }
  // A changed table changes the verdict: the same kernel with the line at 50%.
  Thresholds lower = t;
  lower.high_throughput_pct = 50;
  EXPECT_EQ(decide(sol(20, 55), t).bound, Bound::latency);
  EXPECT_EQ(decide(sol(20, 55), lower).bound, Bound::memory);
}

}  // namespace
}  // namespace day18
