// `day18 report`: the optimization report (the day's third deliverable) as one markdown page,
// generated from the recorded JSON of the other commands (inputs.h) and nothing else:
//
//   1. the machine and its measured roofs        (--probe, --roof)
//   2. where one step's time goes                (--trace-metrics, the timeline PNG)
//   3. each kernel's verdict                     (--analysis, the roofline PNG)
//   4. each experiment: hypothesis -> table and plot -> best vs baseline with its noise -> the
//      bottleneck before and after               (--tune, one or more)
//   5. the proposed optimizations, ranked by the gain computed from the measurements (gain.h)
//   6. the commands that reproduce it
//
// A missing input leaves its section saying what to run to get it. Every number is formatted
// from the JSON with the rounding stated at the end of the page (format_* below), so a test can
// parse the tables back and compare them with the files.
//
//   ReportInputs in;
//   in.probe = read_probe("bandwidth.json");
//   in.tunes.push_back(read_tune("block_size.json"));
//   std::string md = report_markdown(in);
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/report/gain.h"
#include "engine/report/inputs.h"

namespace day18::report {

struct ReportInputs {
  std::optional<ProbeInput> probe;
  std::optional<RoofInput> roof;
  std::optional<TraceInput> trace;
  std::optional<AnalysisInput> analysis;
  std::vector<TuneInput> tunes;
  // Figures, as the page links them (relative to the page; "" = none).
  std::string timeline_png, roofline_png;
  std::vector<std::string> tune_pngs;     // one per tune (same order); "" = not drawn
  std::vector<std::string> figure_notes;  // why a figure is missing (the plot script's error)
  std::string command;  // how this page was made ("day18 report --probe ... --out DIR")
};

// One proposed optimization of the ranked list.
struct Proposal {
  std::string kernel, where;             // the analysis row (or the experiment's kernel)
  std::string change;                    // what to do, in words
  std::string verdict;                   // the kernel's verdict now
  std::string rule;                      // gain_target()'s rule, or the experiment it comes from
  double pct_now = -1, pct_target = -1;  // % of roof (-1: the rule uses none)
  double kernel_us = 0;  // the kernel's time per step in the analysis (all its launches)
  Gain gain;
  bool ranked = false;  // has a gain per step; else `why` says what is missing
  std::string why;
};
// The list of section 5: roofline targets for each analysis kernel (gain_target), launch gaps for
// latency-bound ones (from the trace), and the block-size experiments' measured speedups applied
// to the analysis kernel they tuned; ranked ones first, in rank_by_gain()'s order (by saved_us,
// ties keep that order), then the others in that order.
std::vector<Proposal> proposals(const ReportInputs& in);

std::string report_markdown(const ReportInputs& in);

// The rounding of every number on the page (the test parses them back with the same rules).
std::string format_us(double us);      // "%.2f" below 10 us, else "%.1f"
std::string format_ms(double ms);      // "%.3f"
std::string format_pct(double pct);    // "%.1f%%"
std::string format_gbps(double gbps);  // "%.0f"
std::string format_tflops(double tf);  // "%.0f"
std::string format_speedup(double x);  // "%.2fx"
std::string format_mb(double bytes);   // bytes / 1e6, "%.1f"
std::string format_err(double e);      // "%.1e"
std::string format_count(double n);    // "%.0f"

}  // namespace day18::report
