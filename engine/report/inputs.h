// The inputs of `day18 report`, read from the JSON files the other commands write, each checked
// against its schema with errors that name the flag, the file and the field:
//
//   --probe FILE          day18 probe --json            (schema "day18-bandwidth-probe/1")
//   --roof FILE           day18 calibrate --json        (read_roof_json, kernel_analysis.h)
//   --trace-metrics FILE  day18 trace --out T.json  ->  T.metrics.json  (units "times in ms, ...")
//   --analysis FILE       day18 analyze|classify --json (kernels, total_kernel_us, roof)
//   --tune FILE           day18 tune --json             (schema "day18.tune.v1", the contract in
//                                                        docs/report.md)
//
// Only what the report prints is kept. A file that is missing, not JSON, of another schema or
// lacks a required field throws InvalidArgument naming the flag and the file; nothing is guessed.
// Optional fields are exactly those the writers leave out (a tune point that failed its check has
// no timing; an analysis kernel without bytes has no % of roof).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace day18::report {

// ---------------------------------------------------------------- the bandwidth probe
struct ProbeInput {
  std::string file;
  std::string gpu, sm, nvidia_driver, cuda_runtime, commit, time_utc;
  int sm_count = 0;
  double p_gbps = 0;
  double hbm_gbps = 0;  // datasheet (0: unknown)
  std::string link;     // "PCIe 5.0 x16"
  double link_gbps = 0;
  // largest-size bandwidth of the host copies (0: that kind was not probed)
  double h2d_pinned_gbps = 0, d2h_pinned_gbps = 0, h2d_pageable_gbps = 0, d2h_pageable_gbps = 0;
};
ProbeInput read_probe(const std::string& path);

// ---------------------------------------------------------------- the roof (day18 calibrate)
struct RoofInput {
  std::string file;
  double p_gbps = 0, peak_tensor_tflops = 0, peak_fma_tflops = 0;  // 0: not in the file
  std::string gpu;
};
RoofInput read_roof(const std::string& path);

// ---------------------------------------------------------------- the trace's metrics
struct StreamRow {
  std::string name;
  int64_t ops = 0;
  double busy_ms = 0, idle_ms = 0, host_wait_ms = 0, kernel_gap_ms = 0, other_ms = 0;
};
struct RangeRow {
  std::string name;
  double share = 0;                     // of the traced wall time, 0..1
  double ideal_lo = -1, ideal_hi = -1;  // percent; -1: the seed gives none
  std::string ideal_of, verdict;
};
struct TopKernel {
  std::string name;
  int64_t count = 0;
  double total_ms = 0, mean_us = 0, share = 0;
};
struct TraceInput {
  std::string file;
  std::string model, dtype, commit;
  int64_t requests = 0, traced_steps = 0;
  bool cuda_graphs = false, has_gpu = false;
  double window_ms = 0, kernel_ms = 0, busy_fraction = 0;  // device 0
  std::vector<StreamRow> streams;
  double overlap_fraction = 0;
  int64_t step_pairs = 0, step_pairs_overlapped = 0;
  int64_t kernels = 0, shorter_than_launch = 0;
  double median_launch_us = 0, median_kernel_us = 0;
  // The complete steps (every CPU stage traced): how many, and their medians.
  int64_t complete_steps = 0;
  double step_cpu_ms = 0, step_gpu_span_ms = 0, step_kernel_ms = 0, step_kernels = 0;
  std::vector<RangeRow> ranges;
  std::vector<TopKernel> top_kernels;
  // The compute stream's idle time before each launch that is not a wait on another stream
  // ((host wait + kernel gap) / ops): what CUDA graphs remove per launch. 0 without a compute
  // stream.
  double gap_us_per_launch = 0;
};
TraceInput read_trace_metrics(const std::string& path);

// ---------------------------------------------------------------- the kernel analysis
struct KernelVerdict {
  std::string name, what, verdict, detail, label;
  int64_t launches = 0;
  double time_share = 0;  // 0..1
  double duration_us = 0, total_us = 0;
  std::optional<double> pct_of_roof;  // absent without bytes (or FLOPs) for the kernel
  bool tensor_op = false;
  std::vector<std::string> evidence, recommendations;
};
struct AnalysisInput {
  std::string file;
  std::string source, input, plan;
  int64_t launches = 0;
  double total_kernel_us = 0;
  double peak_bw_gbps = 0, peak_tflops = 0, peak_fma_tflops = 0;
  std::string roof_source;
  std::vector<KernelVerdict> kernels;
  std::vector<std::string> notes;
};
AnalysisInput read_analysis(const std::string& path);

// ---------------------------------------------------------------- an experiment (day18 tune)
struct Occupancy {
  double theoretical_pct = 0, blocks_per_sm = 0, registers = 0, shared_bytes = 0, waves = 0;
};
struct TunePoint {
  std::string config;  // the config object as compact JSON, keys sorted
  std::map<std::string, std::string> config_values;  // parameter -> value as written
  std::string label;
  bool correct = false;
  double max_abs_err = 0, tolerance = 0;
  // Timing and the rest: present exactly when correct.
  double median_us = 0, p20_us = 0, p80_us = 0;
  int64_t repeats = 0;
  double bytes = 0, flops = 0, pct_of_p = 0;
  Occupancy occupancy;
  std::string verdict;
  std::map<std::string, double> extra;  // the numbers of "extra" (nested objects flattened
                                        // with '.'; anything not a number is left out)
  bool knee_flag = false;               // "extra": {"knee": true} (day18 tune marks the knee)
};
struct TuneGroup {
  std::string name, kernel, shape;  // shape as compact JSON
  int baseline = 0, best = 0;       // best -1: no configuration passed its check
  // Both the baseline and the best passed their check (and were timed): there is a comparison.
  bool comparable() const { return best >= 0 && points[baseline].correct; }
  double speedup = 0;
  bool within_noise = false;
  std::vector<TunePoint> points;
  int failed_points() const;
};
struct TuneInput {
  std::string file;
  std::string experiment;  // "block_size", "batch_size", "precision"
  std::string gpu, driver, cuda_runtime, commit, date, command;
  int sm_count = 0;
  double p_gbps = 0, peak_tflops = 0, peak_fma_tflops = 0;
  std::string p_source;
  std::string hypothesis;
  std::vector<std::string> parameters;
  std::vector<TuneGroup> groups;
  std::vector<std::string> notes;
};
// Checks the contract: every field present with its type; each group's best a point that passed
// its check (a best that computed the wrong answer is no result), or -1 when none did; speedup =
// baseline median / best median (within 1%) when the baseline passed too; p20 <= median <= p80;
// a point with "correct": false carries no timing field.
TuneInput read_tune(const std::string& path);

// The knee of a batch-size group: the largest batch whose step time is within kKneeFactor of the
// smallest batch's (points in the order of the file, correct ones only); -1 when there are fewer
// than two timed points. scripts/plot_experiments.py marks the same point.
inline constexpr double kKneeFactor = 1.25;
int batch_knee(const TuneGroup& g);

}  // namespace day18::report
