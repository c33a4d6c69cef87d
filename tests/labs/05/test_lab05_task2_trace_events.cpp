// Lab 05, task 2: one GPU activity record as Chrome trace events (append_gpu_activity in
// engine/profiling/chrome_trace.cpp), on the hand-made fixture. Its times (us since the origin):
// step 5's attention kernel (correlation 503) ran [42, 62] on the compute stream (id 14), launched
// by a cudaLaunchKernel that began at 27 on the engine thread (tid 100) inside Launch >
// ModelExecutor > Attention; its H2D copy (501) ran [23, 25] on the h2d stream (13), 4096 bytes.
#include <map>

#include "engine/profiling/chrome_trace.h"
#include "engine/profiling/trace_check.h"
#include "tests/labs/05/lab05.h"

namespace day18 {
namespace {

using lab05::fixture;
using lab05::index_of;
using nlohmann::json;
using trace::ActivityKind;
using trace::TraceLayout;

// The events append_gpu_activity makes for activity `i` of the fixture (flow id i + 1).
json events_of(const trace::TraceData& d, int i) {
  const std::vector<trace::GpuLink> links = trace::link_gpu_activities(d);
  json ev = json::array();
  trace::append_gpu_activity(ev, d, d.activities[i], links[i], TraceLayout{}, i + 1);
  return ev;
}

TEST(Lab05_Task2_TraceEvents, AKernelIsAnXSliceOnItsStreamsTrackInMicroseconds) {
  const trace::TraceData d = fixture();
  const json ev = events_of(d, index_of(d, ActivityKind::kernel, 503));
  ASSERT_FALSE(ev.empty());
  const json& x = ev[0];
  EXPECT_EQ(x["ph"], "X");
  EXPECT_EQ(x["cat"], "kernel");
  EXPECT_EQ(x["name"], d.activities[index_of(d, ActivityKind::kernel, 503)].name);
  EXPECT_EQ(x["pid"], 100) << "GPU 0's process is pid 100 (TraceLayout::gpu_pid)";
  EXPECT_EQ(x["tid"], 14) << "its stream's track: tid = the stream id";
  EXPECT_DOUBLE_EQ(x["ts"].get<double>(), 42.0) << "ts: microseconds since data.origin_ns";
  EXPECT_DOUBLE_EQ(x["dur"].get<double>(), 20.0) << "dur: microseconds, end - start";
}

TEST(Lab05_Task2_TraceEvents, AKernelsArgsCarryCorrelationStreamGridBlockRangeAndStep) {
  const trace::TraceData d = fixture();
  const json ev = events_of(d, index_of(d, ActivityKind::kernel, 503));
  ASSERT_FALSE(ev.empty());
  const json& a = ev[0]["args"];
  EXPECT_EQ(a["correlation"], 503);
  EXPECT_EQ(a["stream"], "compute") << "the stream's name (trace::stream_name), not its id";
  EXPECT_EQ(a["grid"], json::array({1, 4, 1}));
  EXPECT_EQ(a["block"], json::array({128, 1, 1}));
  EXPECT_EQ(a["range"], "Attention");
  EXPECT_EQ(a["range_path"], "Launch > ModelExecutor > Attention");
  EXPECT_EQ(a["step"], 5);
}

TEST(Lab05_Task2_TraceEvents, ACopyCarriesItsBytesKindAndMemory) {
  const trace::TraceData d = fixture();
  const json ev = events_of(d, index_of(d, ActivityKind::memcpy, 501));
  ASSERT_FALSE(ev.empty());
  const json& x = ev[0];
  EXPECT_EQ(x["cat"], "memcpy");
  EXPECT_EQ(x["tid"], 13);
  EXPECT_DOUBLE_EQ(x["ts"].get<double>(), 23.0);
  EXPECT_DOUBLE_EQ(x["dur"].get<double>(), 2.0);
  EXPECT_EQ(x["args"]["bytes"], 4096);
  EXPECT_EQ(x["args"]["copy_kind"], "HtoD");
  EXPECT_EQ(x["args"]["memory"], "Pinned");
  EXPECT_EQ(x["args"]["stream"], "h2d");
  EXPECT_FALSE(x["args"].contains("grid")) << "grid and block are a kernel's";
}

TEST(Lab05_Task2_TraceEvents, AFlowGoesFromTheLaunchCallToItsKernel) {
  const trace::TraceData d = fixture();
  const int k = index_of(d, ActivityKind::kernel, 503);
  const json ev = events_of(d, k);
  ASSERT_EQ(ev.size(), 3u) << "the slice, then the flow's start \"s\" and finish \"f\"";
  const json &s = ev[1], &f = ev[2];
  EXPECT_EQ(s["ph"], "s");
  EXPECT_EQ(s["id"], k + 1);
  EXPECT_EQ(s["pid"], 1) << "on the CPU process";
  EXPECT_EQ(s["tid"], 100) << "on the thread that made the call (trace::cpu_thread_of)";
  EXPECT_DOUBLE_EQ(s["ts"].get<double>(), 27.0) << "when the launch call began";
  EXPECT_EQ(f["ph"], "f");
  EXPECT_EQ(f["bp"], "e") << "binding point \"e\": the enclosing slice, the kernel itself";
  EXPECT_EQ(f["id"], k + 1) << "the same id as its \"s\"";
  EXPECT_EQ(f["pid"], 100);
  EXPECT_EQ(f["tid"], 14);
  EXPECT_DOUBLE_EQ(f["ts"].get<double>(), 42.0) << "when the kernel began";
  for (const json& e : ev) EXPECT_TRUE(e.contains("name") && e.contains("cat")) << e.dump();
}

TEST(Lab05_Task2_TraceEvents, AnOpWithoutALaunchCallHasNoArrow) {
  trace::TraceData d = fixture();
  const int k = index_of(d, ActivityKind::kernel, 605);
  d.activities[k].correlation = 9999;  // its call is not in the trace
  const json ev = events_of(d, k);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["ph"], "X");
  EXPECT_FALSE(ev[0]["args"].contains("step")) << "unlinked: no range, no step";
}

TEST(Lab05_Task2_TraceEvents, TheWholeFixtureIsAValidTraceWithEveryFlowPaired) {
  const json t = trace::to_chrome_trace(fixture());
  const auto problems = trace::check_chrome_trace(t);
  EXPECT_TRUE(problems.empty()) << trace::join_problems(problems);
  std::map<std::string, int> ph;
  for (const json& e : t["traceEvents"]) ++ph[e["ph"].get<std::string>()];
  EXPECT_EQ(ph["s"], 12) << "8 kernels + 4 copies, each launched by a call in the trace";
  EXPECT_EQ(ph["f"], 12);
}

}  // namespace
}  // namespace day18
