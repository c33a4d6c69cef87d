// Lab 07, task 4, end to end: the optimization report of the H200 (`day18 report` on the recorded
// JSON of reference/results/h200/, as reference/results/h200/report/README.md made it), generated
// here by report_markdown(). In the student build its ranked list is computed by YOUR gain.cpp
// (expected_gain, launch_gain, speedup_gain, rank_by_gain): every gain, its % of the step, the
// order, the CUDA-graph total and the "not ranked" reasons of section 5 must be the ones of the
// committed page, which the engine wrote. CPU only: the report measures nothing.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/report/report.h"
#include "tests/labs/07/lab07.h"

namespace day18 {
namespace {

const std::string kH200 = "reference/results/h200/";

std::string src(const std::string& rel) {
  return day18::testing::source_dir() + "/" + rel;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The inputs of reference/results/h200/report/README.md's command.
report::ReportInputs h200_inputs() {
  report::ReportInputs in;
  in.probe = report::read_probe(src(kH200 + "bandwidth/bandwidth.json"));
  in.roof = report::read_roof(src(kH200 + "kernel_analysis/roof.json"));
  in.trace = report::read_trace_metrics(src(kH200 + "timeline/trace_llama1b.metrics.json"));
  in.analysis = report::read_analysis(src(kH200 + "kernel_analysis/kernel_analysis.json"));
  for (const char* t : {"block_size", "batch_size", "precision"})
    in.tunes.push_back(report::read_tune(src(kH200 + "tune/" + t + ".json")));
  return in;
}

// The lines of section 5 ("## 5. ..." up to the next "## ").
std::vector<std::string> section5(const std::string& md) {
  std::vector<std::string> out;
  std::istringstream is(md);
  std::string line;
  bool in = false;
  while (std::getline(is, line)) {
    if (line.rfind("## ", 0) == 0) in = line.rfind("## 5.", 0) == 0;
    if (in) out.push_back(line);
  }
  return out;
}

std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 1; i < row.size(); ++i) {
    if (row[i] == '\\' && i + 1 < row.size() && row[i + 1] == '|') {
      cur += '|';
      ++i;
    } else if (row[i] == '|') {
      const size_t a = cur.find_first_not_of(' '), b = cur.find_last_not_of(' ');
      out.push_back(a == std::string::npos ? "" : cur.substr(a, b - a + 1));
      cur.clear();
    } else {
      cur += row[i];
    }
  }
  return out;
}

TEST(Lab07_Task4_Report, TheH200RankedListIsComputedByYourFunctionsAndMatchesTheEngines) {
  const std::string committed = kH200 + "report/report.md";
  const std::vector<std::string> want = section5(read_text(src(committed)));
  ASSERT_GT(want.size(), 10u) << committed << " has no section 5";
  const std::vector<std::string> got = section5(report::report_markdown(h200_inputs()));

  // Mismatches, cell by cell in the table rows, line by line elsewhere.
  std::vector<std::string> header;
  std::vector<std::string> diffs;
  for (size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
    const std::string w = i < want.size() ? want[i] : "(no line)";
    const std::string g = i < got.size() ? got[i] : "(no line)";
    if (w.rfind("| rank", 0) == 0) header = cells(w);
    if (w == g) continue;
    if (w.rfind("| ", 0) == 0 && g.rfind("| ", 0) == 0 && !header.empty()) {
      const std::vector<std::string> a = cells(w), b = cells(g);
      const std::string who = "rank " + (a.empty() ? "?" : a[0]) +
                              (a.size() > 2 ? " (" + a[1] + ", " + a[2] + ")" : "");
      for (size_t c = 0; c < std::max(a.size(), b.size()); ++c) {
        const std::string x = c < a.size() ? a[c] : "-", y = c < b.size() ? b[c] : "-";
        if (x != y)
          diffs.push_back(who + ", column '" + (c < header.size() ? header[c] : "?") +
                          "': expected " + x + ", got " + y);
      }
    } else {
      diffs.push_back("line " + std::to_string(i + 1) + " of section 5:\n      expected: " + w +
                      "\n      got:      " + g);
    }
  }
  if (!diffs.empty()) {
    std::ostringstream os;
    os << "section 5 of the H200 report (the ranked list) differs from the engine's (" << committed
       << ") in " << diffs.size() << " places; the first:\n";
    for (size_t i = 0; i < diffs.size() && i < 6; ++i) os << "  " << diffs[i] << "\n";
    if (diffs.size() > 6) os << "  ... and " << diffs.size() - 6 << " more\n";
    os << "hint: labs/07-tuning/README.md, Task 4. A gain column wrong: expected_gain, launch_gain "
          "or speedup_gain (which rule the row used is in its 'proposal' column); the rows in "
          "another order: rank_by_gain (by saved_us, largest first, ties in their order); a kernel "
          "at or above its target must save 0 (it then moves to 'Not ranked').";
    ADD_FAILURE() << os.str();
  }
}

TEST(Lab07_Task4_Report, TheFirstToOptimizeIsTheLargestSavingOfTheStep) {
  // The knowledge check's answer, from the proposals themselves (report.h): ranked ones first,
  // each saving no more than the one before, and the first row is the largest saving.
  const std::vector<report::Proposal> ps = report::proposals(h200_inputs());
  ASSERT_FALSE(ps.empty());
  ASSERT_TRUE(ps[0].ranked) << "the H200 report has ranked proposals";
  for (size_t i = 1; i < ps.size(); ++i) {
    if (!ps[i].ranked) {
      for (size_t j = i; j < ps.size(); ++j)
        EXPECT_FALSE(ps[j].ranked) << "a ranked proposal after an unranked one: " << ps[j].kernel;
      break;
    }
    EXPECT_LE(ps[i].gain.saved_us, ps[i - 1].gain.saved_us)
        << "rank " << i + 1 << " (" << ps[i].kernel << ", " << ps[i].where << ") saves more than "
        << "rank " << i << ": rank_by_gain must put the largest saving first";
  }
  // The committed page's rank 1: the tensor-core attention kernel, 165.4 us of the 1370.7 us
  // step at 38.8% of its memory roof, to 90%: 165.4 x (1 - 38.8 / 90).
  EXPECT_EQ(ps[0].kernel, "paged_attention_mma_kernel") << "the H200's first: " << ps[0].where;
  EXPECT_NEAR(ps[0].gain.saved_us, 94.1, 0.05) << ps[0].where;
  EXPECT_NEAR(ps[0].gain.pct_of_step, 6.9, 0.05) << "pct_of_step = saved / step x 100";
}

}  // namespace
}  // namespace day18
