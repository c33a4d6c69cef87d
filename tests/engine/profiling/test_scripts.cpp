// The profiling scripts, run the way a learner runs them: scripts/plot_roofline.py (--help needs
// nothing; a plot needs matplotlib, skipped without it) and scripts/profile_ncu.sh (its metric
// list, its message when ncu is not there, its dry run).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

std::string src(const std::string& rel) {
  return std::string(DAY18_SOURCE_DIR) + "/" + rel;
}

std::pair<int, std::string> sh(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// The Python that has matplotlib: the course's .venv, else python3 (maybe without it).
std::string python() {
  const std::string venv = src(".venv/bin/python");
  return std::filesystem::exists(venv) ? venv : "python3";
}

TEST(PlotRoofline, HelpWorksWithoutMatplotlib) {
  const auto [rc, out] = sh("python3 " + src("scripts/plot_roofline.py") + " --help");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("roofline"), std::string::npos) << out;
}

TEST(PlotRoofline, BadInputsAreClearErrors) {
  const auto [rc, out] =
      sh("python3 " + src("scripts/plot_roofline.py") + " /no/such.json --out /tmp/x.png");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("/no/such.json"), std::string::npos) << out;
  const std::string bad = ::testing::TempDir() + "/plot_bad.json";
  FILE* f = std::fopen(bad.c_str(), "w");
  std::fputs("{\"kernels\": [], \"roof\": {}}", f);
  std::fclose(f);
  const auto [rc2, out2] =
      sh("python3 " + src("scripts/plot_roofline.py") + " " + bad + " --out /tmp/x.png");
  EXPECT_NE(rc2, 0);
  EXPECT_NE(out2.find("no roof"), std::string::npos) << out2;
}

TEST(PlotRoofline, DrawsTheFixture) {
  if (sh(python() + " -c 'import matplotlib'").first != 0)
    GTEST_SKIP() << "no matplotlib for " << python() << " (scripts/lab setup makes .venv)";
  const std::string png = ::testing::TempDir() + "/roofline_test.png";
  std::filesystem::remove(png);
  const auto [rc, out] =
      sh(python() + " " + src("scripts/plot_roofline.py") + " " +
         src("tests/engine/profiling/data/classify_calibration.json") + " --out " + png);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(std::filesystem::exists(png));
  EXPECT_GT(std::filesystem::file_size(png), 10000u);
  EXPECT_NE(out.find("6 kernels"), std::string::npos) << out;
}

TEST(ProfileNcuScript, PrintsItsMetricList) {
  const auto [rc, out] = sh(src("scripts/profile_ncu.sh") + " --print-metrics");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("sm__throughput.avg.pct_of_peak_sustained_elapsed\n"), std::string::npos);
  EXPECT_NE(out.find("launch__occupancy_limit_shared_mem\n"), std::string::npos);
}

TEST(ProfileNcuScript, SaysClearlyWhenNcuIsAbsent) {
  const auto [rc, out] = sh(src("scripts/profile_ncu.sh") + " --ncu /no/such/ncu -o " +
                            ::testing::TempDir() + "/x.csv -- /bin/true");
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("ncu (Nsight Compute) not found"), std::string::npos) << out;
}

TEST(ProfileNcuScript, DryRunShowsTheNcuCommand) {
  const auto [rc, out] = sh(src("scripts/profile_ncu.sh") + " --dry-run -k regex:calib_ --nvtx " +
                            "decode_step -o " + ::testing::TempDir() + "/x.csv -- /bin/true");
  EXPECT_EQ(rc, 0) << out;
  for (const char* part : {"--clock-control none", "--metrics", "gpu__time_duration.sum",
                           "day18@decode_step/", "--csv --page raw --print-units base"})
    EXPECT_NE(out.find(part), std::string::npos) << "lacks '" << part << "': " << out;
}

TEST(ProfileNcuScript, TheCalibrationRunProfilesOnlyTheBracketedKernels) {
  const auto [rc, out] = sh(src("scripts/profile_ncu.sh") + " --dry-run --calibration --day18 " +
                            "/bin/true -o " + ::testing::TempDir() + "/x.csv");
  EXPECT_EQ(rc, 0) << out;
  for (const char* part : {"--profile-from-start off", "calibrate --once", "regex:calib_"})
    EXPECT_NE(out.find(part), std::string::npos) << "lacks '" << part << "': " << out;
}

TEST(ProfileNcuScript, UsageErrorsExitTwo) {
  EXPECT_EQ(sh(src("scripts/profile_ncu.sh") + " --bogus").first, 2);
  EXPECT_EQ(sh(src("scripts/profile_ncu.sh") + " -o x.csv").first, 2);  // nothing to profile
  EXPECT_EQ(sh(src("scripts/profile_ncu.sh") + " -c many -o x.csv -- /bin/true").first, 2);
}

}  // namespace
