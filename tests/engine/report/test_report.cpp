// `day18 report` from recorded JSON (tests/engine/report/data: the H200's probe, roof, trace
// metrics and kernel analysis as the commands wrote them, and three hand-made experiment files in
// the day18.tune.v1 contract). The page must be exactly the committed expected_report.md, and
// every number of every table must parse back to the JSON it came from (read here with
// nlohmann directly, not with the report's own readers), with the page's stated rounding.
//
// When the page's format changes on purpose: DAY18_UPDATE_EXPECTED_REPORT=1 ctest -R Report
// rewrites expected_report.md (then read its diff).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/report/report.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_support.h"

namespace day18::report {
namespace {

using nlohmann::json;

const std::string kRel = "tests/engine/report/data/";
std::string data(const std::string& f) {
  return day18::testing::source_dir() + "/" + kRel + f;
}

json load(const std::string& f) {
  std::ifstream in(data(f));
  return json::parse(in);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The inputs as `day18 report` gets them when run from the repository root with the fixtures.
ReportInputs fixture_inputs() {
  ReportInputs in;
  in.probe = read_probe(data("bandwidth.json"));
  in.probe->file = kRel + "bandwidth.json";
  in.roof = read_roof(data("roof.json"));
  in.roof->file = kRel + "roof.json";
  in.trace = read_trace_metrics(data("trace.metrics.json"));
  in.trace->file = kRel + "trace.metrics.json";
  in.analysis = read_analysis(data("analysis.json"));
  in.analysis->file = kRel + "analysis.json";
  for (const char* t : {"block_size", "batch_size", "precision"}) {
    in.tunes.push_back(read_tune(data(std::string(t) + ".json")));
    in.tunes.back().file = kRel + t + ".json";
    in.tune_pngs.push_back(std::string(t) + ".png");
  }
  in.timeline_png = "timeline.png";
  in.roofline_png = "roofline.png";
  in.command = "day18 report --probe " + kRel + "bandwidth.json --roof " + kRel +
               "roof.json --trace-metrics " + kRel +
               "trace.metrics.json --timeline-png "
               "timeline.png --analysis " +
               kRel +
               "analysis.json --roofline-png roofline.png "
               "--tune " +
               kRel + "block_size.json --tune " + kRel + "batch_size.json --tune " + kRel +
               "precision.json --out report";
  return in;
}

// ---------------------------------------------------------------- markdown tables, parsed back

struct MdTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

std::vector<std::string> split_row(const std::string& line) {
  std::vector<std::string> cells;
  std::string cur;
  for (size_t i = 1; i < line.size(); ++i) {  // skip the leading '|'
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cur += '|';
      ++i;
    } else if (line[i] == '|') {
      const size_t a = cur.find_first_not_of(' '), b = cur.find_last_not_of(' ');
      cells.push_back(a == std::string::npos ? "" : cur.substr(a, b - a + 1));
      cur.clear();
    } else {
      cur += line[i];
    }
  }
  return cells;
}

std::vector<MdTable> tables_of(const std::string& md) {
  std::vector<MdTable> out;
  std::istringstream is(md);
  std::string line;
  bool in_table = false;
  while (std::getline(is, line)) {
    if (line.rfind("|", 0) != 0) {
      in_table = false;
      continue;
    }
    if (!in_table) {
      out.push_back({split_row(line), {}});
      in_table = true;
    } else if (line.rfind("|---", 0) != 0) {
      out.back().rows.push_back(split_row(line));
    }
  }
  return out;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '`' && s.back() == '`') s = s.substr(1, s.size() - 2);
  return s;
}

// A number as the page prints it ("57.0%", "1.32x", "4172"), parsed.
double num(const std::string& cell) {
  std::string s = cell;
  while (!s.empty() && (s.back() == '%' || s.back() == 'x')) s.pop_back();
  size_t used = 0;
  const double v = std::stod(s, &used);
  EXPECT_EQ(used, s.size()) << "not a number: '" << cell << "'";
  return v;
}

// The cell is `value` rounded to `decimals` places (as format_* print it).
::testing::AssertionResult rounded(const std::string& cell, double value, int decimals) {
  double v;
  try {
    v = num(cell);
  } catch (const std::exception&) {
    return ::testing::AssertionFailure() << "'" << cell << "' is not a number";
  }
  const double half = 0.5 * std::pow(10.0, -decimals) + 1e-9 * std::fabs(value);
  if (std::fabs(v - value) <= half) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "'" << cell << "' is not " << value << " rounded to " << decimals << " decimals";
}
// A time in us as format_us prints it: 2 decimals below 10 us, 1 from there on.
::testing::AssertionResult us(const std::string& cell, double value) {
  return rounded(cell, value, std::fabs(value) < 10 ? 2 : 1);
}
// "%.1e": two significant digits.
::testing::AssertionResult two_digits(const std::string& cell, double value) {
  const double v = num(cell);
  if (value == 0 ? v == 0 : std::fabs(v - value) <= 0.05 * std::fabs(value) + 1e-300)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << cell << "' is not " << value;
}

int column(const MdTable& t, const std::string& name) {
  for (size_t i = 0; i < t.header.size(); ++i)
    if (t.header[i] == name) return static_cast<int>(i);
  ADD_FAILURE() << "no column '" << name << "'";
  return 0;
}

const std::vector<std::string>* row_named(const MdTable& t, const std::string& first) {
  for (const auto& r : t.rows)
    if (!r.empty() && r[0].rfind(first, 0) == 0) return &r;
  ADD_FAILURE() << "no row starting with '" << first << "'";
  return nullptr;
}

class ReportFromFixtures : public ::testing::Test {
 protected:
  void SetUp() override {
    md_ = report_markdown(fixture_inputs());
    tables_ = tables_of(md_);
    probe_ = load("bandwidth.json");
    roof_ = load("roof.json");
    trace_ = load("trace.metrics.json");
    analysis_ = load("analysis.json");
    for (const char* t : {"block_size", "batch_size", "precision"})
      tunes_.push_back(load(std::string(t) + ".json"));
  }
  std::vector<const MdTable*> with_header(const std::string& first) const {
    std::vector<const MdTable*> v;
    for (const MdTable& t : tables_)
      if (!t.header.empty() && t.header[0] == first) v.push_back(&t);
    return v;
  }
  // The compute stream's launch gap per launch, from the metrics JSON.
  double gap_us() const {
    for (const json& s : trace_["idle_by_stream"])
      if (s["name"] == "compute")
        return (s["host_wait_ms"].get<double>() + s["kernel_gap_ms"].get<double>()) * 1e3 /
               s["ops"].get<double>();
    return 0;
  }
  std::string md_;
  std::vector<MdTable> tables_;
  json probe_, roof_, trace_, analysis_;
  std::vector<json> tunes_;
};

TEST_F(ReportFromFixtures, IsByteIdenticalToTheCommittedExpectedReport) {
  const std::string expected_path = data("expected_report.md");
  if (const char* u = std::getenv("DAY18_UPDATE_EXPECTED_REPORT"); u && std::string(u) == "1") {
    std::ofstream(expected_path) << md_;
    GTEST_SKIP() << "rewrote " << expected_path << " (DAY18_UPDATE_EXPECTED_REPORT=1)";
  }
  const std::string expected = read_text(expected_path);
  ASSERT_FALSE(expected.empty()) << expected_path << " is missing";
  if (md_ != expected) {
    // The first differing line, to read the failure without a diff tool.
    std::istringstream a(md_), b(expected);
    std::string la, lb;
    int n = 0;
    while (true) {
      const bool ga = bool(std::getline(a, la)), gb = bool(std::getline(b, lb));
      ++n;
      if (!ga && !gb) break;
      if (la != lb || ga != gb) {
        ADD_FAILURE() << "line " << n << " differs:\n  got:      " << la << "\n  expected: " << lb
                      << "\n(an intended change: DAY18_UPDATE_EXPECTED_REPORT=1 rewrites "
                      << expected_path << ")";
        break;
      }
    }
  }
}

TEST_F(ReportFromFixtures, HasEverySectionOfTheIssue) {
  for (const char* s :
       {"## 1. The machine and its measured roofs", "## 2. Where one step's time goes",
        "## 3. Each kernel's verdict", "## 4. Experiments",
        "## 5. Proposed optimizations, ranked by expected gain", "## 6. Reproduce",
        "**Hypothesis**", "![block_size](block_size.png)", "**Bottleneck** before",
        "![The step's timeline](timeline.png)", "How the numbers are rounded"})
    EXPECT_NE(md_.find(s), std::string::npos) << s;
  // The exact commands of the experiments, as recorded.
  for (const json& t : tunes_)
    EXPECT_NE(md_.find(t["provenance"]["command"].get<std::string>()), std::string::npos);
}

TEST_F(ReportFromFixtures, TheMachineTableIsTheProbesAndTheRoofsNumbers) {
  const auto ts = with_header("quantity");
  ASSERT_EQ(ts.size(), 1u);
  const MdTable& t = *ts[0];
  const double p = probe_["p_gbps"], hbm = probe_["datasheet"]["hbm_gbps"];
  EXPECT_TRUE(rounded((*row_named(t, "P (GB/s)"))[1], p, 0));
  EXPECT_TRUE(rounded((*row_named(t, "HBM datasheet"))[1], hbm, 0));
  EXPECT_TRUE(rounded((*row_named(t, "P as % of the datasheet"))[1], p / hbm * 100, 1));
  EXPECT_TRUE(rounded((*row_named(t, "host link"))[1],
                      probe_["datasheet"]["link"]["gbps_per_direction"].get<double>(), 0));
  std::map<std::string, double> host;
  for (const json& s : probe_["summaries"]) host[s["kind"]] = s["largest_gbps"];
  EXPECT_TRUE(rounded((*row_named(t, "H2D pinned"))[1], host["h2d_pinned"], 0));
  EXPECT_TRUE(rounded((*row_named(t, "H2D pageable"))[1], host["h2d_pageable"], 0));
  EXPECT_TRUE(rounded((*row_named(t, "D2H pinned"))[1], host["d2h_pinned"], 0));
  EXPECT_TRUE(rounded((*row_named(t, "D2H pageable"))[1], host["d2h_pageable"], 0));
  EXPECT_TRUE(rounded((*row_named(t, "P measured by calibrate"))[1], roof_["p_gbps"], 0));
  const double tensor = roof_["peak_tensor_tflops"], fma = roof_["peak_fma_tflops"];
  EXPECT_TRUE(rounded((*row_named(t, "tensor-core peak"))[1], tensor, 0));
  EXPECT_TRUE(rounded((*row_named(t, "FP32 FMA peak"))[1], fma, 0));
  EXPECT_TRUE(rounded((*row_named(t, "ridge point, tensor"))[1], tensor * 1e3 / p, 0));
  EXPECT_TRUE(rounded((*row_named(t, "ridge point, FMA"))[1], fma * 1e3 / p, 0));

  const auto ps = with_header("input");
  ASSERT_EQ(ps.size(), 2u);  // the Inputs table, then "P of each input"
  const MdTable& pt = *ps[1];
  EXPECT_TRUE(rounded((*row_named(pt, "--probe"))[1], p, 0));
  EXPECT_TRUE(rounded((*row_named(pt, "--roof"))[1], roof_["p_gbps"], 0));
  EXPECT_TRUE(rounded((*row_named(pt, "--analysis"))[1], analysis_["roof"]["peak_bw_gbps"], 0));
  EXPECT_TRUE(rounded((*row_named(pt, "--analysis"))[2], analysis_["roof"]["peak_tflops"], 0));
  EXPECT_TRUE(rounded((*row_named(pt, "--tune block_size"))[1], tunes_[0]["roof"]["p_gbps"], 0));
}

TEST_F(ReportFromFixtures, TheStepTablesAreTheTraceMetrics) {
  const auto ms = with_header("metric");
  ASSERT_EQ(ms.size(), 1u);
  const MdTable& m = *ms[0];
  const json& busy = trace_["gpu_busy"][0];
  EXPECT_TRUE(rounded((*row_named(m, "GPU window (ms)"))[1], busy["window_ms"], 3));
  EXPECT_TRUE(rounded((*row_named(m, "kernel time, union"))[1], busy["kernel_ms"], 3));
  EXPECT_TRUE(
      rounded((*row_named(m, "GPU busy"))[1], busy["busy_fraction"].get<double>() * 100, 1));
  EXPECT_TRUE(rounded((*row_named(m, "H2D copy time under a kernel"))[1],
                      trace_["h2d_compute_overlap"]["fraction"].get<double>() * 100, 1));
  EXPECT_EQ((*row_named(m, "step pairs"))[1],
            std::to_string(trace_["h2d_compute_overlap"]["step_pairs_overlapped"].get<int>()) +
                " of " + std::to_string(trace_["h2d_compute_overlap"]["step_pairs"].get<int>()));
  EXPECT_EQ((*row_named(m, "kernels shorter"))[1],
            std::to_string(trace_["launch_overhead"]["shorter_than_launch"].get<int>()) + " of " +
                std::to_string(trace_["launch_overhead"]["kernels"].get<int>()));
  EXPECT_TRUE(
      us((*row_named(m, "median launch call"))[1], trace_["launch_overhead"]["median_launch_us"]));
  EXPECT_TRUE(
      us((*row_named(m, "median kernel (us)"))[1], trace_["launch_overhead"]["median_kernel_us"]));
  EXPECT_TRUE(us((*row_named(m, "compute stream: launch gap"))[1], gap_us()));
  // The median of the complete steps.
  std::vector<double> span;
  for (const json& s : trace_["steps"])
    if (s["complete"]) span.push_back(s["gpu_span_ms"]);
  std::sort(span.begin(), span.end());
  ASSERT_FALSE(span.empty());
  const double med = span.size() % 2 ? span[span.size() / 2]
                                     : (span[span.size() / 2 - 1] + span[span.size() / 2]) / 2;
  EXPECT_EQ((*row_named(m, "complete steps"))[1], std::to_string(span.size()));
  EXPECT_TRUE(rounded((*row_named(m, "median step: GPU span"))[1], med, 3));

  const auto ss = with_header("stream");
  ASSERT_EQ(ss.size(), 1u);
  ASSERT_EQ(ss[0]->rows.size(), trace_["idle_by_stream"].size());
  for (size_t i = 0; i < ss[0]->rows.size(); ++i) {
    const auto& r = ss[0]->rows[i];
    const json& s = trace_["idle_by_stream"][i];
    EXPECT_EQ(r[0], s["name"].get<std::string>());
    EXPECT_EQ(r[1], std::to_string(s["ops"].get<int>()));
    int c = 2;
    for (const char* k : {"busy_ms", "idle_ms", "host_wait_ms", "kernel_gap_ms", "other_ms"})
      EXPECT_TRUE(rounded(r[c++], s[k], 3)) << k;
  }
  const auto rs = with_header("range");
  ASSERT_EQ(rs.size(), 1u);
  ASSERT_EQ(rs[0]->rows.size(), trace_["profile"]["ranges"].size());
  for (size_t i = 0; i < rs[0]->rows.size(); ++i)
    EXPECT_TRUE(
        rounded(rs[0]->rows[i][1], trace_["profile"]["ranges"][i]["share"].get<double>() * 100, 1));
  const auto ks = with_header("kernel (trace)");
  ASSERT_EQ(ks.size(), 1u);
  for (size_t i = 0; i < ks[0]->rows.size(); ++i) {
    const json& k = trace_["top_kernels"][i];
    std::string name = unquote(ks[0]->rows[i][0]);
    if (name.size() > 3 && name.compare(name.size() - 3, 3, "...") == 0)
      name.resize(name.size() - 3);
    EXPECT_EQ(k["name"].get<std::string>().rfind(name, 0), 0u) << name;
    EXPECT_TRUE(rounded(ks[0]->rows[i][2], k["total_ms"], 3));
    EXPECT_TRUE(rounded(ks[0]->rows[i][3], k["share"].get<double>() * 100, 1));
    EXPECT_TRUE(us(ks[0]->rows[i][4], k["mean_us"]));
  }
}

TEST_F(ReportFromFixtures, TheKernelTableIsTheAnalysis) {
  const auto ts = with_header("#");
  ASSERT_EQ(ts.size(), 1u);
  const MdTable& t = *ts[0];
  ASSERT_EQ(t.rows.size(), analysis_["kernels"].size());
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& r = t.rows[i];
    const json& k = analysis_["kernels"][i];
    EXPECT_EQ(unquote(r[column(t, "kernel")]), k["name"].get<std::string>());
    EXPECT_EQ(r[column(t, "calls")], std::to_string(k["launches"].get<int>()));
    EXPECT_TRUE(rounded(r[column(t, "time share")], k["time_share"].get<double>() * 100, 1));
    EXPECT_TRUE(us(r[column(t, "us/call")], k["duration_us"]));
    EXPECT_TRUE(us(r[column(t, "us/step")], k["total_us"]));
    if (k.contains("pct_of_roof")) {
      EXPECT_TRUE(rounded(r[column(t, "% of roof")], k["pct_of_roof"], 1));
    } else {
      EXPECT_EQ(r[column(t, "% of roof")], "-");
    }
    EXPECT_EQ(r[column(t, "verdict")], k["label"].get<std::string>());
  }
}

