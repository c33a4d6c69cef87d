// The Chrome Trace Event Format writer (engine/profiling/chrome_trace.h) on the hand-made fixture
// (tests/labs/05/fixture_two_steps.json): the fields Perfetto's JSON importer needs (ph, ts, dur,
// pid, tid, name), the metadata events, paired flows, nesting, and the write through a temporary
// file and a rename. Also the checker (trace_check.h) catches each kind of broken trace.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "engine/core/error.h"
#include "engine/profiling/chrome_trace.h"
#include "engine/profiling/trace_check.h"
#include "tests/support/test_support.h"

namespace day18::trace {
namespace {
using nlohmann::json;

TraceData fixture() {
  return read_trace_data(testing::source_dir() + "/tests/labs/05/fixture_two_steps.json");
}

// The metadata value `key` of the "M" event `what` on (pid, tid), or null.
json meta(const json& trace, const std::string& what, int64_t pid, int64_t tid, const char* key) {
  for (const json& e : trace["traceEvents"])
    if (e["ph"] == "M" && e["name"] == what && e["pid"] == pid && e["tid"] == tid)
      return e["args"][key];
  return nullptr;
}

TEST(ChromeTrace, TheFixtureTraceHasEverythingPerfettosImporterNeeds) {
  const json t = to_chrome_trace(fixture());
  const auto problems = check_chrome_trace(t);
  EXPECT_TRUE(problems.empty()) << join_problems(problems);
  EXPECT_EQ(t["displayTimeUnit"], "ms");
  EXPECT_EQ(t["otherData"]["dropped_records"], 0);
  for (const json& e : t["traceEvents"])
    for (const char* k : {"ph", "name", "pid", "tid", "ts"}) EXPECT_TRUE(e.contains(k)) << e.dump();
}

TEST(ChromeTrace, OneProcessForTheCpuAndOneForTheGpuWithATrackPerStream) {
  const json t = to_chrome_trace(fixture());
  EXPECT_EQ(meta(t, "process_name", 1, 0, "name"), "CPU: day18 (pid 4242)");
  EXPECT_EQ(meta(t, "process_sort_index", 1, 0, "sort_index"), 0);
  EXPECT_EQ(meta(t, "thread_name", 1, 100, "name"), "engine (main thread)");
  EXPECT_EQ(meta(t, "thread_name", 1, TraceLayout::kSyncTid, "name"), "CUDA synchronization");
  EXPECT_EQ(meta(t, "process_name", 100, 0, "name"), "GPU 0: NVIDIA H200 (hand-made fixture)");
  EXPECT_EQ(meta(t, "process_sort_index", 100, 0, "sort_index"), 1);
  const std::map<int, std::pair<std::string, int>> streams = {
      {13, {"h2d", 0}}, {14, {"compute", 1}}, {15, {"d2h", 2}}, {16, {"cache", 3}}};
  for (const auto& [tid, want] : streams) {
    EXPECT_EQ(meta(t, "thread_name", 100, tid, "name"), want.first) << tid;
    EXPECT_EQ(meta(t, "thread_sort_index", 100, tid, "sort_index"), want.second) << tid;
  }
}

TEST(ChromeTrace, EngineRangesAndApiCallsAreSlicesOnTheEngineThread) {
  const json t = to_chrome_trace(fixture());
  int ranges = 0, api = 0, sync = 0;
  for (const json& e : t["traceEvents"]) {
    if (e["ph"] != "X") continue;
    if (e["cat"] == "engine") {
      ++ranges;
      EXPECT_EQ(e["pid"], 1);
      EXPECT_EQ(e["tid"], 100);
      if (e["name"] == "Attention" && e["args"]["step"] == 6) {
        EXPECT_DOUBLE_EQ(e["ts"].get<double>(), 83.0);  // us since origin_ns
        EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 12.0);
        EXPECT_EQ(e["args"]["depth"], 2);
      }
    } else if (e["cat"] == "cuda_runtime") {
      ++api;
      EXPECT_EQ(e["tid"], 100);  // CUPTI's thread id 7777 is the engine thread
    } else if (e["cat"] == "cuda_sync") {
      ++sync;
      EXPECT_EQ(e["tid"], TraceLayout::kSyncTid);
      EXPECT_EQ(e["args"]["stream"], "d2h");
    }
  }
  EXPECT_EQ(ranges, 20);
  EXPECT_EQ(api, 14);
  EXPECT_EQ(sync, 2);
}

TEST(ChromeTrace, EveryGpuOpIsASliceOnItsStreamWithAFlowFromItsLaunchCall) {
  const TraceData d = fixture();
  const json t = to_chrome_trace(d);
  std::map<int64_t, json> starts, finishes;
  int ops = 0;
  for (const json& e : t["traceEvents"]) {
    if (e["ph"] == "s") starts[e["id"]] = e;
    if (e["ph"] == "f") finishes[e["id"]] = e;
    if (e["ph"] == "X" && (e["cat"] == "kernel" || e["cat"] == "memcpy")) ++ops;
  }
  EXPECT_EQ(ops, 12);
  EXPECT_EQ(starts.size(), 12u);
  EXPECT_EQ(finishes.size(), 12u);
  // The attention kernel of step 5 is activity 18: flow id 19, from its call at 27 us to 42 us.
  ASSERT_TRUE(starts.count(19) && finishes.count(19));
  EXPECT_EQ(starts[19]["pid"], 1);
  EXPECT_EQ(starts[19]["tid"], 100);
  EXPECT_DOUBLE_EQ(starts[19]["ts"].get<double>(), 27.0);
  EXPECT_EQ(finishes[19]["pid"], 100);
  EXPECT_EQ(finishes[19]["tid"], 14);
  EXPECT_EQ(finishes[19]["bp"], "e");
  EXPECT_DOUBLE_EQ(finishes[19]["ts"].get<double>(), 42.0);
}

TEST(ChromeTrace, ATraceOfCpuRangesOnlyHasNoGpuProcess) {
  TraceData d = fixture();
  d.activities.clear();
  const json t = to_chrome_trace(d);
  EXPECT_TRUE(check_chrome_trace(t).empty()) << join_problems(check_chrome_trace(t));
  for (const json& e : t["traceEvents"]) EXPECT_EQ(e["pid"], 1) << e.dump();
  EXPECT_TRUE(meta(t, "thread_name", 1, TraceLayout::kSyncTid, "name").is_null());
}

TEST(ChromeTrace, IsWrittenThroughATemporaryFileAndARename) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("day18_trace_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path out = dir / "t.json";
  std::ofstream(out) << "old content";
  write_chrome_trace(fixture(), out.string(), "--out");
  std::ifstream f(out);
  const json t = json::parse(f);
  EXPECT_TRUE(check_chrome_trace(t).empty());
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u) << "a temporary file was left behind in " << dir;
  EXPECT_INVALID_NAMING(write_chrome_trace(fixture(), (dir / "no" / "t.json").string(), "--out"),
                        "--out");
  fs::remove_all(dir);
}

