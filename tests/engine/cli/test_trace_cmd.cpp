// `day18 trace` end to end: on the CPU backend (what CI runs) it writes a valid Chrome trace of
// the engine's ranges, nested, step by step, with its metrics and records; bad flags exit 2 naming
// the flag; on a GPU the trace has the GPU's stream tracks. And scripts/plot_timeline.py's own
// tests (tests/scripts/test_plot_timeline.py) run from here, so ctest runs them too.
// Runs the day18 executable next to this test binary (build/engine/day18), or $DAY18_BIN.
#include <gtest/gtest.h>

#include <unistd.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>

#include "engine/profiling/trace_check.h"
#include "engine/profiling/trace_events.h"
#include "tests/support/test_support.h"

namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string day18_binary() {
  if (const char* env = std::getenv("DAY18_BIN")) return env;
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  return (exe.parent_path().parent_path() / "engine" / "day18").string();
}

struct Result {
  int rc;
  std::string out;
};

Result shell(const std::string& cmd, int timeout_s = 120) {
  const std::string full = "timeout -s KILL " + std::to_string(timeout_s) + " " + cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  EXPECT_NE(p, nullptr) << full;
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return {rc == 137 ? -1 : rc, out};
}

Result day18(const std::string& args) {
  return shell(day18_binary() + " " + args);
}