TEST_F(ReportFromFixtures, EachExperimentTableIsItsPointsInOrder) {
  const auto ts = with_header("role");
  size_t n = 0;
  for (const json& t : tunes_) n += t["groups"].size();
  ASSERT_EQ(ts.size(), n);
  size_t ti = 0;
  for (const json& tune : tunes_) {
    const double p = tune["roof"]["p_gbps"];
    for (const json& g : tune["groups"]) {
      const MdTable& t = *ts[ti++];
      ASSERT_EQ(t.rows.size(), g["points"].size()) << g["name"];
      for (size_t i = 0; i < t.rows.size(); ++i) {
        const auto& r = t.rows[i];
        const json& pt = g["points"][i];
        SCOPED_TRACE(g["name"].get<std::string>() + " / " + pt["label"].get<std::string>());
        EXPECT_EQ(r[column(t, "label")], pt["label"].get<std::string>());
        const std::string role = r[column(t, "role")];
        EXPECT_EQ(role.find("baseline") != std::string::npos, int(i) == g["baseline"].get<int>());
        EXPECT_EQ(role.find("best") != std::string::npos, int(i) == g["best"].get<int>());
        // check: "ok 9.8e-04 <= 2.0e-03" or "FAILED 3.1e-01 > 2.0e-03"
        std::istringstream check(r[column(t, "check (max abs err vs tolerance)")]);
        std::string word, err, op, tol;
        check >> word >> err >> op >> tol;
        EXPECT_EQ(word, pt["correct"].get<bool>() ? "ok" : "FAILED");
        EXPECT_TRUE(two_digits(err, pt["max_abs_err"]));
        EXPECT_TRUE(two_digits(tol, pt["tolerance"]));
        if (!pt["correct"].get<bool>()) {
          EXPECT_EQ(r[column(t, "median (us)")], "not timed");
          continue;
        }
        EXPECT_TRUE(us(r[column(t, "median (us)")], pt["median_us"]));
        const std::string range = r[column(t, "p20-p80 (us)")];
        const size_t dash = range.find('-');
        ASSERT_NE(dash, std::string::npos);
        EXPECT_TRUE(us(range.substr(0, dash), pt["p20_us"]));
        EXPECT_TRUE(us(range.substr(dash + 1), pt["p80_us"]));
        EXPECT_TRUE(rounded(r[column(t, "% of P")], pt["pct_of_p"], 1));
        EXPECT_EQ(r[column(t, "verdict")], pt["verdict"].get<std::string>());
        if (tune["experiment"] == "block_size") {
          const json& o = pt["occupancy"];
          EXPECT_TRUE(rounded(r[column(t, "occupancy")], o["theoretical_pct"], 1));
          EXPECT_TRUE(rounded(r[column(t, "blocks/SM")], o["blocks_per_sm"], 0));
          EXPECT_TRUE(rounded(r[column(t, "registers")], o["registers"], 0));
          EXPECT_TRUE(rounded(r[column(t, "waves")], o["waves"], 2));
        }
        const json& ex = pt["extra"];
        if (ex.contains("tokens_per_s")) {
          EXPECT_TRUE(rounded(r[column(t, "tokens/s")], ex["tokens_per_s"], 0));
        }
        if (ex.contains("max_logit_diff")) {
          EXPECT_TRUE(two_digits(r[column(t, "max logit diff")], ex["max_logit_diff"]));
        }
        if (ex.contains("greedy_agreement")) {
          EXPECT_TRUE(rounded(r[column(t, "greedy agreement")],
                              ex["greedy_agreement"].get<double>() * 100, 1));
        }
        if (tune["experiment"] == "batch_size") {
          const double floor_us = ex["weight_bytes"].get<double>() / (p * 1e9) * 1e6;
          EXPECT_TRUE(
              rounded(r[column(t, "x floor")], pt["median_us"].get<double>() / floor_us, 2));
          // ... and the same number day18 tune recorded beside it.
          EXPECT_NEAR(num(r[column(t, "x floor")]), ex["x_weight_floor"].get<double>(), 0.006);
        }
      }
    }
  }
}

