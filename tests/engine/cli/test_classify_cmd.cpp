// `day18 classify`, `day18 analyze` and `day18 calibrate` end to end on a CPU-only machine: the
// hand-made ncu CSVs and a recorded (hand-made) trace classified, the page written, and every
// bad input an exit status 2 with a message naming the flag, the file and the problem. Runs the
// day18 executable next to this test binary (build/engine/day18), or $DAY18_BIN.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace {

std::string day18_binary() {
  if (const char* env = std::getenv("DAY18_BIN")) return env;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
  return (exe.parent_path().parent_path() / "engine" / "day18").string();
}

std::string src(const std::string& rel) {
  return std::string(DAY18_SOURCE_DIR) + "/" + rel;
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

const std::string kCalib = src("reference/ncu/fixtures/calibration_handmade.csv");
const std::string kTrace = src("tests/engine/profiling/data/decode_trace_handmade.json");

TEST(ClassifyCmd, TheCalibrationFixtureGetsEveryVerdict) {
  const auto [rc, out] = run_day18("classify --ncu " + kCalib);
  ASSERT_EQ(rc, 0) << out;
  expect_has(out, {"MEMORY BOUND (DRAM)", "COMPUTE BOUND (tensor pipe)", "COMPUTE BOUND (FMA pipe)",
                   "LATENCY BOUND (grid below one wave)", "UNCOALESCED",
                   "LATENCY BOUND (occupancy limited by shared memory)", "speed of light", "try:"});
}

TEST(ClassifyCmd, JsonIsWrittenWithTheRoof) {
  const std::string json = ::testing::TempDir() + "/classify_test.json";
  std::filesystem::remove(json);
  const auto [rc, out] = run_day18("classify --brief --ncu " + kCalib +
                                   " --peak-bw 4200 --peak-flops 790 --json " + json);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream f(json);
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["roof"]["peak_bw_gbps"], 4200.0);
  EXPECT_EQ(j["kernels"].size(), 6u);
}

TEST(ClassifyCmd, ARecordedTraceIsClassifiedWithoutAGpu) {
  const auto [rc, out] = run_day18("classify --trace " + kTrace +
                                   " --peak-bw 4200 --peak-flops 790 --peak-fma-flops 67 "
                                   "--preset llama-1b --batch 1 --context 512 --sm-count 132");
  ASSERT_EQ(rc, 0) << out;
  expect_has(out, {"Kernel profile (trace)", "llama-1b decode: 1 sequence x 512 context",
                   "LATENCY BOUND (launch/overhead)", "MEMORY BOUND", "no speed-of-light counters",
                   "median idle gap before a launch"});
}

TEST(ClassifyCmd, TraceStepsSelectsSteps) {
  auto [rc, out] = run_day18("classify --brief --trace " + kTrace +
                             " --peak-bw 4200 --peak-flops 790 --preset llama-1b --batch 1 "
                             "--context 512 --trace-steps 3:3");
  ASSERT_EQ(rc, 0) << out;
  expect_has(out, {"7 launches"});
  std::tie(rc, out) = run_day18("classify --trace " + kTrace +
                                " --peak-bw 4200 --preset llama-1b --batch 1 --context 512 "
                                "--trace-steps 5:2");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"--trace-steps", "5:2"});
  std::tie(rc, out) = run_day18("classify --ncu " + kCalib + " --trace-steps 1");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"--trace-steps selects steps of a --trace"});
}

TEST(ClassifyCmd, ATraceWithoutTheRoofOrThePlanSaysWhatIsMissing) {
  auto [rc, out] =
      run_day18("classify --trace " + kTrace + " --preset llama-1b --batch 1 --context 512");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"day18: error:", "--trace", "--peak-bw"});
  std::tie(rc, out) = run_day18("classify --trace " + kTrace + " --peak-bw 4200");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"cost model", "--preset, --batch and --context"});
  std::tie(rc, out) = run_day18("classify --ncu " + kCalib + " --preset llama-1b");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"needs all of --preset, --batch and --context", "--batch 0"});
}

TEST(ClassifyCmd, BadInputsExitTwoNamingTheProblem) {
  auto [rc, out] = run_day18("classify");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"--ncu FILE.csv", "--trace FILE.json"});
  std::tie(rc, out) =
      run_day18("classify --ncu " + src("tests/engine/profiling/data/malformed_field_count.csv"));
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"malformed_field_count.csv:4", "2 fields"});
  std::tie(rc, out) = run_day18("classify --ncu /no/such.csv");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"--ncu /no/such.csv", "cannot open"});
  std::tie(rc, out) = run_day18("classify --ncu " + kCalib + " --trace " + kTrace);
  EXPECT_EQ(rc, 2) << out;
  std::tie(rc, out) = run_day18("classify --ncu " + kCalib + " --peak-bw -5");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"--peak-bw"});
  std::tie(rc, out) =
      run_day18("classify --trace " + src("tests/engine/profiling/data/details_page.csv") +
                " --peak-bw 4200 --preset tiny --batch 1 --context 8");
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"not JSON"});
}

TEST(ClassifyCmd, TheSeedExampleBesideItsTree) {
  const auto [rc, out] = run_day18("classify --seed-example");
  ASSERT_EQ(rc, 0) << out;
  expect_has(out,
             {"the seed's tree:          COMPUTE BOUND", "the seed's tree, fixed:   MEMORY BOUND",
              "the classifier:           MEMORY BOUND"});
}

TEST(ClassifyCmd, TheThresholdsTable) {
  const auto [rc, out] = run_day18("classify --thresholds");
  ASSERT_EQ(rc, 0) << out;
  expect_has(out, {"high_throughput_pct", "60", "Nsight Compute SOL rule", "low_occupancy_pct"});
}

TEST(AnalyzeCmd, WritesThePage) {
  const std::string md = ::testing::TempDir() + "/analysis_test.md";
  std::filesystem::remove(md);
  const auto [rc, out] = run_day18(
      "analyze --ncu " + src("reference/ncu/fixtures/decode_step_handmade.csv") +
      " --peak-bw 4200 --peak-flops 790 --preset llama-1b --batch 8 --context 1024 --out " + md);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream f(md);
  std::stringstream ss;
  ss << f.rdbuf();
  expect_has(ss.str(),
             {"# Kernel profile analysis", "llama-1b decode: 8 sequences x 1024 context",
              "| kernel | where |", "paged_attention_kernel", "layer * qkv_proj", "What to try:"});
}

TEST(AnalyzeCmd, NeedsOut) {
  const auto [rc, out] = run_day18("analyze --ncu " + kCalib);
  EXPECT_EQ(rc, 2) << out;
  expect_has(out, {"--out FILE.md is required"});
}

TEST(CalibrateCmd, ListsItsKernelsAnywhereAndNeedsAGpuToRun) {
  auto [rc, out] = run_day18("calibrate --list");
  ASSERT_EQ(rc, 0) << out;
  expect_has(out, {"calib_stream_copy", "MEMORY BOUND (DRAM)", "calib_smem_limited",
                   "occupancy limited by shared memory"});
  std::tie(rc, out) = run_day18("calibrate --once --json x.json");
  EXPECT_EQ(rc, 2) << out;
  std::tie(rc, out) = run_day18("calibrate --preset llama-1b");
  EXPECT_EQ(rc, 2) << out;  // --preset needs --decode-step
  if (!std::getenv("REQUIRE_GPU")) {
    std::tie(rc, out) = run_day18("calibrate --once");
    if (out.find("needs a CUDA GPU") != std::string::npos) {
      EXPECT_EQ(rc, 2) << out;
    }
  }
}

}  // namespace