// scripts/plot_timeline.py's test fixture is this writer's output for the records fixture, so
// the script is tested on exactly what `day18 trace` writes. DAY18_UPDATE_FIXTURES=1 rewrites it.
TEST(ChromeTrace, ThePlotScriptsFixtureIsTheWritersOutputForTheRecordsFixture) {
  const std::string path =
      testing::source_dir() + "/tests/scripts/fixtures/timeline_two_steps.json";
  const json want = to_chrome_trace(fixture());
  if (const char* u = std::getenv("DAY18_UPDATE_FIXTURES"); u && std::string(u) == "1") {
    std::ofstream(path) << want.dump(1) << "\n";
    GTEST_SKIP() << "rewrote " << path;
  }
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << path << " is missing: DAY18_UPDATE_FIXTURES=1 writes it";
  EXPECT_EQ(json::parse(f), want)
      << path << " differs from the writer's output: if the writer changed on purpose, rewrite it "
      << "with DAY18_UPDATE_FIXTURES=1 build/tests/test_engine_profiling "
      << "--gtest_filter='ChromeTrace.ThePlotScripts*'";
}

// ---- the checker finds what is broken ----------------------------------------------------------
json tiny_trace() {
  return json::parse(R"({"traceEvents": [
    {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "CPU"}},
    {"ph": "M", "name": "thread_name", "pid": 1, "tid": 5, "args": {"name": "engine"}},
    {"ph": "M", "name": "process_name", "pid": 100, "tid": 0, "args": {"name": "GPU"}},
    {"ph": "M", "name": "thread_name", "pid": 100, "tid": 14, "args": {"name": "compute"}},
    {"ph": "X", "name": "Launch", "pid": 1, "tid": 5, "ts": 0, "dur": 10},
    {"ph": "X", "name": "cudaLaunchKernel", "pid": 1, "tid": 5, "ts": 2, "dur": 1},
    {"ph": "X", "name": "k", "pid": 100, "tid": 14, "ts": 5, "dur": 3},
    {"ph": "s", "name": "launch", "id": 1, "pid": 1, "tid": 5, "ts": 2},
    {"ph": "f", "bp": "e", "name": "launch", "id": 1, "pid": 100, "tid": 14, "ts": 5}]})");
}

