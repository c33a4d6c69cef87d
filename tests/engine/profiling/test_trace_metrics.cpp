// The trace metrics (engine/profiling/trace_metrics.h) with exact expected numbers: on hand-made
// interval lists and on the fixture tests/labs/05/fixture_two_steps.json, whose times (us since
// its origin) are, on the compute stream:
//
//   norm5 [30,40]  attn5 [42,62]  gemm5 [62,92]  sample5 [100,104]
//   norm6 [106,110] attn6 [110,115] gemm6 [115,120] sample6 [130,134]   (sample6 launched at 125)
//   h2d: [23,25] [83,85]   d2h: [105,106] [140,141]   ranges: 0 .. 210
#include <gtest/gtest.h>

#include "engine/profiling/trace_metrics.h"
#include "tests/support/test_support.h"

namespace day18::trace {
namespace {

constexpr int64_t us = 1000;

TraceData fixture() {
  return read_trace_data(testing::source_dir() + "/tests/labs/05/fixture_two_steps.json");
}

TEST(Intervals, MergeJoinsOverlappingAndTouchingIntervalsAndDropsEmptyOnes) {
  const auto m = merge_intervals({{50, 60}, {0, 10}, {5, 20}, {20, 30}, {40, 40}, {55, 58}});
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].start_ns, 0);
  EXPECT_EQ(m[0].end_ns, 30);
  EXPECT_EQ(m[1].start_ns, 50);
  EXPECT_EQ(m[1].end_ns, 60);
  EXPECT_EQ(total_ns(m), 40);
  EXPECT_EQ(shared_ns(m, merge_intervals({{25, 55}})), 10);  // 25..30 and 50..55
  EXPECT_EQ(shared_ns(m, {}), 0);
}

TEST(GpuBusy, IsTheUnionOfKernelTimeOverTheWindowOfAllGpuOps) {
  const BusyStats b = gpu_busy(fixture(), 0);
  EXPECT_EQ(b.window_ns, 118 * us);  // first op (the H2D at 23) .. last (the D2H ending at 141)
  EXPECT_EQ(b.kernel_ns, 82 * us);   // 10 + 50 + 4 + 14 + 4
  EXPECT_EQ(b.active_ns, 86 * us);   // + H2D [23,25] + D2H [105,106] and [140,141]
  EXPECT_DOUBLE_EQ(b.busy_fraction, 82.0 / 118.0);
  EXPECT_DOUBLE_EQ(b.active_fraction, 86.0 / 118.0);
  EXPECT_EQ(gpu_busy(fixture(), 3).window_ns, 0);  // a device with nothing on it
}

TEST(GpuBusy, KernelsOnTwoStreamsAtOnceCountOnce) {
  TraceData d;
  for (auto [s, a, b] : {std::tuple{1u, 0, 100}, {2u, 50, 150}}) {
    Activity k;
    k.kind = ActivityKind::kernel;
    k.stream = s;
    k.start_ns = a;
    k.end_ns = b;
    d.activities.push_back(k);
  }
  const BusyStats b = gpu_busy(d, 0);
  EXPECT_EQ(b.kernel_ns, 150);
  EXPECT_EQ(b.window_ns, 150);
  EXPECT_DOUBLE_EQ(b.busy_fraction, 1.0);
}

TEST(IdleByCause, SplitsEachStreamsGapsIntoHostWaitKernelGapAndOther) {
  const TraceData d = fixture();
  const auto idle = idle_by_cause(d, link_gpu_activities(d));
  ASSERT_EQ(idle.size(), 3u);  // h2d, compute, d2h ran something (cache did not)
  const StreamIdle& h2d = idle[0];
  EXPECT_EQ(h2d.name, "h2d");
  EXPECT_EQ(h2d.idle_ns, 58 * us);       // 25 .. 83
  EXPECT_EQ(h2d.host_wait_ns, 58 * us);  // step 6's copy was enqueued at 81, after 25
  const StreamIdle& c = idle[1];
  EXPECT_EQ(c.name, "compute");
  EXPECT_EQ(c.ops, 8);
  EXPECT_EQ(c.span_ns, 104 * us);
  EXPECT_EQ(c.busy_ns, 82 * us);
  EXPECT_EQ(c.idle_ns, 22 * us);
  EXPECT_EQ(c.gaps, 4);
  EXPECT_EQ(c.host_wait_ns, 10 * us);  // sample6: launched at 125, after gemm6 ended at 120
  EXPECT_EQ(c.kernel_gap_ns, 4 * us);  // 40 -> 42 and 104 -> 106, launched long before
  EXPECT_EQ(c.other_ns, 8 * us);       // 92 -> 100: launched at 52, held 8 us
  const StreamIdle& d2h = idle[2];
  EXPECT_EQ(d2h.idle_ns, 34 * us);
  EXPECT_EQ(d2h.host_wait_ns, 34 * us);  // enqueued at 138 > 106
}

