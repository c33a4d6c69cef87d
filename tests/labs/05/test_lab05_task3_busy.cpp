// Lab 05, task 3: GPU busy (gpu_busy in engine/profiling/trace_metrics.cpp). On the fixture the
// GPU's ops run from the first H2D at 23 us to the last D2H ending at 141 us (the window, 118 us);
// its kernels, merged, cover 82 us of it; every op together 86 us.
#include "engine/profiling/trace_metrics.h"
#include "tests/labs/05/lab05.h"

namespace day18 {
namespace {

using lab05::call;
using lab05::op;
using lab05::us;
using trace::ActivityKind;

TEST(Lab05_Task3_Busy, OnTheFixtureItIsTheKernelUnionOverTheWindowOfAllOps) {
  const trace::BusyStats b = trace::gpu_busy(lab05::fixture(), 0);
  EXPECT_EQ(b.window_ns, 118 * us) << "the window: the first GPU op's start to the last one's end "
                                      "(copies included)";
  EXPECT_EQ(b.kernel_ns, 82 * us) << "the union of the kernels' intervals";
  EXPECT_EQ(b.active_ns, 86 * us) << "the union of every op's interval (kernels, copies, memsets)";
  EXPECT_DOUBLE_EQ(b.busy_fraction, 82.0 / 118.0);
  EXPECT_DOUBLE_EQ(b.active_fraction, 86.0 / 118.0);
  EXPECT_EQ(b.device, 0u);
}

TEST(Lab05_Task3_Busy, KernelsRunningAtOnceOnTwoStreamsCountOnce) {
  trace::TraceData d;
  d.activities = {op(ActivityKind::kernel, 1, 0, 100), op(ActivityKind::kernel, 2, 50, 150),
                  op(ActivityKind::kernel, 2, 150, 160)};
  const trace::BusyStats b = trace::gpu_busy(d, 0);
  EXPECT_EQ(b.kernel_ns, 160 * us) << "0..160 is covered once, not 100 + 100 + 10";
  EXPECT_EQ(b.window_ns, 160 * us);
  EXPECT_DOUBLE_EQ(b.busy_fraction, 1.0);
}

TEST(Lab05_Task3_Busy, TheWindowStartsAtTheFirstOpNotAtTheTracesOrigin) {
  trace::TraceData d;
  d.origin_ns = 0;
  d.activities = {op(ActivityKind::kernel, 1, 1000, 1030), op(ActivityKind::kernel, 1, 1070, 1100)};
  const trace::BusyStats b = trace::gpu_busy(d, 0);
  EXPECT_EQ(b.window_ns, 100 * us);
  EXPECT_EQ(b.kernel_ns, 60 * us);
  EXPECT_DOUBLE_EQ(b.busy_fraction, 0.6);
}

TEST(Lab05_Task3_Busy, CopiesWidenTheWindowButAreNoKernelTime) {
  trace::TraceData d;
  d.activities = {op(ActivityKind::memcpy, 3, 0, 20), op(ActivityKind::kernel, 1, 20, 60),
                  op(ActivityKind::memcpy, 4, 60, 80), call(7, 0, 1)};
  const trace::BusyStats b = trace::gpu_busy(d, 0);
  EXPECT_EQ(b.window_ns, 80 * us);
  EXPECT_EQ(b.kernel_ns, 40 * us);
  EXPECT_EQ(b.active_ns, 80 * us);
  EXPECT_DOUBLE_EQ(b.busy_fraction, 0.5);
  EXPECT_DOUBLE_EQ(b.active_fraction, 1.0);
}

TEST(Lab05_Task3_Busy, AnotherDevicesOpsAreNotThisOnes) {
  trace::TraceData d;
  d.activities = {op(ActivityKind::kernel, 1, 0, 10), op(ActivityKind::kernel, 1, 100, 110)};
  d.activities[1].device = 1;
  const trace::BusyStats b0 = trace::gpu_busy(d, 0), b1 = trace::gpu_busy(d, 1);
  EXPECT_EQ(b0.window_ns, 10 * us);
  EXPECT_EQ(b1.window_ns, 10 * us);
  EXPECT_EQ(b1.device, 1u);
  const trace::BusyStats none = trace::gpu_busy(d, 2);
  EXPECT_EQ(none.window_ns, 0);
  EXPECT_EQ(none.busy_fraction, 0.0);
}

}  // namespace
}  // namespace day18
