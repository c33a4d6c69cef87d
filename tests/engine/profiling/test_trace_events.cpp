// The trace record model (engine/profiling/trace_events.h): the links from GPU work to its launch
// call and to the engine range around that call, and the fixture format's round trip. The
// fixture is tests/labs/05/fixture_two_steps.json (two decode steps, every time hand-chosen).
#include <gtest/gtest.h>

#include <string>

#include "engine/core/error.h"
#include "engine/profiling/trace_events.h"
#include "tests/support/test_support.h"

namespace day18::trace {
namespace {

TraceData fixture() {
  return read_trace_data(testing::source_dir() + "/tests/labs/05/fixture_two_steps.json");
}

int find(const TraceData& d, ActivityKind kind, uint32_t correlation) {
  for (size_t i = 0; i < d.activities.size(); ++i)
    if (d.activities[i].kind == kind && d.activities[i].correlation == correlation)
      return static_cast<int>(i);
  return -1;
}

TEST(TraceLinks, EachKernelLinksToItsLaunchCallAndTheInnermostRangeAroundIt) {
  const TraceData d = fixture();
  const std::vector<GpuLink> links = link_gpu_activities(d);
  ASSERT_EQ(links.size(), d.activities.size());
  // corr 502: the layer's norm kernel, launched inside Launch > ModelExecutor > Attention > Norm.
  const int norm = find(d, ActivityKind::kernel, 502);
  ASSERT_GE(norm, 0);
  const GpuLink& l = links[norm];
  ASSERT_GE(l.launch, 0);
  EXPECT_EQ(d.activities[l.launch].name, "cudaLaunchKernel");
  EXPECT_EQ(d.activities[l.launch].correlation, 502u);
  ASSERT_GE(l.range, 0);
  EXPECT_EQ(d.ranges[l.range].name, "Norm");
  EXPECT_EQ(l.range_path,
            (std::vector<std::string>{"Launch", "ModelExecutor", "Attention", "Norm"}));
  EXPECT_EQ(l.step, 5);
  // corr 605: step 6's sampling kernel; corr 601: step 6's H2D copy, launched in Launch itself.
  EXPECT_EQ(links[find(d, ActivityKind::kernel, 605)].range_path,
            (std::vector<std::string>{"Launch", "Sampling"}));
  EXPECT_EQ(links[find(d, ActivityKind::memcpy, 601)].range_path,
            (std::vector<std::string>{"Launch"}));
  EXPECT_EQ(links[find(d, ActivityKind::memcpy, 601)].step, 6);
  // API calls and sync records are not GPU work: no link.
  EXPECT_EQ(links[find(d, ActivityKind::sync, 507)].launch, -1);
}

TEST(TraceLinks, ARuntimeCallIsPreferredToTheDriverCallInsideIt) {
  TraceData d;
  d.threads.push_back({1, 0, "engine"});
  Activity rt, drv, k;
  rt.kind = ActivityKind::runtime_api;
  rt.name = "cudaLaunchKernel";
  rt.start_ns = 100, rt.end_ns = 200, rt.correlation = 9, rt.thread = 1;
  drv = rt;
  drv.kind = ActivityKind::driver_api;
  drv.name = "cuLaunchKernel";
  drv.start_ns = 120, drv.end_ns = 180;
  k.kind = ActivityKind::kernel;
  k.start_ns = 300, k.end_ns = 400, k.correlation = 9;
  d.activities = {drv, rt, k};
  EXPECT_EQ(launch_of(d, 9), 1);
  EXPECT_EQ(link_gpu_activities(d)[2].launch, 1);
  EXPECT_EQ(launch_of(d, 10), -1);
}

TEST(TraceLinks, ACuptiThreadIdMapsToTheRecordedThread) {
  const TraceData d = fixture();
  EXPECT_EQ(cpu_thread_of(d, 7777), 100u);  // api_tid
  EXPECT_EQ(cpu_thread_of(d, 100), 100u);   // tid
  TraceData two = d;
  two.threads.push_back({200, 8888, "other"});
  EXPECT_EQ(cpu_thread_of(two, 8888), 200u);
  EXPECT_EQ(cpu_thread_of(two, 4), 4u);  // unknown, two threads: itself
}

TEST(TraceLinks, InnermostRangeIsTheDeepestThatContainsTheInterval) {
  const TraceData d = fixture();
  const int64_t o = d.origin_ns;
  const int r = innermost_range(d, 100, o + 24'000, o + 25'000);
  ASSERT_GE(r, 0);
  EXPECT_EQ(d.ranges[r].name, "Norm");
  const int s = innermost_range(d, 100, o + 52'000, o + 57'000);
  EXPECT_EQ(d.ranges[s].name, "Sampling");
  EXPECT_EQ(innermost_range(d, 100, o + 59'000, o + 61'000), -1);  // crosses Launch's end
  EXPECT_EQ(innermost_range(d, 3, o + 24'000, o + 25'000), -1);    // no such thread
}

TEST(TraceRecords, TheFixtureFormatRoundTrips) {
  const TraceData d = fixture();
  const TraceData e = trace_data_from_json(to_json(d));
  EXPECT_EQ(to_json(e), to_json(d));
  ASSERT_EQ(e.activities.size(), 28u);
  ASSERT_EQ(e.ranges.size(), 20u);
  EXPECT_EQ(e.activities[17].grid, (std::array<int32_t, 3>{1, 1, 1}));
  EXPECT_EQ(e.activities[16].copy_kind, "HtoD");
  EXPECT_EQ(e.activities[16].bytes, 4096u);
  EXPECT_EQ(stream_name(e, 0, 14), "compute");
  EXPECT_EQ(stream_name(e, 0, 99), "stream 99");
}

TEST(TraceRecords, BadRecordsAreRejectedNamingTheField) {
  nlohmann::json j = to_json(fixture());
  j["activities"][3].erase("start_ns");
  EXPECT_INVALID_NAMING(trace_data_from_json(j), "activities[3].start_ns");
  j = to_json(fixture());
  j["activities"][0]["kind"] = "kernal";
  EXPECT_INVALID_NAMING(trace_data_from_json(j), "'kernal'");
  j = to_json(fixture());
  j["ranges"][2]["end_ns"] = "soon";
  EXPECT_INVALID_NAMING(trace_data_from_json(j), "ranges[2].end_ns");
  j = to_json(fixture());
  j["activities"][5]["end_ns"] = 0;
  EXPECT_INVALID_NAMING(trace_data_from_json(j), "activities[5] ends");
  EXPECT_INVALID_NAMING(read_trace_data("/nonexistent/x.json"), "/nonexistent/x.json");
}

}  // namespace
}  // namespace day18::trace
