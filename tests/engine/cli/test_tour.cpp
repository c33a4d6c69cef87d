// `day18 tour` end to end on the CPU backend (what CI and a learner without a GPU run): the
// pipeline tour exits 0 and walks through every stage of the step, and `--kernels` still runs the
// kernel tour. Runs the day18 executable next to this test binary (build/engine/day18), or the
// one named by $DAY18_BIN.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>

namespace {

std::string day18_binary() {
  if (const char* env = std::getenv("DAY18_BIN")) return env;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
  return (exe.parent_path().parent_path() / "engine" / "day18").string();
}

// Runs `day18 <args>`, returns (exit status, stdout + stderr).
std::pair<int, std::string> run_day18(const std::string& args) {
  const std::string bin = day18_binary();
  EXPECT_TRUE(std::filesystem::exists(bin)) << bin << " not found: build the day18 target";
  const std::string cmd = bin + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr) << cmd;
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(Tour, PipelineTourOnCpuExitsZeroAndShowsEveryStage) {
  const auto [rc, out] = run_day18("tour --device cpu");
  ASSERT_EQ(rc, 0) << out;
  for (const char* stage :
       {"The model and its memory", "Schedule", "Prepare inputs in pinned staging", "H2D",
        "forward pass", "Sampling", "D2H", "Process outputs", "The overlap", "preemption",
        "CUDA graphs", "Where the time went", "seed's ideal profile", "day18 tour --kernels"})
    EXPECT_NE(out.find(stage), std::string::npos) << "missing stage '" << stage << "':\n" << out;
  // The GPU-only parts say they are skipped, and the preemption really happened.
  EXPECT_NE(out.find("skipped on the CPU backend"), std::string::npos) << out;
  EXPECT_EQ(out.find(" 0 preemptions (0 swap-outs"), std::string::npos) << out;
  EXPECT_NE(out.find("outputs equal to the run without preemption: 8 of 8"), std::string::npos)
      << out;
}

TEST(Tour, KernelsFlagRunsTheKernelTour) {
  const auto [rc, out] = run_day18("tour --kernels --device cpu --ops rms_norm");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("the kernels of one inference step"), std::string::npos) << out;
  EXPECT_NE(out.find("rms_norm"), std::string::npos) << out;
}

TEST(Tour, TheCpuKernelTourSaysNothingWasCompared) {
  // Before: every row said "cpu only" in the check column, read as a check that passed; on the
  // CPU backend the op is its own oracle, and the tour now says so and where the oracles are checked.
  const auto [rc, out] = run_day18("tour --kernels --device cpu --ops rms_norm");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("is oracle"), std::string::npos) << out;
  EXPECT_NE(out.find("Nothing was checked here"), std::string::npos) << out;
  EXPECT_NE(out.find("ctest -R Golden"), std::string::npos) << out;
  EXPECT_EQ(out.find("cpu only"), std::string::npos) << out;
}

}  // namespace
