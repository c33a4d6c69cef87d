// The sweep runner of the tuning experiments: every configuration is launched, CHECKED against
// the oracle, and only then timed; the timing repeats until the spread is small or the point's
// time budget is spent. Lab 07 task 1 (run_sweep).
//
//   std::vector<Candidate> cs;           // one per configuration, each really launching it
//   cs.push_back({.config = {{"threads", 256}}, .label = "256 threads",
//                 .prepare = [&](cudaStream_t s) { poison(out, s); },
//                 .launch = [&](cudaStream_t s) { launch_with(256, s); },
//                 .check = [&] { return compare_with_oracle(out); }});
//   std::vector<Point> points = run_sweep(cs, SweepOptions::gpu(stream));
//
// What makes the sweep honest (each a way the seed's experiment goes wrong):
//   - the launch of each candidate carries ITS configuration (the seed timed the same SDPA call
//     for every "block size"); the launches are recorded (SweepOptions::record) so that a sweep
//     that varies nothing is caught (decide.h, check_parameter_reached);
//   - the output is poisoned, the candidate launched once and compared with the oracle BEFORE any
//     timing: a wrong configuration is reported, never timed, never "the winner";
//   - the output is checked again after the timed runs (a race that shows only under repetition);
//   - events on the stream, L2 flushed, warm-up, median and p20/p80 of many repeats
//     (engine/profiling/timing.h), not one host-clock loop.
// The timer, the recorder and the synchronization are options, so the runner is tested on the CPU
// with fakes.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/profiling/stats.h"
#include "engine/tuning/experiment.h"

namespace day18::tuning {

struct CheckResult {
  bool ok = false;
  double max_abs_err = 0, tolerance = 0;
  std::string report;  // the first mismatches when not ok
};

struct Candidate {
  nlohmann::json config = nlohmann::json::object();
  std::string label;
  std::function<void(cudaStream_t)> prepare;  // before the checked launch: poison the output
  std::function<void(cudaStream_t)> launch;   // enqueue this configuration's kernel(s)
  std::function<CheckResult()> check;         // after a sync: the output vs the oracle
  double bytes = 0, flops = 0;                // analytic, per launch (cost_model.h)
  // Check again after the timed runs. False for an op that works in place (fused_add_rms_norm):
  // its last timed run started from the run before's output, so the oracle no longer applies.
  bool recheck = true;
  nlohmann::json extra = nlohmann::json::object();  // copied into the point
};

struct SweepOptions {
  cudaStream_t stream = nullptr;
  int min_repeats = 20;         // at least this many timed runs
  int max_repeats = 200;        // at most
  int batch = 10;               // timed runs per round
  double target_spread = 0.03;  // stop once (p80 - p20) / median <= this (and >= min_repeats)
  double point_budget_s = 5;    // ...or once this much wall time went into the point's timing
  // `repeats` timed runs of fn (one warm-up first), milliseconds. GPU: time_gpu with events and
  // the L2 flushed before each run.
  std::function<Stats(const std::function<void(cudaStream_t)>& fn, int repeats)> timer;
  // Runs fn (the checked launch) and returns what was launched: "kernel grid block; ..." as the
  // profiler saw it, "" when it cannot tell. Optional.
  std::function<std::string(const std::function<void()>& fn)> record;
  std::function<void()> sync;  // waits for the stream
  std::function<void(size_t index, size_t count, const std::string& label)> progress;

  // The GPU defaults: time_gpu on `stream`, cudaStreamSynchronize, the CUPTI recorder.
  static SweepOptions gpu(cudaStream_t stream);
};

// The points of `candidates`, in order. For each: prepare, launch (through record when given),
// sync, check; not ok -> correct = false, its error and report, and no timing; ok -> rounds of
// `batch` timed runs until min_repeats are done and the spread is within target_spread, or
// max_repeats, or point_budget_s; then the check again (not ok now: the timing is dropped and the
// point is marked not correct, with "after timing" in its report). bytes, flops, extra and the
// launch record (extra["launched"]) are copied in. pct_of_p, occupancy and verdict are the
// experiment's to fill (they need the roof). Candidates missing launch or check are
// InvalidArgument naming the label.
std::vector<Point> run_sweep(const std::vector<Candidate>& candidates, const SweepOptions& options);

// What the profiler saw fn launch, with CUPTI: "name grid(x,y,z) block(x,y,z)" per kernel, joined
// by "; ". "" when CUPTI cannot be used (another profiler, no GPU).
std::string record_launches(const std::function<void()>& fn);

}  // namespace day18::tuning