TEST_F(ReportFromFixtures, EachRankedGainIsRecomputedFromTheJson) {
  const auto ts = with_header("rank");
  ASSERT_EQ(ts.size(), 1u);
  const MdTable& t = *ts[0];
  ASSERT_GE(t.rows.size(), 5u);
  const double step = analysis_["total_kernel_us"];
  double last = 1e300;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& r = t.rows[i];
    SCOPED_TRACE(r[1] + " " + r[2]);
    EXPECT_EQ(r[0], std::to_string(i + 1));
    const std::string kernel = unquote(r[column(t, "kernel")]), where = r[column(t, "where")];
    Gain g;
    double now = -1, target = -1, kernel_us = 0;
    if (where.rfind("block_size: ", 0) == 0) {
      // An experiment's measured speedup applied to the analysis kernel it tuned.
      const std::string group = where.substr(12);
      double speedup = 0, time = 0;
      for (const json& gr : tunes_[0]["groups"])
        if (gr["name"] == group) speedup = gr["speedup"];
      ASSERT_GT(speedup, 0) << group;
      for (const json& k : analysis_["kernels"])
        if (k["name"] == kernel || k["name"] == kernel + "_kernel")
          time += k["total_us"].get<double>();
      g = speedup_gain(time, speedup, step);
      kernel_us = time;
    } else {
      const json* row = nullptr;
      for (const json& k : analysis_["kernels"])
        if (k["name"] == kernel && k["what"] == where) row = &k;
      ASSERT_NE(row, nullptr);
      const std::string verdict = (*row)["verdict"];
      kernel_us = (*row)["total_us"];
      if (verdict == "LATENCY BOUND") {
        g = launch_gain((*row)["launches"].get<double>(), gap_us(), step);
      } else {
        now = (*row)["pct_of_roof"];
        target = verdict == "COMPUTE BOUND" ? 70 : 90;
        g = expected_gain((*row)["total_us"], now, target, step);
      }
    }
    EXPECT_TRUE(us(r[column(t, "us/step")], kernel_us));
    EXPECT_TRUE(us(r[column(t, "gain (us/step)")], g.saved_us));
    EXPECT_TRUE(rounded(r[column(t, "gain (% of step)")], g.pct_of_step, 1));
    if (now >= 0) {
      EXPECT_TRUE(rounded(r[column(t, "now (% of roof)")], now, 1));
      EXPECT_TRUE(rounded(r[column(t, "target (% of roof)")], target, 1));
    } else {
      EXPECT_EQ(r[column(t, "now (% of roof)")], "-");
    }
    EXPECT_LE(g.saved_us, last) << "not ranked by gain";
    last = g.saved_us;
  }
}