TEST(TraceCheck, AcceptsAWellFormedTrace) {
  EXPECT_TRUE(check_chrome_trace(tiny_trace()).empty())
      << join_problems(check_chrome_trace(tiny_trace()));
}

TEST(TraceCheck, FindsEachKindOfBrokenTrace) {
  auto broken = [](auto edit) {
    json t = tiny_trace();
    edit(t["traceEvents"]);
    return join_problems(check_chrome_trace(t));
  };
  EXPECT_NE(broken([](json& e) { e[6].erase("dur"); }).find("dur"), std::string::npos);
  EXPECT_NE(broken([](json& e) { e[6].erase("tid"); }).find("\"tid\""), std::string::npos);
  EXPECT_NE(broken([](json& e) { e[8].erase("bp"); }).find("bp"), std::string::npos);
  EXPECT_NE(broken([](json& e) { e[8]["id"] = 2; }).find("needs one of each"), std::string::npos);
  EXPECT_NE(broken([](json& e) { e[5]["dur"] = 20; }).find("crosses"), std::string::npos);
  EXPECT_NE(broken([](json& e) { e.erase(3); }).find("no thread_name"), std::string::npos);
  EXPECT_NE(broken([](json& e) { e[7]["ts"] = 50; }).find("inside no slice"), std::string::npos);
  EXPECT_NE(check_chrome_trace(json::object()).front().find("traceEvents"), std::string::npos);
}

TEST(TraceCheck, FindsRangesThatDoNotNest) {
  TraceData d = fixture();
  EXPECT_TRUE(check_nesting(d).empty()) << join_problems(check_nesting(d));
  d.ranges[3].end_ns += 100'000;  // ModelExecutor of step 5 now ends after its Launch
  EXPECT_NE(join_problems(check_nesting(d)).find("crosses the end of Launch"), std::string::npos)
      << join_problems(check_nesting(d));
  d = fixture();
  d.ranges[4].depth = 1;  // Attention is at depth 2
  EXPECT_NE(join_problems(check_nesting(d)).find("says depth 1"), std::string::npos);
}

TEST(TraceCheck, GpuRecordsOfTheFixturePassAndABrokenClockIsCaught) {
  TraceData d = fixture();
  EXPECT_TRUE(check_gpu_records(d).empty()) << join_problems(check_gpu_records(d));
  d.activities[18].start_ns = d.activities[2].start_ns - 1;  // before its launch call began
  EXPECT_NE(join_problems(check_gpu_records(d)).find("before its launch call"), std::string::npos);
  d = fixture();
  d.activities[18].correlation = 12345;
  d.dropped_records = 3;
  const std::string p = join_problems(check_gpu_records(d));
  EXPECT_NE(p.find("no launch call"), std::string::npos) << p;
  EXPECT_NE(p.find("dropped 3"), std::string::npos) << p;
}

}  // namespace
}  // namespace day18::trace
