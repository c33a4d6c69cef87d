// `day18 report` end to end, and scripts/plot_experiments.py: a bad input exits 2 with a message
// naming the flag and the file and writes nothing; the fixtures give report.md, the figures it
// links (where matplotlib is installed) and the copies of the given PNGs. Runs the day18
// executable next to this test binary (build/engine/day18), or the one named by $DAY18_BIN.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/temp_dir.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;

std::string src(const std::string& rel) {
  return day18::testing::source_dir() + "/" + rel;
}
std::string data(const std::string& f) {
  return src("tests/engine/report/data/" + f);
}

std::string day18_binary() {
  if (const char* env = std::getenv("DAY18_BIN")) return env;
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  return (exe.parent_path().parent_path() / "engine" / "day18").string();
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

std::pair<int, std::string> report(const std::string& args) {
  const std::string bin = day18_binary();
  EXPECT_TRUE(fs::exists(bin)) << bin << " not found: build the day18 target";
  return sh(bin + " report " + args);
}

// The Python that has matplotlib: the course's .venv, else python3 (maybe without it).
std::string python() {
  const std::string venv = src(".venv/bin/python");
  return fs::exists(venv) ? venv : "python3";
}
bool have_matplotlib() {
  return sh(python() + " -c 'import matplotlib'").first == 0;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ReportCli, OutIsRequired) {
  const auto [rc, out] = report("--probe " + data("bandwidth.json"));
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("--out"), std::string::npos) << out;
}

TEST(ReportCli, AMissingInputExits2NamingTheFlagAndTheFileAndWritesNothing) {
  const fs::path d = day18::testing::fresh_temp_dir("ReportCli", "missing");
  const auto [rc, out] = report("--probe /no/such/bandwidth.json --out " + (d / "r").string());
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("--probe /no/such/bandwidth.json: cannot open it"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(d / "r" / "report.md"));
}

TEST(ReportCli, AMalformedOrForeignExperimentFileExits2) {
  const fs::path d = day18::testing::fresh_temp_dir("ReportCli", "malformed");
  std::ofstream(d / "t.json") << "{\"schema\": ";
  auto [rc, out] = report("--tune " + (d / "t.json").string() + " --out " + (d / "r").string());
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("not JSON"), std::string::npos) << out;
  std::tie(rc, out) = report("--tune " + data("analysis.json") + " --out " + (d / "r").string());
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("expected \"day18.tune.v1\""), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(d / "r" / "report.md"));
}

TEST(ReportCli, TwoExperimentFilesOfOneNameAreRefused) {
  const fs::path d = day18::testing::fresh_temp_dir("ReportCli", "same_name");
  fs::create_directories(d / "a");
  fs::copy_file(data("block_size.json"), d / "a" / "block_size.json");
  const auto [rc, out] =
      report("--no-plots --tune " + data("block_size.json") + " --tune " +
             (d / "a" / "block_size.json").string() + " --out " + (d / "r").string());
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("same name"), std::string::npos) << out;
}

TEST(ReportCli, NoInputsGiveAPageThatSaysWhatToRun) {
  const fs::path d = day18::testing::fresh_temp_dir("ReportCli", "empty");
  const auto [rc, out] = report("--out " + (d / "r").string());
  ASSERT_EQ(rc, 0) << out;
  const std::string md = read_text(d / "r" / "report.md");
  EXPECT_NE(md.find("Run `day18 probe --json bandwidth.json`"), std::string::npos);
  EXPECT_NE(md.find("Run `day18 trace --device cuda"), std::string::npos);
}

TEST(ReportCli, TheFixturesGiveThePageAndItsFigures) {
  const fs::path d = day18::testing::fresh_temp_dir("ReportCli", "full");
  const fs::path out_dir = d / "report";
  const fs::path png = d / "timeline.png";
  std::ofstream(png) << "not really a PNG, only copied";
  const bool plots = have_matplotlib();
  const auto [rc, out] =
      report(std::string(plots ? "" : "--no-plots ") + "--probe " + data("bandwidth.json") +
             " --roof " + data("roof.json") + " --trace-metrics " + data("trace.metrics.json") +
             " --timeline-png " + png.string() + " --analysis " + data("analysis.json") +
             " --tune " + data("block_size.json") + " --tune " + data("batch_size.json") +
             " --tune " + data("precision.json") + " --out " + out_dir.string());
  ASSERT_EQ(rc, 0) << out;
  const std::string md = read_text(out_dir / "report.md");
  EXPECT_NE(md.find("## 5. Proposed optimizations, ranked by expected gain"), std::string::npos);
  EXPECT_TRUE(fs::exists(out_dir / "timeline.png"));
  EXPECT_NE(md.find("![The step's timeline](timeline.png)"), std::string::npos);
  // The exact command, as typed, in the Reproduce section.
  // (The inputs first, in the order of the Inputs table; --no-plots after them.)
  EXPECT_NE(md.find("day18 report --probe " + data("bandwidth.json")), std::string::npos);
  if (!plots) EXPECT_NE(md.find(" --no-plots --out "), std::string::npos);
  if (!plots) GTEST_SKIP() << "no matplotlib for " << python() << ": figures not checked";
  for (const char* f : {"block_size.png", "batch_size.png", "precision.png"}) {
    EXPECT_TRUE(fs::exists(out_dir / f)) << f;
    EXPECT_NE(md.find(std::string("](") + f + ")"), std::string::npos) << f;
  }
}

TEST(ReportCli, AFigureThatCouldNotBeDrawnIsNotLinkedAndTheNoteSaysWhy) {
  // A figure left by an earlier run is removed before the script runs: without matplotlib the
  // script fails and the page must not link the stale PNG; with it, the PNG is drawn anew.
  const fs::path d = day18::testing::fresh_temp_dir("ReportCli", "stale");
  fs::create_directories(d / "r");
  std::ofstream(d / "r" / "block_size.png") << "stale figure of an earlier run";
  if (!have_matplotlib()) {
    const auto [rc, out] =
        report("--tune " + data("block_size.json") + " --out " + (d / "r").string());
    ASSERT_EQ(rc, 0) << out;
    const std::string md = read_text(d / "r" / "report.md");
    EXPECT_EQ(md.find("](block_size.png)"), std::string::npos);
    EXPECT_NE(md.find("were not drawn"), std::string::npos) << md.substr(0, 600);
  } else {
    const auto [rc, out] =
        report("--tune " + data("block_size.json") + " --out " + (d / "r").string());
    ASSERT_EQ(rc, 0) << out;
    EXPECT_GT(fs::file_size(d / "r" / "block_size.png"), 10000u);  // redrawn, not the stale one
  }
}

TEST(PlotExperiments, ItsPythonTestsPass) {
  if (sh("python3 --version").first != 0) GTEST_SKIP() << "python3 is not installed";
  const auto [rc, out] = sh(python() + " " + src("tests/scripts/test_plot_experiments.py"));
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
