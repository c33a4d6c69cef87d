// scripts/plot_bandwidth.py on a CPU: it reads a hand-written probe JSON
// (tests/engine/profiling/data/bandwidth_probe_fixture.json) and what the C++ writer
// (probe_json) writes, and, where matplotlib is installed (.venv from scripts/lab setup), draws
// the PNG and the SVG. Skips when there is no python3.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/profiling/bandwidth_probe.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;

std::pair<int, std::string> sh(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The project's venv (it has matplotlib) when there is one, else python3 from PATH.
std::string python() {
  const fs::path venv = fs::path(testing::source_dir()) / ".venv" / "bin" / "python";
  return fs::exists(venv) ? venv.string() : "python3";
}

std::string script() {
  return testing::source_dir() + "/scripts/plot_bandwidth.py";
}
std::string fixture() {
  return testing::source_dir() + "/tests/engine/profiling/data/bandwidth_probe_fixture.json";
}

#define REQUIRE_PYTHON()                                                                  \
  do {                                                                                    \
    if (sh(python() + " -c 'import json'").first != 0) GTEST_SKIP() << "no python3 here"; \
  } while (0)

TEST(PlotBandwidth, HelpWorksWithoutMatplotlib) {
  REQUIRE_PYTHON();
  const auto [rc, out] = sh("python3 " + script() + " --help");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("--check"), std::string::npos) << out;
  EXPECT_NE(out.find("bytes MOVED"), std::string::npos) << out;
}

TEST(PlotBandwidth, ReadsTheHandWrittenFixture) {
  REQUIRE_PYTHON();
  const auto [rc, out] = sh("python3 " + script() + " " + fixture() + " --check");
  ASSERT_EQ(rc, 0) << out;
  for (const char* kind : {"d2d ", "read_kernel", "h2d_pageable", "bidirectional"})
    EXPECT_NE(out.find(kind), std::string::npos) << kind << "\n" << out;
  EXPECT_NE(out.find("P = 4200 GB/s"), std::string::npos) << out;
}

TEST(PlotBandwidth, ReadsWhatTheProbeWrites) {
  REQUIRE_PYTHON();
  ProbeReport r;
  r.provenance.gpu = "Round trip";
  r.options.kinds = {CopyKind::d2d, CopyKind::h2d_pinned};
  r.p_gbps = 1000;
  for (CopyKind k : r.options.kinds)
    for (size_t b : sweep_sizes(4096, 65536, 4)) {
      BandwidthResult res;
      res.kind = k;
      res.bytes = b;
      res.ms = summarize({0.005 + double(b) / 1e6});
      res.median_ms = res.p20_ms = res.p80_ms = res.min_ms = res.ms.median;
      res.rate = copy_rate(k, b, res.ms);
      res.gbps = res.rate.gbps;
      r.results.push_back(res);
    }
  r.summaries = summarize_sweep(r.results, r.options.kinds, r.peaks);
  const std::string path = ::testing::TempDir() + "/day18_plot_roundtrip.json";
  write_json_file(path, probe_json(r));
  const auto [rc, out] = sh("python3 " + script() + " " + path + " --check");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("h2d_pinned"), std::string::npos) << out;
  EXPECT_NE(out.find("host link unknown"), std::string::npos) << out;
}

TEST(PlotBandwidth, RejectsAFileThatIsNotAProbeResult) {
  REQUIRE_PYTHON();
  const std::string path = ::testing::TempDir() + "/day18_plot_wrong.json";
  std::ofstream(path) << "{\"benchmarks\": []}\n";
  const auto [rc, out] = sh("python3 " + script() + " " + path + " --check");
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("not a `day18 probe --json` file"), std::string::npos) << out;
}

TEST(PlotBandwidth, DrawsPngAndSvgWhereMatplotlibIsInstalled) {
  REQUIRE_PYTHON();
  if (sh(python() + " -c 'import matplotlib'").first != 0)
    GTEST_SKIP() << "no matplotlib for " << python() << " (scripts/lab setup makes .venv)";
  const fs::path out = fs::path(::testing::TempDir()) / "day18_bw_plot";
  fs::remove(out.string() + ".png");
  fs::remove(out.string() + ".svg");
  const auto [rc, text] =
      sh(python() + " " + script() + " " + fixture() + " --out " + out.string());
  ASSERT_EQ(rc, 0) << text;
  std::ifstream png(out.string() + ".png", std::ios::binary);
  char magic[4] = {};
  png.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  EXPECT_GT(fs::file_size(out.string() + ".svg"), 1000u);
}

}  // namespace
}  // namespace day18