TEST_F(ReportFromFixtures, EveryTableWithNumbersIsCheckedAbove) {
  // The tables the tests above parse back; a new table must get its check.
  const std::set<std::string> checked = {"input",          "quantity", "metric", "stream", "range",
                                         "kernel (trace)", "#",        "role",   "rank"};
  for (const MdTable& t : tables_) EXPECT_TRUE(checked.count(t.header[0])) << t.header[0];
}

TEST_F(ReportFromFixtures, AFailedPointIsShownAndNotTimedAndAWinWithinNoiseIsNoWin) {
  EXPECT_NE(md_.find("| FAILED 3.1e-01 > 2.0e-03 | not timed |"), std::string::npos);
  EXPECT_NE(md_.find("`1024 threads` failed its correctness check"), std::string::npos);
  EXPECT_NE(md_.find("**within noise** (the ranges overlap); not a win, keep the baseline."),
            std::string::npos);
  const std::vector<Proposal> ps = proposals(fixture_inputs());
  bool noise_item = false;
  for (const Proposal& p : ps)
    if (p.where == "block_size: paged_attention v1, B=8 ctx 1024 fp16") {
      EXPECT_FALSE(p.ranked);
      EXPECT_NE(p.why.find("within noise"), std::string::npos) << p.why;
      noise_item = true;
    }
  EXPECT_TRUE(noise_item);
}

