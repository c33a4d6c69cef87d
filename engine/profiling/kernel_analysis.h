// The kernel profile analysis: from an Nsight Compute CSV (full evidence) or a recorded trace
// (durations and launch gaps; bytes and FLOPs from the cost model), one row per kernel with its
// time share, bytes, FLOPs, intensity, % of the roof, verdict, evidence and what to try.
// `day18 classify` prints it as a table (and JSON), `day18 analyze` as the markdown page of the
// day's deliverable; scripts/plot_roofline.py draws the JSON.
//
//   AnalysisOptions o;
//   o.roof = {4.2e12, 790e12, 0, "--peak-bw 4200 --peak-flops 790"};
//   o.plan = DecodePlan{ModelConfig::preset("llama-1b"), {.num_seqs = 8, .context_len = 1024}};
//   Analysis a = analyze_ncu(ncu::read_csv("decode.csv"), o);
//   std::fputs(analysis_table(a).c_str(), stdout);
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/profiling/classifier.h"
#include "engine/profiling/cost_model.h"
#include "engine/profiling/ncu_csv.h"

namespace day18 {

// The metrics the analysis reads from an ncu CSV (scripts/profile_ncu.sh asks for all of them;
// a test checks the two lists agree). Missing ones leave their evidence out.
const std::vector<std::string>& ncu_metrics_read();

// One row of an ncu CSV as evidence (per launch). `read` reads one metric (ncu::read_metric; lab
// 06's tests pass a reference reader so that the decision can be checked apart from task 1).
using MetricReader =
    std::function<std::optional<double>(const ncu::Table&, size_t, std::string_view)>;
KernelEvidence evidence_from_ncu(const ncu::Table& t, size_t row,
                                 const MetricReader& read = ncu::read_metric);

// Kernel launches in a Chrome Trace Event JSON (what `day18 trace` writes): the "X" events whose
// "cat" is "kernel", with their stream (pid, tid), grid and block (args), in time order; plus the
// idle gap on the same stream before each (-1 for a stream's first op).
struct TraceKernel {
  std::string name;
  double start_us = 0, dur_us = 0;
  int64_t pid = 0, tid = 0;
  std::string stream;                          // args.stream when present
  int64_t grid_blocks = 0, block_threads = 0;  // products of args.grid / args.block (0: unknown)
  int64_t step = -1;  // args.step: the engine step it belongs to (-1: unknown)
  double gap_us = -1;
};
struct KernelTrace {
  std::string source;
  std::vector<TraceKernel> kernels;
  int gpu_ops = 0;  // kernels, copies and memsets seen
};
KernelTrace parse_chrome_trace(const nlohmann::json& j, const std::string& source);
KernelTrace read_chrome_trace(const std::string& path);  // InvalidArgument naming the file

// What ran, for the cost model: a model and a decode step's shape.
struct DecodePlan {
  ModelConfig config;
  DecodeShape shape;
  std::string describe() const;  // "llama-1b decode: 8 sequences x 1024 context, f16"
};

struct AnalysisOptions {
  Roof roof;
  std::optional<DecodePlan> plan;  // attach the cost model's bytes/FLOPs (and names) to kernels
  double sm_count = 0;             // trace path: SMs, to tell a grid below one wave (0: unknown)
  // trace path: only kernels of engine steps [first, last] (args.step); -1: every kernel. The
  // cost model's plan is one decode shape: leave out a trace's prefill steps.
  int64_t first_step = -1, last_step = -1;
  Thresholds thresholds = default_thresholds();
  bool group = true;  // one row per kernel (name, grid, block, place in the step), not per launch
  // The profile is `day18 calibrate --once`: its cuBLAS GEMM gets its known FLOPs
  // (2 x calibration::kGemmN^3), which the counters miss.
  bool calibration = false;
};

struct KernelRow {
  KernelEvidence evidence;  // per launch (means over the group)
  Classification result;
  std::optional<OpCost> analytic;  // the cost model's count per launch, when matched
  double time_share = 0;           // of all kernel time in the input, 0..1
};

struct Analysis {
  std::string source;  // the file analyzed
  std::string input;   // "ncu" or "trace"
  Roof roof;
  std::string plan;  // DecodePlan::describe(), or ""
  double total_kernel_s = 0;
  int launches = 0;
  std::vector<KernelRow> kernels;  // by total time, longest first
  std::vector<std::string> notes;  // what the reader should know (ncu errors, unmatched kernels)
};

Analysis analyze_ncu(const ncu::Table& t, const AnalysisOptions& o);
Analysis analyze_trace(const KernelTrace& trace, const AnalysisOptions& o);

// The JSON of `day18 classify --json` (scripts/plot_roofline.py reads it).
nlohmann::json analysis_json(const Analysis& a);
// A table for the terminal: one line per kernel, then its evidence and advice (when `details`).
std::string analysis_table(const Analysis& a, bool details = true);
// The markdown page of `day18 analyze`. `roofline_png`: the figure's path relative to the page
// ("" leaves it out); `command`: how the page was made.
std::string analysis_markdown(const Analysis& a, const std::string& roofline_png,
                              const std::string& command);

// Reads the roof from a JSON file: `day18 calibrate --json` ({"p_gbps", "peak_tensor_tflops",
// "peak_fma_tflops"}) or the bandwidth probe's ({"p_gbps"}). Fields it lacks stay 0.
Roof read_roof_json(const std::string& path);

}  // namespace day18
