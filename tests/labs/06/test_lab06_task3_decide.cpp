// Lab 06, task 3: decide(evidence), the decision procedure. First each branch on evidence written
// by hand, then the labelled calibration kernels (reference/ncu/labels.json): their CSV rows,
// read with a reference reader (not your task 1, so this task can be done first), must get the
// verdict each was built to have.
#include <cstdio>
#include <regex>
#include <sstream>

#include "tests/labs/06/lab06.h"

namespace day18 {
namespace {

KernelEvidence sol(double sm, double mem) {
  KernelEvidence k;
  k.sm_pct = sm;
  k.mem_pct = mem;
  return k;
}

TEST(Lab06_Task3_Decide, LowComputeAndLowMemoryIsLatencyNotCompute) {
  EXPECT_EQ(lab06::label(decide(sol(20, 25))), "LATENCY BOUND (stalls)");
  EXPECT_EQ(decide(sol(59, 59)).bound, Bound::latency) << "both below 60%: latency";
  EXPECT_EQ(decide(sol(20, 55)).bound, Bound::latency) << "55% memory is not memory-bound";
}

TEST(Lab06_Task3_Decide, TheBusierUnitAboveSixtyPercentBounds) {
  EXPECT_EQ(decide(sol(45.2, 88.5)).bound, Bound::memory) << "the seed's example";
  EXPECT_EQ(decide(sol(75, 70)).bound, Bound::compute);
  EXPECT_EQ(decide(sol(60, 10)).bound, Bound::compute) << "60% is the line, inclusive";
  EXPECT_EQ(decide(sol(10, 60)).bound, Bound::memory);
  EXPECT_EQ(decide(sol(85, 85)).bound, Bound::near_roof) << "both >= 80%";
  EXPECT_EQ(decide(sol(95, 79)).bound, Bound::compute);
}

TEST(Lab06_Task3_Decide, MemoryBoundSaysWhichLevel) {
  KernelEvidence k = sol(20, 90);
  k.dram_pct = 35;
  k.l2_pct = 90;
  k.l1_pct = 40;
  EXPECT_EQ(lab06::label(decide(k)), "MEMORY BOUND (L2)") << "busiest_memory_level()";
  k.dram_pct = 92;
  EXPECT_EQ(lab06::label(decide(k)), "MEMORY BOUND (DRAM)");
}

TEST(Lab06_Task3_Decide, ComputeBoundSaysWhichPipe) {
  KernelEvidence k = sol(90, 30);
  k.tensor_pipe_pct = 1;
  k.fma_pipe_pct = 96;
  EXPECT_EQ(lab06::label(decide(k)), "COMPUTE BOUND (FMA pipe)") << "busiest_pipe()";
}

TEST(Lab06_Task3_Decide, ScatteredLoadsAreUncoalescedUnlessComputeIsBusy) {
  KernelEvidence k = sol(22, 74);
  k.load_efficiency_pct = 12.5;
  EXPECT_EQ(decide(k).bound, Bound::uncoalesced) << "before memory-bound: fix the pattern first";
  k.sm_pct = 90;
  EXPECT_EQ(decide(k).bound, Bound::compute) << "compute-bound: the loads do not limit it";
  k = sol(22, 74);
  k.sectors_per_request = 32;  // no efficiency metric
  EXPECT_EQ(decide(k).bound, Bound::uncoalesced) << "32 sectors/request > 16";
}

TEST(Lab06_Task3_Decide, LatencyCausesMostSpecificFirst) {
  KernelEvidence k = sol(3, 4);
  k.duration_s = 3e-6;
  k.launch_gap_s = 5e-6;
  k.waves_per_sm = 0.05;
  k.theoretical_occupancy_pct = 12.5;
  k.limit_registers = 8;
  k.limit_shared_mem = 1;
  k.limit_warps = 16;
  k.limit_blocks = 32;
  EXPECT_EQ(lab06::label(decide(k)), "LATENCY BOUND (launch/overhead)")
      << "a 3 us kernel behind a 5 us gap";
  k.duration_s = 50e-6;  // not a few us: the gap is not what limits it
  k.launch_gap_s = 60e-6;
  EXPECT_EQ(lab06::label(decide(k)), "LATENCY BOUND (grid below one wave)")
      << "0.05 waves, before occupancy";
  k.waves_per_sm = 8;
  EXPECT_EQ(lab06::label(decide(k)), "LATENCY BOUND (occupancy limited by shared memory)");
  k.theoretical_occupancy_pct = 75;
  EXPECT_EQ(lab06::label(decide(k)), "LATENCY BOUND (stalls)");
}

TEST(Lab06_Task3_Decide, WithoutSpeedOfLightItIsUnknown) {
  EXPECT_EQ(decide(KernelEvidence{}).bound, Bound::unknown);
}

// The calibration kernels: each one built so that one thing limits it.
TEST(Lab06_Task3_Decide, TheLabelledCalibrationKernelsGetTheirVerdicts) {
  const nlohmann::json L = lab06::labels();
  std::ostringstream table;
  int wrong = 0, total = 0;
  for (const auto& csv : L["csv"]) {
    const ncu::Table t = ncu::read_csv(lab06::source(csv.get<std::string>()));
    for (const auto& l : L["kernels"]) {
      const std::regex re(l["match"].get<std::string>());
      for (size_t r = 0; r < t.rows.size(); ++r) {
        if (!std::regex_search(ncu::kernel_name(t, r), re)) continue;
        const KernelEvidence k = evidence_from_ncu(t, r, lab06::reference_metric);
        const std::string want =
            lab06::label(l["verdict"].get<std::string>(), l["detail"].get<std::string>());
        const std::string got = lab06::label(decide(k));
        ++total;
        char line[400];
        std::snprintf(line, sizeof line,
                      "  %s %-14s expected %-52s yours %s\n      (SM %.1f%%, memory %.1f%%, DRAM "
                      "%.1f%%, L2 %.1f%%, load efficiency %.1f%%, waves %.3g, theoretical "
                      "occupancy %.1f%%; -1: not in the CSV)\n",
                      want == got ? "  " : "x ", l["key"].get<std::string>().c_str(), want.c_str(),
                      got.c_str(), k.sm_pct.value_or(-1), k.mem_pct.value_or(-1),
                      k.dram_pct.value_or(-1), k.l2_pct.value_or(-1),
                      k.load_efficiency_pct.value_or(-1), k.waves_per_sm.value_or(-1),
                      k.theoretical_occupancy_pct.value_or(-1));
        table << line;
        wrong += want != got;
      }
    }
  }
  EXPECT_EQ(total, 6) << "every labelled kernel is in the fixture once";
  EXPECT_EQ(wrong, 0)
      << wrong << " of " << total << " calibration kernels classified wrong (x):\n"
      << table.str()
      << "hint: the order matters: uncoalesced, near the roof, memory, compute, "
         "then the latency causes (launch, grid below one wave, occupancy, stalls); "
         "labels.json says how each kernel was built";
}

}  // namespace
}  // namespace day18
