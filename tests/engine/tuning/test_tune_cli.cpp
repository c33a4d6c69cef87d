// `day18 tune` on the command line: bad flags and files are clear errors (exit 2), an
// experiment without a GPU says so and names `tune show` (exit 1), and `tune show` prints a
// recorded run on any machine.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/core/memory.h"
#include "engine/tuning/experiment.h"
#include "tests/engine/tuning/tuning_fixtures.h"

namespace {

std::string day18_binary() {
  if (const char* env = std::getenv("DAY18_BIN")) return env;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
  return (exe.parent_path().parent_path() / "engine" / "day18").string();
}

std::pair<int, std::string> run_day18(const std::string& args) {
  const std::string bin = day18_binary();
  EXPECT_TRUE(std::filesystem::exists(bin)) << bin << " not found: build the day18 target";
  FILE* p = popen((bin + " " + args + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

void expect_has(const std::string& out, std::initializer_list<const char*> parts) {
  for (const char* p : parts)
    EXPECT_NE(out.find(p), std::string::npos) << "lacks '" << p << "':\n" << out;
}

TEST(TuneCli, ShowPrintsARecordedRunOnAnyMachine) {
  const std::string path = ::testing::TempDir() + "/tune_cli_show.json";
  day18::tuning::write_experiment(path, day18::tuning::testing::small_experiment());
  const auto [rc, out] = run_day18("tune show " + path);
  EXPECT_EQ(rc, 0) << out;
  expect_has(out, {"experiment block_size on NVIDIA H200", "256 threads", "best: 256 threads",
                   "not timed"});
  std::filesystem::remove(path);
}

TEST(TuneCli, BadFlagsAndFilesNameTheFlagAndTheValue) {
  {
    const auto [rc, out] = run_day18("tune batch-size --batches 1,0");
    EXPECT_EQ(rc, 2);
    expect_has(out, {"--batches", "0 is not in [1, 1024]"});
  }
  {
    const auto [rc, out] = run_day18("tune batch-size --batches 8,8");
    EXPECT_EQ(rc, 2);
    expect_has(out, {"--batches", "8 is given twice"});
  }
  {
    const auto [rc, out] = run_day18("tune batch-size --presets llama-70b");
    EXPECT_EQ(rc, 2);
    expect_has(out, {"--presets", "llama-70b"});
  }
  {
    const auto [rc, out] = run_day18("tune block-size --budget-s -3");
    EXPECT_EQ(rc, 2);
    expect_has(out, {"--budget-s", "-3"});
  }
  {
    const auto [rc, out] = run_day18("tune block-size --json /nonexistent/dir/x.json");
    EXPECT_EQ(rc, 2);
    expect_has(out, {"--json", "/nonexistent/dir"});
  }
  {
    const auto [rc, out] = run_day18("tune block-size --roof /nonexistent/roof.json");
    EXPECT_EQ(rc, 2);
    expect_has(out, {"/nonexistent/roof.json"});
  }
  {
    const auto [rc, out] = run_day18("tune show /nonexistent/run.json");
    EXPECT_EQ(rc, 2);
    expect_has(out, {"/nonexistent/run.json"});
  }
  {
    const std::string path = ::testing::TempDir() + "/tune_cli_bad.json";
    std::ofstream(path) << R"({"schema": "day18.probe.v1"})";
    const auto [rc, out] = run_day18("tune show " + path);
    EXPECT_EQ(rc, 2);
    expect_has(out, {"schema", "day18.tune.v1"});
    std::filesystem::remove(path);
  }
  {
    const auto [rc, out] = run_day18("tune sideways");
    EXPECT_EQ(rc, 2) << out;
  }
}

TEST(TuneCli, WithoutAGpuTheExperimentSaysSoAndNamesTuneShow) {
  if (day18::cuda_available()) GTEST_SKIP() << "a GPU is here: the experiments run";
  for (const char* e : {"block-size", "batch-size", "precision"}) {
    const auto [rc, out] = run_day18(std::string("tune ") + e + " --quick");
    EXPECT_EQ(rc, 1) << out;
    expect_has(out, {"needs a CUDA GPU", "day18 tune show FILE.json"});
  }
}

}  // namespace
