// Measuring the engine (EngineMetrics): every step gets its own share of the wall time
// (StepRecord::wall_ms, summed into the prefill / decode tokens/s) and a compute interval on one
// timeline (CUDA events; CPU backend: the host clock), from which come the GPU busy fraction over
// the whole run and the steady-state idle between decode steps (DecodeIdleMeter). EngineMeter
// does the bookkeeping: LLMEngine tells it when a step was submitted and when its outputs were
// processed, and reads the metrics and records from it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "engine/core/memory.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/scheduler.h"

namespace day18 {

struct StepRecord {
  int64_t step = 0, num_seqs = 0, num_tokens = 0, num_prefills = 0, padded_to = 0;
  bool graph = false;
  bool swaps = false;  // ran swap-outs / swap-ins before its compute
  double scheduler_ms = 0, prepare_ms = 0, wait_ms = 0, process_ms = 0;  // CPU wall
  // CPU wall of StepExecutor::submit: the enqueue (+ a graph capture); CPU backend: the compute.
  double submit_ms = 0;
  StepTimes gpu;  // from events (CPU backend: host times); gpu.captured: captured a CUDA graph
  // The compute timeline, ms since the engine's origin (CUDA: an event recorded before the first
  // step; CPU backend: the host clock at the first step(), around forward + sampling).
  double h2d_start = 0, h2d_end = 0, compute_start = 0, compute_end = 0;
  double end_wall_s = 0;  // when its outputs were processed (s since the first step)
  // This step's share of the run's wall time (ms): the time from the previous step's outputs to
  // its own, except that the CPU time of scheduling, preparing and submitting a step is charged to
  // that step whenever it ran (in async mode it runs while the previous step is in flight; on the
  // CPU backend submit() IS the compute), and graph capture time to nobody (graph_capture_ms).
  double wall_ms = 0;
  bool steady_decode = false;  // the gap before it counts in the steady-state decode idle
};

// The steady-state GPU idle between decode steps (the target: <= 5% of the step). Fed the
// step records in order, it takes each pair of consecutive steps N, N+1 that are both decode-only
// and where N+1 is no one-off (did not capture a CUDA graph: the GPU waits for the CPU's capture
// by design; ran no swaps: the compute waits for the copies), and measures the gap from N's
// compute_end to N+1's compute_start. idle_fraction = sum of gaps / sum of (compute_end(N+1) -
// compute_end(N)), i.e. the share of the steady decode time the GPU had nothing to run.
class DecodeIdleMeter {
 public:
  static bool counts(const StepRecord& prev, const StepRecord& next);
  // Adds the next record; returns whether the gap before it counted.
  bool add(const StepRecord& next);
  int64_t pairs() const { return pairs_; }
  double median_gap_ms() const;  // 0 without pairs
  double idle_fraction() const { return span_ms_ > 0 ? idle_ms_ / span_ms_ : 0; }

 private:
  bool has_prev_ = false;
  StepRecord prev_;
  int64_t pairs_ = 0;
  double idle_ms_ = 0, span_ms_ = 0;
  // Running median: the lower half (largest on top) and the upper half (smallest on top).
  std::priority_queue<double> lower_;
  std::priority_queue<double, std::vector<double>, std::greater<double>> upper_;
};

// Throughput and time of a run. Stage times are sums over steps; the CPU stages run while the GPU
// computes in async mode, so they add up to more than the wall time there.
struct EngineMetrics {
  int64_t steps = 0, prefill_tokens = 0, decode_tokens = 0, generated_tokens = 0;
  double scheduler_ms = 0, prepare_ms = 0, wait_ms = 0, process_ms = 0;  // CPU, summed
  double model_ms = 0, sampling_ms = 0, h2d_ms = 0, d2h_ms = 0;          // GPU, summed
  // Sums of the steps' wall_ms with / without a prefill; wall_s = the whole run (it also holds
  // the graph captures: prefill + decode + graph_capture_ms ~ wall_s).
  double prefill_wall_s = 0, decode_wall_s = 0, wall_s = 0;
  // GPU busy (CPU backend: the forward + sampling on the host clock).
  //   gpu_busy_fraction_all: sum of compute intervals / first compute start .. last end, over
  //     ALL steps: includes the prefill, the first decode steps and every one-off (graph
  //     captures, swaps) in the span.
  //   steady state (DecodeIdleMeter): decode_steady_pairs gaps between consecutive decode steps,
  //     their median (us), idle fraction, and gpu_busy_fraction = 1 - decode_idle_fraction
  //     (the "GPU idle between decode steps" target; 0 when decode_steady_pairs == 0).
  double gpu_busy_fraction_all = 0;
  int64_t decode_steady_pairs = 0;
  double decode_gap_median_us = 0, decode_idle_fraction = 0;
  double gpu_busy_fraction = 0;
  int64_t graph_replays = 0, graph_captures = 0;
  double graph_capture_ms = 0;  // CPU wall clock around capture + instantiate + upload, summed
  double prefill_tokens_per_s() const {
    return prefill_wall_s > 0 ? prefill_tokens / prefill_wall_s : 0;
  }
  double decode_tokens_per_s() const {
    return decode_wall_s > 0 ? decode_tokens / decode_wall_s : 0;
  }
};

// The step records of a run and the EngineMetrics derived from them, fed by LLMEngine::step().
class EngineMeter {
 public:
  // Starts the run's clocks (at the first step): the host clock and, on CUDA, the timeline's
  // origin event, recorded on `compute_stream` before the first step's work.
  void start(bool cuda, cudaStream_t compute_stream);
  bool started() const { return t0_ >= 0; }
  // A step was submitted; `rec` holds its scheduler, prepare and submit times (CPU work that ran
  // ahead of the step finished next, charged to this step). Fills in what the step ran.
  void submitted(StepRecord& rec, const SchedulerOutput& out);
  // A step() scheduled nothing: its scheduler time still counts.
  void scheduled_nothing(double scheduler_ms) { metrics_.scheduler_ms += scheduler_ms; }
  // A step's outputs were processed: `rec` holds its wait, process and GPU times, `ev` its events
  // (nullptr on the CPU backend: the host times in rec.gpu place it). Places it on the timeline,
  // charges its share of the wall time, adds it to the metrics and keeps the record.
  void finished(StepRecord rec, const SchedulerOutput& out, const StepExecutor::StepEvents* ev,
                int64_t graph_replays);

  const EngineMetrics& metrics() const { return metrics_; }
  const std::vector<StepRecord>& records() const { return records_; }

 private:
  std::unique_ptr<Event> origin_;  // CUDA: timeline origin, recorded before the first step
  double t0_ = -1;                 // host clock (s) at the first step
  // CPU ms (schedule + prepare + submit) of the steps submitted since the last finished(): they
  // ran inside the interval of the step finished next, but are charged to their own steps.
  double ahead_ms_ = 0;
  double first_compute_start_ = -1, last_compute_end_ = 0, busy_ms_ = 0;
  DecodeIdleMeter decode_idle_;
  EngineMetrics metrics_;
  std::vector<StepRecord> records_;
};

}  // namespace day18