TEST_F(ReportFromFixtures, TheBatchKneeIsTheLargestBatchWithin125PctOfTheSmallest) {
  const TuneInput b = read_tune(data("batch_size.json"));
  const int knee = batch_knee(b.groups[0]);
  ASSERT_GE(knee, 0);
  EXPECT_EQ(b.groups[0].points[knee].label, "batch 16");
  EXPECT_TRUE(b.groups[0].points[knee].knee_flag);  // day18 tune's own mark agrees
  EXPECT_NE(md_.find("**Knee**: `batch 16`"), std::string::npos);
  EXPECT_EQ(md_.find("The file marks"), std::string::npos);
}

TEST(Report, MissingInputsGiveSectionsThatSayWhatToRun) {
  const std::string md = report_markdown({});
  for (const char* s :
       {"Run `day18 probe --json bandwidth.json`", "`day18 calibrate --json roof.json`",
        "Run `day18 trace --device cuda", "`day18 analyze --ncu decode.csv",
        "`day18 tune block-size --json block_size.json`",
        "Needs the kernel analysis (`--analysis`)"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
}

TEST(Report, WithoutATraceLatencyBoundKernelsAreListedWithWhatIsMissing) {
  ReportInputs in = fixture_inputs();
  in.trace.reset();
  const std::vector<Proposal> ps = proposals(in);
  bool found = false;
  for (const Proposal& p : ps)
    if (p.verdict.rfind("LATENCY BOUND", 0) == 0 && p.rule != "measured speedup") {
      EXPECT_FALSE(p.ranked);
      EXPECT_NE(p.why.find("needs --trace-metrics"), std::string::npos) << p.why;
      found = true;
    }
  EXPECT_TRUE(found);
}

// ---------------------------------------------------------------- bad inputs

class BadInputs : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  std::string tune_with(const std::function<void(json&)>& edit) {
    json j = load("block_size.json");
    edit(j);
    return write("tune.json", j.dump());
  }
  std::filesystem::path dir_ = day18::testing::fresh_temp_dir("Report", "bad_inputs");
};

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "(no InvalidArgument)";
}