TEST(IdleByCause, TheThresholdDecidesKernelGapVersusOther) {
  const TraceData d = fixture();
  const auto idle = idle_by_cause(d, link_gpu_activities(d), 10 * us);
  EXPECT_EQ(idle[1].kernel_gap_ns, 12 * us);  // the 8 us gap is now a kernel gap
  EXPECT_EQ(idle[1].other_ns, 0);
  EXPECT_EQ(idle[1].host_wait_ns, 10 * us);  // host wait does not depend on the threshold
}

TEST(Overlap, H2dUnderComputeAndTheStepPairsReadOffTheTrace) {
  const TraceData d = fixture();
  const Overlap o = h2d_compute_overlap(d, link_gpu_activities(d));
  EXPECT_EQ(o.h2d_copies, 2);
  EXPECT_EQ(o.h2d_ns, 4 * us);
  EXPECT_EQ(o.h2d_under_compute_ns, 2 * us);  // [83,85] under gemm5; [23,25] before any kernel
  EXPECT_DOUBLE_EQ(o.fraction, 0.5);
  EXPECT_EQ(o.step_pairs, 1);             // (5, 6); step 7 has no H2D in the trace
  EXPECT_EQ(o.step_pairs_overlapped, 1);  // step 6's H2D ran during step 5's compute [30,104]
}

TEST(Overlap, AStepWhoseH2dWaitsForThePreviousComputeDoesNotOverlap) {
  TraceData d = fixture();
  for (Activity& a : d.activities)
    if (a.kind == ActivityKind::memcpy && a.correlation == 601) {
      a.start_ns = d.origin_ns + 104 * us;  // after step 5's last kernel
      a.end_ns = d.origin_ns + 106 * us;
    }
  const Overlap o = h2d_compute_overlap(d, link_gpu_activities(d));
  EXPECT_EQ(o.step_pairs, 1);
  EXPECT_EQ(o.step_pairs_overlapped, 0);
  EXPECT_EQ(o.h2d_under_compute_ns, 0);
}

TEST(TimePerRange, SharesOfTheWallTimeAgainstTheSeedsIdealProfile) {
  const TraceData d = fixture();
  const Profile p = time_per_range(d, link_gpu_activities(d));
  EXPECT_EQ(p.wall_ns, 210 * us);
  std::map<std::string, RangeShare> by;
  std::vector<std::string> order;
  for (const RangeShare& r : p.ranges) {
    by[r.name] = r;
    order.push_back(r.name);
  }
  EXPECT_EQ(order, (std::vector<std::string>{
                       "Scheduler", "PrepareInputs", "Launch", "ModelExecutor", "Attention", "MLP",
                       "Norm", "(model: other)", "Sampling", "Wait", "ProcessOutputs"}));
  // The scheduler launches nothing: its CPU time, 2 x 10 us of 210.
  EXPECT_EQ(by["Scheduler"].count, 2);
  EXPECT_EQ(by["Scheduler"].cpu_ns, 20 * us);
  EXPECT_FALSE(by["Scheduler"].on_gpu);
  EXPECT_DOUBLE_EQ(by["Scheduler"].share, 20.0 / 210.0);
  EXPECT_EQ(by["Scheduler"].verdict, "above");  // 9.5% > 5%
  // The model: the GPU time of the kernels launched inside it.
  EXPECT_EQ(by["ModelExecutor"].gpu_ns, 74 * us);
  EXPECT_TRUE(by["ModelExecutor"].on_gpu);
  EXPECT_DOUBLE_EQ(by["ModelExecutor"].share, 74.0 / 210.0);
  EXPECT_EQ(by["ModelExecutor"].verdict, "below");
  EXPECT_EQ(by["Attention"].gpu_ns, 39 * us);  // its norm kernels too: [30,40] [42,62] [106,115]
  EXPECT_DOUBLE_EQ(by["Attention"].model_share, 39.0 / 74.0);
  EXPECT_EQ(by["Attention"].verdict, "above");  // 52.7% > 50%
  EXPECT_EQ(by["MLP"].gpu_ns, 35 * us);
  EXPECT_EQ(by["MLP"].verdict, "above");  // 47.3% > 40%
  EXPECT_EQ(by["Norm"].gpu_ns, 14 * us);
  EXPECT_EQ(by["Norm"].ideal_lo, -1);  // the seed gives no ideal for it
  EXPECT_EQ(by["(model: other)"].gpu_ns, 0);
  EXPECT_EQ(by["(model: other)"].verdict, "below");
  EXPECT_EQ(by["Sampling"].gpu_ns, 8 * us);
  EXPECT_DOUBLE_EQ(by["Sampling"].share, 8.0 / 210.0);
  EXPECT_EQ(by["Sampling"].verdict, "within");  // 3.8%
  EXPECT_EQ(by["Launch"].gpu_ns, 86 * us);      // everything ran on the GPU was launched in it
  EXPECT_EQ(by["Wait"].cpu_ns, 50 * us);
}

