// `day18 probe` end to end. On any machine: its flags are checked first and a bad one exits 2
// naming the flag and the value as written; with no CUDA device visible (CUDA_VISIBLE_DEVICES
// empty, which hides even a real GPU) it says why and exits 2, no crash. On a GPU: a tiny probe
// writes JSON with its provenance. Runs the day18 executable next to this test binary
// (build/engine/day18), or the one named by $DAY18_BIN.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace {

std::string day18_binary() {
  if (const char* env = std::getenv("DAY18_BIN")) return env;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
  return (exe.parent_path().parent_path() / "engine" / "day18").string();
}

// Runs `<env> day18 <args>`, returns (exit status, stdout + stderr).
std::pair<int, std::string> run_day18(const std::string& args, const std::string& env = "") {
  const std::string bin = day18_binary();
  EXPECT_TRUE(std::filesystem::exists(bin)) << bin << " not found: build the day18 target";
  const std::string cmd = env + (env.empty() ? "" : " ") + bin + " " + args + " 2>&1";
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

void expect_contains(const std::string& out, const std::vector<std::string>& parts) {
  for (const std::string& p : parts)
    EXPECT_NE(out.find(p), std::string::npos) << "lacks '" << p << "':\n" << out;
}

TEST(ProbeCli, WithoutACudaDeviceSaysWhyAndExits2) {
  // An empty CUDA_VISIBLE_DEVICES hides every GPU, so this runs the no-GPU path everywhere.
  const auto [rc, out] = run_day18("probe", "CUDA_VISIBLE_DEVICES=");
  EXPECT_EQ(rc, 2) << out;
  expect_contains(out, {"day18 probe: no CUDA device to measure: ", "cuda"});
  EXPECT_EQ(out.find("terminate"), std::string::npos) << out;  // no crash
  EXPECT_EQ(out.find("GB/s"), std::string::npos) << "measured something?\n" << out;
}

// One bad command line and what its error must name.
struct BadFlags {
  const char* args;
  std::vector<std::string> parts;
};

void expect_rejected(const std::vector<BadFlags>& cases) {
  for (const BadFlags& c : cases) {
    // With a GPU visible too: the flags are checked before anything is measured.
    const auto [rc, out] = run_day18(std::string("probe ") + c.args);
    EXPECT_EQ(rc, 2) << c.args << "\n" << out;
    for (const std::string& p : c.parts)
      EXPECT_NE(out.find(p), std::string::npos) << c.args << ": lacks '" << p << "':\n" << out;
  }
}

TEST(ProbeCli, AbsurdSizesNameTheFlagAndTheValue) {
  expect_rejected({
      {"--min-size 4X", {"--min-size", "'4X'", "not a size"}},
      {"--max-size 1T", {"--max-size", "'1T'", "limit"}},
      {"--max-size -1G", {"--max-size", "'-1G'"}},
      {"--min-size 0", {"--min-size", "'0'"}},
      {"--min-size 1000", {"--min-size", "1000", "multiple of 16"}},
      {"--min-size 1G --max-size 4K", {"--min-size 1 GiB", "--max-size 4 KiB"}},
  });
}

TEST(ProbeCli, OtherBadFlagsExit2NamingThem) {
  expect_rejected({
      {"--kinds d2d,foo", {"--kinds", "'foo'", "h2d_pinned"}},
      {"--repeats 0", {"--repeats", "0"}},
      {"--step 3", {"--step", "3"}},
      {"--warmup -2", {"--warmup", "-2"}},
      {"--repeats abc", {"--repeats", "abc"}},
  });
}

TEST(ProbeCli, HelpListsTheOptions) {
  const auto [rc, out] = run_day18("probe --help");
  EXPECT_EQ(rc, 0) << out;
  expect_contains(out, {"--kinds", "--min-size", "--max-size", "--repeats", "--json", "--no-seed"});
}

TEST(ProbeCli, TinyProbeOnAGpuWritesJsonWithProvenance) {
  DAY18_REQUIRE_GPU();
  const std::string path = ::testing::TempDir() + "/day18_probe_cli.json";
  std::filesystem::remove(path);
  const auto [rc, out] = run_day18(
      "probe --kinds d2d,h2d_pinned --min-size 64K --max-size 1M "
      "--step 4 --repeats 3 --no-seed --json " +
      path);
  ASSERT_EQ(rc, 0) << out;
  expect_contains(
      out, {"P = ", "peak_d2d_bandwidth()", "HBM datasheet peak", "host link", "wrote " + path});
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << path;
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["results"].size(), 2u * 3u);  // 64K, 256K, 1M
  for (const char* k : {"gpu", "nvidia_driver", "cuda_driver", "cuda_runtime", "commit"})
    EXPECT_TRUE(j["provenance"][k].is_string()) << k;
  EXPECT_TRUE(j["seed"].is_null());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

}  // namespace