TEST_F(BadInputs, AMissingFileNamesTheFlagAndThePathAndTheCommandThatWritesIt) {
  const std::string e = error_of([] { read_probe("/no/such/bandwidth.json"); });
  EXPECT_NE(e.find("--probe /no/such/bandwidth.json: cannot open it"), std::string::npos) << e;
  EXPECT_NE(e.find("day18 probe --json"), std::string::npos) << e;
  EXPECT_NE(error_of([] { read_tune("/no/t.json"); }).find("--tune /no/t.json"), std::string::npos);
  EXPECT_NE(error_of([] { read_trace_metrics("/no/m.json"); }).find("--trace-metrics /no/m.json"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_analysis("/no/a.json"); }).find("--analysis /no/a.json"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_roof("/no/r.json"); }).find("--roof"), std::string::npos);
}

TEST_F(BadInputs, MalformedJsonSaysNotJson) {
  const std::string p = write("broken.json", "{\"schema\": \"day18.tune.v1\", ");
  const std::string e = error_of([&] { read_tune(p); });
  EXPECT_NE(e.find("--tune " + p + ": not JSON"), std::string::npos) << e;
}

TEST_F(BadInputs, AnotherSchemaIsRefusedNamingBothSchemas) {
  const std::string e = error_of([&] { read_tune(data("bandwidth.json")); });
  EXPECT_NE(e.find("schema is \"day18-bandwidth-probe/1\", expected \"day18.tune.v1\""),
            std::string::npos)
      << e;
  const std::string e2 = error_of([&] { read_probe(data("block_size.json")); });
  EXPECT_NE(e2.find("expected \"day18-bandwidth-probe/1\""), std::string::npos) << e2;
  const std::string e3 = error_of([&] { read_trace_metrics(data("analysis.json")); });
  EXPECT_NE(e3.find("no \"units\""), std::string::npos) << e3;
  const std::string e4 = error_of([&] { read_analysis(data("block_size.json")); });
  EXPECT_NE(e4.find("no \"source\""), std::string::npos) << e4;
}

