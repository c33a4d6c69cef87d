// Lab 05, task 4: idle time per stream by cause (idle_by_cause in
// engine/profiling/trace_metrics.cpp). On the fixture's compute stream (us):
//
//   norm5 [30,40] . attn5 [42,62] gemm5 [62,92] ........ sample5 [100,104] . norm6 [106,110]
//   attn6 [110,115] gemm6 [115,120] .......... sample6 [130,134]
//
// the gaps are 2 (launched at 27: kernel gap), 8 (launched at 52, held: other), 2 (kernel gap) and
// 10 (sample6 launched at 125, after gemm6 ended at 120: host wait).
#include "engine/profiling/trace_metrics.h"
#include "tests/labs/05/lab05.h"

namespace day18 {
namespace {

using lab05::call;
using lab05::op;
using lab05::us;
using trace::ActivityKind;

std::vector<trace::StreamIdle> idle(const trace::TraceData& d, int64_t threshold_ns = 5 * us) {
  return trace::idle_by_cause(d, trace::link_gpu_activities(d), threshold_ns);
}

// Two kernels on stream 1: [0, 10], then [start_us, start_us + 10] launched at launch_us.
trace::TraceData two_kernels(double start_us, double launch_us, double launch_end_us = -1) {
  trace::TraceData d;
  d.threads.push_back({1, 0, "engine"});
  d.activities = {call(1, -5, -4), op(ActivityKind::kernel, 1, 0, 10, 1),
                  call(2, launch_us, launch_end_us < 0 ? launch_us + 1 : launch_end_us),
                  op(ActivityKind::kernel, 1, start_us, start_us + 10, 2)};
  return d;
}

TEST(Lab05_Task4_IdleCauses, TheFixturesComputeStreamGapsByCause) {
  const auto v = idle(lab05::fixture());
  ASSERT_EQ(v.size(), 3u) << "one entry per stream that ran something: h2d, compute, d2h";
  const trace::StreamIdle& c = v[1];
  EXPECT_EQ(c.stream, 14u);
  EXPECT_EQ(c.name, "compute");
  EXPECT_EQ(c.ops, 8);
  EXPECT_EQ(c.span_ns, 104 * us) << "first op start (30) to last op end (134)";
  EXPECT_EQ(c.busy_ns, 82 * us);
  EXPECT_EQ(c.gaps, 4);
  EXPECT_EQ(c.idle_ns, 22 * us);
  EXPECT_EQ(c.host_wait_ns, 10 * us);
  EXPECT_EQ(c.kernel_gap_ns, 4 * us);
  EXPECT_EQ(c.other_ns, 8 * us);
}

TEST(Lab05_Task4_IdleCauses, TheCopyStreamsWaitedForTheHost) {
  const auto v = idle(lab05::fixture());
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].name, "h2d");
  EXPECT_EQ(v[0].idle_ns, 58 * us) << "25 .. 83";
  EXPECT_EQ(v[0].host_wait_ns, 58 * us) << "step 6's H2D was enqueued at 81, after 25";
  EXPECT_EQ(v[2].name, "d2h");
  EXPECT_EQ(v[2].host_wait_ns, 34 * us) << "step 6's D2H was enqueued at 138, after 106";
}

TEST(Lab05_Task4_IdleCauses, HostWaitWhenTheLaunchBeganAfterThePreviousOpEnded) {
  const auto v = idle(two_kernels(30, 20));  // launched at 20, the first kernel ended at 10
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].idle_ns, 20 * us);
  EXPECT_EQ(v[0].host_wait_ns, 20 * us);
  EXPECT_EQ(v[0].kernel_gap_ns + v[0].other_ns, 0);
}

TEST(Lab05_Task4_IdleCauses, ALaunchCallThatBeganBeforeThePreviousOpEndedIsNoHostWait) {
  // The call ran from 5 to 25, across the first kernel's end (10): it began in time; the 15 us
  // gap (10 .. 25) is "other" (longer than the threshold), not host wait.
  const auto v = idle(two_kernels(25, 5, 25));
  EXPECT_EQ(v[0].host_wait_ns, 0);
  EXPECT_EQ(v[0].other_ns, 15 * us);
}

TEST(Lab05_Task4_IdleCauses, KernelGapWhenQueuedInTimeAndAtMostTheThreshold) {
  const auto at = idle(two_kernels(15, 2));  // a 5 us gap, threshold 5 us: kernel gap
  EXPECT_EQ(at[0].kernel_gap_ns, 5 * us);
  EXPECT_EQ(at[0].other_ns, 0);
  const auto above = idle(two_kernels(15, 2), 4 * us);
  EXPECT_EQ(above[0].kernel_gap_ns, 0);
  EXPECT_EQ(above[0].other_ns, 5 * us);
}

TEST(Lab05_Task4_IdleCauses, AnOpWithoutItsLaunchCallIsKernelGapOrOtherByLength) {
  trace::TraceData d;
  d.activities = {op(ActivityKind::kernel, 1, 0, 10), op(ActivityKind::kernel, 1, 12, 20),
                  op(ActivityKind::kernel, 1, 40, 50)};
  const auto v = idle(d);
  EXPECT_EQ(v[0].kernel_gap_ns, 2 * us);
  EXPECT_EQ(v[0].other_ns, 20 * us);
  EXPECT_EQ(v[0].host_wait_ns, 0);
}

TEST(Lab05_Task4_IdleCauses, OpsAreTakenInStartOrderAndEachStreamOnItsOwn) {
  trace::TraceData d;
  // Listed out of order, on two streams: stream 1 runs [0,10] [20,30]; stream 2 runs [5,25].
  d.activities = {op(ActivityKind::kernel, 1, 20, 30), op(ActivityKind::kernel, 2, 5, 25),
                  op(ActivityKind::kernel, 1, 0, 10)};
  const auto v = idle(d);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].stream, 1u);
  EXPECT_EQ(v[0].ops, 2);
  EXPECT_EQ(v[0].idle_ns, 10 * us) << "stream 1 idles 10 .. 20 though stream 2 runs then";
  EXPECT_EQ(v[0].span_ns, 30 * us);
  EXPECT_EQ(v[1].stream, 2u);
  EXPECT_EQ(v[1].idle_ns, 0);
  EXPECT_EQ(v[1].name, "stream 2");
}

}  // namespace
}  // namespace day18
