// Lab 06, task 4: seed_classify_fixed, the seed's four numbers (SM utilization, memory
// utilization, occupancy, load efficiency) decided in the right order. The seed's own tree
// (seed_classify, kept as it is written) says COMPUTE BOUND for the seed's own example, whose
// comment says MEMORY BOUND.
#include "tests/labs/06/lab06.h"

namespace day18 {
namespace {

TEST(Lab06_Task4_FixSeed, TheSeedsExampleIsMemoryBoundNotComputeBound) {
  const SeedVerdict fixed = seed_classify_fixed(kSeedExample);
  const SeedVerdict seed = seed_classify(kSeedExample);
  EXPECT_EQ(fixed, SeedVerdict::memory_bound)
      << "SM 45.2%, memory 88.5%, occupancy 62.3%, load efficiency 78.1%: yours says "
      << seed_verdict_name(fixed) << ", the seed's tree says " << seed_verdict_name(seed)
      << " (it tests sm < 50 first); memory at 88.5% of its peak is the busy unit";
  EXPECT_EQ(seed, SeedVerdict::compute_bound) << "the trap itself stays as the seed wrote it";
}

TEST(Lab06_Task4_FixSeed, LowSmWithLowMemoryIsLatencyBound) {
  EXPECT_EQ(seed_classify_fixed({20, 25, 62, 95}), SeedVerdict::latency_bound);
  EXPECT_EQ(seed_classify_fixed({20, 25, 12, 95}), SeedVerdict::occupancy_limited)
      << "latency-bound with occupancy < 30%: OCCUPANCY LIMITED";
}

TEST(Lab06_Task4_FixSeed, HighSmIsComputeBoundWhateverTheOccupancy) {
  EXPECT_EQ(seed_classify_fixed({85, 30, 12, 95}), SeedVerdict::compute_bound)
      << "a GEMM at 85% with 12% occupancy is compute-bound: low occupancy is a cause of "
         "latency, not a verdict of its own";
  EXPECT_EQ(seed_classify_fixed({90, 40, 60, 30}), SeedVerdict::compute_bound)
      << "busy compute: the scattered loads are not what limits it";
}

TEST(Lab06_Task4_FixSeed, ScatteredLoadsAndBothUnitsAtTheirRoof) {
  EXPECT_EQ(seed_classify_fixed({22, 74, 85, 12.5}), SeedVerdict::uncoalesced);
  EXPECT_EQ(seed_classify_fixed({85, 88, 60, 95}), SeedVerdict::well_optimized)
      << "both >= 80%: near the roof";
  EXPECT_EQ(seed_classify_fixed({70, 65, 60, 95}), SeedVerdict::compute_bound)
      << "the busier of the two decides";
}

TEST(Lab06_Task4_FixSeed, AgreesWithDecideOnTheSameFourNumbers) {
  // The fixed tree and decide() are one procedure: the same bound for the same inputs.
  const SeedMetrics cases[] = {kSeedExample,       {20, 25, 62, 95}, {85, 30, 62, 95},
                               {22, 74, 85, 12.5}, {85, 88, 60, 95}, {10, 65, 60, 95}};
  for (const SeedMetrics& m : cases) {
    const SeedVerdict v = seed_classify_fixed(m);
    const Bound b = decide(evidence_from_seed(m)).bound;
    const Bound want = v == SeedVerdict::memory_bound     ? Bound::memory
                       : v == SeedVerdict::compute_bound  ? Bound::compute
                       : v == SeedVerdict::uncoalesced    ? Bound::uncoalesced
                       : v == SeedVerdict::well_optimized ? Bound::near_roof
                                                          : Bound::latency;
    EXPECT_EQ(b, want) << "SM " << m.sm_utilization << "%, memory " << m.memory_utilization
                       << "%: the fixed tree says " << seed_verdict_name(v) << ", decide() "
                       << bound_name(b);
  }
}

}  // namespace
}  // namespace day18