TEST(TimePerRange, OnTheCpuBackendTheSharesAreCpuTime) {
  TraceData d = fixture();
  d.activities.clear();
  const Profile p = time_per_range(d, link_gpu_activities(d));
  for (const RangeShare& r : p.ranges)
    if (r.name == "ModelExecutor") {
      EXPECT_FALSE(r.on_gpu);
      EXPECT_EQ(r.cpu_ns, 56 * us);  // 2 x 28
      EXPECT_DOUBLE_EQ(r.share, 56.0 / 210.0);
    } else if (r.name == "Attention") {
      EXPECT_DOUBLE_EQ(r.model_share, 24.0 / 56.0);
    }
}

TEST(TopKernels, ByTotalTimeWithCountsAndShares) {
  const auto k = top_kernels(fixture(), 3);
  ASSERT_EQ(k.size(), 3u);
  EXPECT_NE(k[0].name.find("gemm"), std::string::npos);
  EXPECT_EQ(k[0].total_ns, 35 * us);
  EXPECT_EQ(k[0].count, 2);
  EXPECT_EQ(k[0].min_ns, 5 * us);
  EXPECT_EQ(k[0].max_ns, 30 * us);
  EXPECT_DOUBLE_EQ(k[0].share, 35.0 / 82.0);
  EXPECT_NE(k[1].name.find("paged_attention"), std::string::npos);
  EXPECT_EQ(k[1].total_ns, 25 * us);
  EXPECT_NE(k[2].name.find("rms_norm"), std::string::npos);
}

TEST(LaunchOverhead, KernelsShorterThanTheirLaunchCall) {
  const TraceData d = fixture();
  const LaunchStats s = launch_overhead(d, link_gpu_activities(d));
  EXPECT_EQ(s.kernels, 8);
  EXPECT_EQ(s.launched, 8);
  EXPECT_EQ(s.shorter_than_launch, 2);  // the 4 us sampling kernels, each launched by a 5 us call
  EXPECT_DOUBLE_EQ(s.fraction, 0.25);
  EXPECT_DOUBLE_EQ(s.median_launch_ns, 1.0 * us);
  EXPECT_DOUBLE_EQ(s.median_kernel_ns, 5.0 * us);
  EXPECT_DOUBLE_EQ(s.median_queue_ns, 20.0 * us);  // (18 + 22) / 2
}

TEST(PerStep, EachStepsStagesAndGpuSpan) {
  const TraceData d = fixture();
  const auto steps = per_step(d, link_gpu_activities(d));
  ASSERT_EQ(steps.size(), 2u);
  const StepStats& s5 = steps[0];
  EXPECT_EQ(s5.step, 5);
  EXPECT_TRUE(s5.complete);
  EXPECT_EQ(s5.cpu_end_ns - s5.cpu_start_ns, 160 * us);
  EXPECT_EQ(s5.stage_ns.at("Launch"), 40 * us);
  EXPECT_EQ(s5.stage_ns.count("ModelExecutor"), 0u);  // top-level stages only
  EXPECT_EQ(s5.kernels, 4);
  EXPECT_EQ(s5.gpu_end_ns - s5.gpu_start_ns, 74 * us);
  EXPECT_EQ(s5.kernel_ns, 64 * us);
  EXPECT_EQ(s5.h2d_ns, 2 * us);
  EXPECT_EQ(s5.d2h_ns, 1 * us);
  EXPECT_EQ(steps[1].kernel_ns, 18 * us);
}

TEST(ComputeMetrics, AllOfItAndItsJson) {
  const TraceMetrics m = compute_metrics(fixture());
  EXPECT_TRUE(m.has_gpu);
  ASSERT_EQ(m.busy.size(), 1u);
  EXPECT_EQ(m.idle.size(), 3u);
  const nlohmann::json j = to_json(m);
  EXPECT_DOUBLE_EQ(j["gpu_busy"][0]["busy_fraction"].get<double>(), 82.0 / 118.0);
  EXPECT_DOUBLE_EQ(j["idle_by_stream"][1]["host_wait_ms"].get<double>(), 0.01);
  EXPECT_EQ(j["h2d_compute_overlap"]["step_pairs_overlapped"], 1);
  EXPECT_EQ(j["steps"].size(), 2u);
  const std::string table = format_metrics(m);
  for (const char* s : {"GPU 0 busy: 69.5%", "Scheduler", "2-5%", "host wait", "compute",
                        "1 of 1 step pairs", "2 of 8 launched kernels"})
    EXPECT_NE(table.find(s), std::string::npos) << "missing '" << s << "' in\n" << table;
}

TEST(ComputeMetrics, ACpuOnlyTraceSaysSo) {
  TraceData d = fixture();
  d.activities.clear();
  const TraceMetrics m = compute_metrics(d);
  EXPECT_FALSE(m.has_gpu);
  EXPECT_TRUE(m.busy.empty());
  EXPECT_NE(format_metrics(m).find("CPU ranges only"), std::string::npos);
}

}  // namespace
}  // namespace day18::trace