TEST_F(BadInputs, AMissingFieldIsNamedWithItsPlace) {
  const std::string p = tune_with([](json& j) { j["groups"][0]["points"][2].erase("median_us"); });
  const std::string e = error_of([&] { read_tune(p); });
  EXPECT_NE(e.find("groups[0].points[2]: no \"median_us\" (required)"), std::string::npos) << e;
  const std::string p2 =
      tune_with([](json& j) { j["groups"][1]["points"][0]["p20_us"] = "14 us"; });
  EXPECT_NE(error_of([&] { read_tune(p2); }).find("\"p20_us\" is not a number: \"14 us\""),
            std::string::npos);
  const std::string p3 = tune_with([](json& j) { j["provenance"].erase("command"); });
  EXPECT_NE(error_of([&] { read_tune(p3); }).find("provenance: no \"command\""), std::string::npos);
  const std::string p4 = tune_with([](json& j) { j["experiment"] = "threads"; });
  EXPECT_NE(error_of([&] { read_tune(p4); }).find("expected block_size, batch_size or precision"),
            std::string::npos);
}

TEST_F(BadInputs, AFailedPointWithTimingFieldsIsRefused) {
  const std::string p =
      tune_with([](json& j) { j["groups"][0]["points"][4]["median_us"] = 170.0; });
  const std::string e = error_of([&] { read_tune(p); });
  EXPECT_NE(e.find("groups[0].points[4]: \"correct\" is false but it has \"median_us\""),
            std::string::npos)
      << e;
}