// A fresh folder for one test's files.
fs::path scratch(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("day18_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

json read_json(const fs::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f.good()) << p;
  return json::parse(f);
}

const char* const kSmall = "--preset tiny --requests 4 --prompt-len 16 --output-len 12";

TEST(TraceCli, OnTheCpuBackendWritesAValidTraceOfTheEngineRangesNested) {
  const fs::path d = scratch("trace_cpu");
  const Result r = day18(std::string("trace --device cpu ") + kSmall + " --steps 4 --out " +
                         (d / "t.json").string() + " --records " + (d / "r.json").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("CPU ranges only"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seed's ideal profile"), std::string::npos) << r.out;
  const json t = read_json(d / "t.json");
  const auto problems = day18::trace::check_chrome_trace(t);
  EXPECT_TRUE(problems.empty()) << day18::trace::join_problems(problems);

  // Every stage and model range, on one engine thread, tagged with its step.
  std::set<std::string> names;
  std::map<int64_t, std::map<std::string, std::pair<double, double>>> by_step;  // first of each
  std::set<int64_t> tids;
  for (const json& e : t["traceEvents"]) {
    if (e["ph"] != "X") continue;
    EXPECT_EQ(e["cat"], "engine") << "a CPU-backend trace has engine ranges only: " << e.dump();
    names.insert(e["name"]);
    tids.insert(e["tid"].get<int64_t>());
    const double a = e["ts"], b = a + e["dur"].get<double>();
    by_step[e["args"]["step"]].emplace(e["name"], std::pair{a, b});
    EXPECT_EQ(e["pid"], 1);
  }
  for (const char* n : {"Scheduler", "PrepareInputs", "Launch", "ModelExecutor", "Attention", "MLP",
                        "Norm", "Sampling", "Wait", "ProcessOutputs"})
    EXPECT_TRUE(names.count(n)) << "no " << n << " range in the trace";
  EXPECT_EQ(tids.size(), 1u);
  // Nested: each step's ModelExecutor inside its Launch, its Attention inside the ModelExecutor;
  // and the stages of a step in order.
  int checked = 0;
  for (const auto& [step, r] : by_step) {
    if (!r.count("Launch") || !r.count("Wait")) continue;
    ++checked;
    const auto launch = r.at("Launch"), model = r.at("ModelExecutor"), attn = r.at("Attention");
    EXPECT_LE(launch.first, model.first) << step;
    EXPECT_LE(model.second, launch.second) << step;
    EXPECT_LE(model.first, attn.first) << step;
    EXPECT_LE(attn.second, model.second) << step;
    EXPECT_LE(r.at("Scheduler").second, r.at("PrepareInputs").first) << step;
    EXPECT_LE(r.at("PrepareInputs").second, launch.first) << step;
    EXPECT_LE(launch.second, r.at("Wait").first) << step;
    EXPECT_LE(r.at("Wait").second, r.at("ProcessOutputs").first) << step;
  }
  EXPECT_GE(checked, 3);

  // The metrics file beside it, and the raw records, which nest too.
  const json m = read_json(d / "t.metrics.json");
  EXPECT_EQ(m["has_gpu"], false);
  EXPECT_FALSE(m["profile"]["ranges"].empty());
  EXPECT_EQ(m["meta"]["backend"], "cpu");
  const day18::trace::TraceData rec = day18::trace::read_trace_data((d / "r.json").string());
  EXPECT_TRUE(day18::trace::check_nesting(rec).empty())
      << day18::trace::join_problems(day18::trace::check_nesting(rec));
  EXPECT_TRUE(rec.activities.empty());
  fs::remove_all(d);
}

TEST(TraceCli, TheMetricsPathCanBeChosen) {
  const fs::path d = scratch("trace_metrics");
  const Result r = day18(std::string("trace --device cpu ") + kSmall + " --steps 2 --out " +
                         (d / "t").string() + " --metrics " + (d / "m.json").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(fs::exists(d / "t"));
  EXPECT_TRUE(fs::exists(d / "m.json"));
  EXPECT_FALSE(fs::exists(d / "t.metrics.json"));
  fs::remove_all(d);
}

TEST(TraceCli, BadFlagsExitWithStatus2AndAMessageNamingTheFlag) {
  const fs::path d = scratch("trace_bad");
  const std::string out = " --out " + (d / "t.json").string();
  const std::pair<std::string, std::string> cases[] = {
      {"trace --device cpu", "--out"},  // required
      {"trace --device cpu --steps 0" + out, "--steps"},
      {"trace --device cpu --steps abc" + out, "--steps"},
      {"trace --device cpu --skip-steps -1" + out, "--skip-steps"},
      {"trace --device cpu --kernel-gap-us fast" + out, "--kernel-gap-us"},
      {"trace --device gpu" + out, "--device"},
      {"trace --device cpu --out /nonexistent-folder/t.json", "--out"},
      {"trace --device cpu --metrics /nonexistent-folder/m.json" + out, "--metrics"},
      {"trace --device cpu --cupti-buffer-mib 0" + out, "--cupti-buffer-mib"},
      {std::string("trace --device cpu ") + kSmall + " --skip-steps 1000" + out, "--skip-steps"},
  };
  for (const auto& [args, flag] : cases) {
    const Result r = day18(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(flag), std::string::npos)
        << args << ": the message should name " << flag << ":\n"
        << r.out;
  }
  EXPECT_FALSE(fs::exists(d / "t.json"));
  fs::remove_all(d);
}

TEST(TraceCli, OnAGpuTheTraceHasAProcessPerGpuWithTheExecutorsStreams) {
  DAY18_REQUIRE_GPU();
  const fs::path d = scratch("trace_gpu");
  const Result r = day18(std::string("trace --device cuda ") + kSmall + " --steps 4 --out " +
                         (d / "t.json").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("CUPTI:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GPU 0 busy"), std::string::npos) << r.out;
  const json t = read_json(d / "t.json");
  EXPECT_TRUE(day18::trace::check_chrome_trace(t).empty())
      << day18::trace::join_problems(day18::trace::check_chrome_trace(t));
  std::set<std::string> tracks;
  int kernels = 0;
  for (const json& e : t["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name" && e["pid"] == 100)
      tracks.insert(e["args"]["name"]);
    kernels += e["ph"] == "X" && e["cat"] == "kernel";
  }
  for (const char* s : {"h2d", "compute", "d2h"}) EXPECT_TRUE(tracks.count(s)) << s;
  EXPECT_GT(kernels, 0);
  fs::remove_all(d);
}

TEST(PlotBenchmarks, ItsPythonTestsPass) {
  // scripts/plot_benchmarks.py: a few figures, one question each, sized for a screen; targets
  // met / missed judged on the benchmark each target names (tests/scripts/test_plot_benchmarks.py).
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = day18::testing::source_dir();
  const Result help = shell("python3 " + src + "/scripts/plot_benchmarks.py --help");
  ASSERT_EQ(help.rc, 0) << help.out;
  EXPECT_NE(help.out.find("--strict"), std::string::npos) << help.out;
  const std::string venv = src + "/.venv/bin/python";
  const std::string py = fs::exists(venv) ? venv : "python3";
  const Result r = shell(py + " " + src + "/tests/scripts/test_plot_benchmarks.py", 300);
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(ResultsTable, ItsPythonTestsPass) {
  // scripts/results_table.py: the GPUs' recorded results side by side, every number from the
  // files; docs/benchmarks.md's generated blocks must match reference/results
  // (tests/scripts/test_results_table.py).
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = day18::testing::source_dir();
  const Result r = shell("python3 " + src + "/tests/scripts/test_results_table.py", 300);
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(NcuStepTable, ItsPythonTestsPass) {
  // scripts/ncu_step_table.py: one engine step's per-kernel table from an ncu --csv export of a
  // few steps, on a hand-made fixture and the recorded H200 files, whose README must hold the
  // tables it prints now (tests/scripts/test_ncu_step_table.py).
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = day18::testing::source_dir();
  const Result r = shell("python3 " + src + "/tests/scripts/test_ncu_step_table.py", 300);
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(GpuResults, ItsPythonTestsPass) {
  // scripts/gpu_results.sh on a fake build and a fake nvidia-smi: parts, stages, the tarball and
  // its provenance, the deadline (tests/scripts/test_gpu_results.py).
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = day18::testing::source_dir();
  const Result r = shell("python3 " + src + "/tests/scripts/test_gpu_results.py", 300);
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(PlotTimeline, ItsPythonTestsPass) {
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = day18::testing::source_dir();
  const Result help = shell("python3 " + src + "/scripts/plot_timeline.py --help");
  ASSERT_EQ(help.rc, 0) << help.out;
  EXPECT_NE(help.out.find("--steps"), std::string::npos) << help.out;
  // Prefer the project's venv (matplotlib); the script's tests skip the drawing without it.
  const std::string venv = src + "/.venv/bin/python";
  const std::string py = fs::exists(venv) ? venv : "python3";
  const Result r = shell(py + " " + src + "/tests/scripts/test_plot_timeline.py", 300);
  EXPECT_EQ(r.rc, 0) << r.out;
  std::cout << r.out.substr(r.out.size() > 600 ? r.out.size() - 600 : 0) << "\n";
}

}  // namespace
