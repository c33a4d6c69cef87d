// Lab 05, task 5: the H2D/compute overlap (h2d_compute_overlap in
// engine/profiling/trace_metrics.cpp). On the fixture, step 5's kernels span [30, 104] us; step
// 6's H2D ran [83, 85], during them (and under gemm5 [62, 92]); step 5's own H2D [23, 25] ran
// before any kernel.
#include "engine/profiling/trace_metrics.h"
#include "tests/labs/05/lab05.h"

namespace day18 {
namespace {

using lab05::call;
using lab05::op;
using lab05::us;
using trace::ActivityKind;

trace::Overlap overlap(const trace::TraceData& d) {
  return trace::h2d_compute_overlap(d, trace::link_gpu_activities(d));
}

TEST(Lab05_Task5_Overlap, OnTheFixtureHalfTheH2dTimeRanUnderAKernelAndThePairOverlapped) {
  const trace::Overlap o = overlap(lab05::fixture());
  EXPECT_EQ(o.h2d_copies, 2) << "HtoD copies only (not the two DtoH)";
  EXPECT_EQ(o.h2d_ns, 4 * us);
  EXPECT_EQ(o.h2d_under_compute_ns, 2 * us);
  EXPECT_DOUBLE_EQ(o.fraction, 0.5);
  EXPECT_EQ(o.step_pairs, 1) << "(5, 6): step 7 has no H2D in the trace";
  EXPECT_EQ(o.step_pairs_overlapped, 1) << "step 6's H2D ran during step 5's compute span";
}

TEST(Lab05_Task5_Overlap, ACopyUnderTwoKernelsAtOnceCountsOnce) {
  trace::TraceData d;
  d.activities = {op(ActivityKind::memcpy, 3, 0, 10), op(ActivityKind::kernel, 1, 0, 10),
                  op(ActivityKind::kernel, 2, 5, 20)};
  const trace::Overlap o = overlap(d);
  EXPECT_EQ(o.h2d_ns, 10 * us);
  EXPECT_EQ(o.h2d_under_compute_ns, 10 * us) << "0 .. 10 is under a kernel, once";
  EXPECT_DOUBLE_EQ(o.fraction, 1.0);
}

TEST(Lab05_Task5_Overlap, ADeviceToHostCopyIsNoH2d) {
  trace::TraceData d;
  d.activities = {op(ActivityKind::memcpy, 3, 0, 10), op(ActivityKind::kernel, 1, 0, 10)};
  d.activities[0].copy_kind = "DtoH";
  const trace::Overlap o = overlap(d);
  EXPECT_EQ(o.h2d_copies, 0);
  EXPECT_EQ(o.fraction, 0.0);
}

TEST(Lab05_Task5_Overlap, AStepWhoseH2dWaitsForThePreviousComputeDoesNotOverlap) {
  trace::TraceData d = lab05::fixture();
  // Step 6's H2D moved to [104, 106]: it starts when step 5's last kernel ends (touching is no
  // overlap), as it would if the H2D waited for the other parity's compute.
  for (trace::Activity& a : d.activities)
    if (a.kind == ActivityKind::memcpy && a.correlation == 601) {
      a.start_ns = d.origin_ns + 104 * us;
      a.end_ns = d.origin_ns + 106 * us;
    }
  const trace::Overlap o = overlap(d);
  EXPECT_EQ(o.step_pairs, 1);
  EXPECT_EQ(o.step_pairs_overlapped, 0);
  EXPECT_EQ(o.h2d_under_compute_ns, 0);
}

TEST(Lab05_Task5_Overlap, StepsComeFromTheRangesTheCopiesWereLaunchedIn) {
  // Three steps by hand: each step's kernel [100 s, 100 s + 80], the next step's H2D at
  // 100 s + 50 (during it), except step 2's, which comes after step 1's compute.
  trace::TraceData d;
  d.threads.push_back({1, 0, "engine"});
  uint32_t corr = 1;
  for (int s = 0; s < 3; ++s) {
    const double t = 100.0 * s;
    d.ranges.push_back({"Launch", 1, static_cast<int64_t>((t - 60) * us),
                        static_cast<int64_t>((t - 40) * us), 0, s});
    const double h2d_at = s == 2 ? t + 5 : t - 50;
    d.activities.push_back(call(corr, t - 59, t - 58));
    d.activities.push_back(op(ActivityKind::memcpy, 3, h2d_at, h2d_at + 2, corr++));
    d.activities.push_back(call(corr, t - 50, t - 49));
    d.activities.push_back(op(ActivityKind::kernel, 1, t, t + 80, corr++));
  }
  const trace::Overlap o = overlap(d);
  EXPECT_EQ(o.step_pairs, 2) << "(0, 1) and (1, 2)";
  EXPECT_EQ(o.step_pairs_overlapped, 1) << "step 1's H2D [50, 52] ran during step 0's [0, 80]; "
                                           "step 2's [205, 207] after step 1's [100, 180]";
}

}  // namespace
}  // namespace day18