TEST_F(BadInputs, ABestOrBaselineThatFailedItsCheckIsNoResult) {
  const std::string p = tune_with([](json& j) { j["groups"][0]["best"] = 4; });
  const std::string e = error_of([&] { read_tune(p); });
  EXPECT_NE(e.find("the best (point 4, 1024 threads) failed its correctness check"),
            std::string::npos)
      << e;
  const std::string p2 = tune_with([](json& j) { j["groups"][0]["baseline"] = 9; });
  EXPECT_NE(error_of([&] { read_tune(p2); }).find("\"baseline\" 9 is not a point index (0..4)"),
            std::string::npos);
}

TEST_F(BadInputs, BestMinusOneIsOnlyForAGroupWhereEveryPointFailed) {
  const std::string p = tune_with([](json& j) { j["groups"][0]["best"] = -1; });
  EXPECT_NE(error_of([&] {
              read_tune(p);
            }).find("\"best\" is -1 (no configuration passed its check) but 4 point(s) did"),
            std::string::npos);
  const std::string p2 = tune_with([](json& j) { j["groups"][0]["best"] = -2; });
  EXPECT_NE(error_of([&] { read_tune(p2); }).find("\"best\" -2 is not -1 or a point index"),
            std::string::npos);
}

// day18 tune's own cases: a group whose every configuration failed (best -1, speedup 0) and one
// whose baseline failed (speedup 0) are results to show, not broken files.
json failed_point(const json& p) {
  return {{"config", p["config"]}, {"label", p["label"]},         {"correct", false},
          {"max_abs_err", 0.5},    {"tolerance", p["tolerance"]}, {"extra", json::object()}};
}

TEST_F(BadInputs, AGroupWhereEveryPointFailedIsShownAsNoResult) {
  const std::string p = tune_with([](json& j) {
    json& g = j["groups"][1];
    for (json& pt : g["points"]) pt = failed_point(pt);
    g["best"] = -1;
    g["speedup"] = 0;
    g["within_noise"] = false;
  });
  ReportInputs in = fixture_inputs();
  in.tunes = {read_tune(p)};
  const std::string md = report_markdown(in);
  EXPECT_NE(md.find("**No result**: no configuration passed its correctness check"),
            std::string::npos);
  bool listed = false;
  for (const Proposal& x : proposals(in))
    if (x.where == "block_size: paged_attention v1, B=8 ctx 1024 fp16") {
      EXPECT_FALSE(x.ranked);
      EXPECT_NE(x.why.find("no result"), std::string::npos) << x.why;
      listed = true;
    }
  EXPECT_TRUE(listed);
}

TEST_F(BadInputs, AFailedBaselineLeavesNothingToCompareWith) {
  const std::string p = tune_with([](json& j) {
    json& g = j["groups"][0];
    g["points"][1] = failed_point(g["points"][1]);  // the baseline, 128 threads
    g["speedup"] = 0;
  });
  ReportInputs in = fixture_inputs();
  in.tunes = {read_tune(p)};
  const std::string md = report_markdown(in);
  EXPECT_NE(md.find("**No comparison**: the baseline `128 threads` failed its correctness check"),
            std::string::npos);
  for (const Proposal& x : proposals(in))
    if (x.where == "block_size: paged_attention v1, B=64 ctx 4096 fp16") {
      EXPECT_FALSE(x.ranked);
    }
}

TEST_F(BadInputs, ASpeedupThatTheMediansDoNotGiveIsRefused) {
  const std::string p = tune_with([](json& j) { j["groups"][0]["speedup"] = 1.5; });
  const std::string e = error_of([&] { read_tune(p); });
  EXPECT_NE(e.find("\"speedup\" is 1.5 but baseline median / best median is 1.31"),
            std::string::npos)
      << e;
}

TEST_F(BadInputs, PercentilesOutOfOrderAreRefused) {
  const std::string p = tune_with([](json& j) { j["groups"][0]["points"][0]["p20_us"] = 300.0; });
  EXPECT_NE(error_of([&] { read_tune(p); }).find("expected p20_us <= median_us <= p80_us"),
            std::string::npos);
}

TEST_F(BadInputs, AnExperimentWithNoGroupsIsRefused) {
  const std::string p = tune_with([](json& j) { j["groups"] = json::array(); });
  EXPECT_NE(error_of([&] { read_tune(p); }).find("\"groups\" is empty"), std::string::npos);
}

}  // namespace
}  // namespace day18::report
