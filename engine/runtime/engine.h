// LLMEngine: the whole step loop. Owns the model, the block manager, the scheduler, the input
// batch and the stream executor; one step() is
//
//   [Scheduler]      schedule step N+1 (CPU)                       -- while the GPU runs step N
//   [PrepareInputs]  fill the pinned staging of N+1's parity (CPU)
//                    submit: swaps (cache stream) -> one H2D (h2d stream) -> feed placeholders,
//                    [ModelExecutor] forward, [Sampling] (compute stream) -> D2H (d2h stream)
//                    wait on step N's D2H event (the CPU's only wait)
//   [ProcessOutputs] append N's tokens, stop sequences, free their blocks (deferred if N+1 uses them)
//
// With async_scheduling off, each step is scheduled, run, waited for and processed before the next
// (the same stages, no overlap). The CPU backend runs the same code synchronously.
//
// Measuring (EngineMetrics): every step gets its own share of the wall time (StepRecord::wall_ms,
// summed into the prefill / decode tokens/s) and a compute interval on one timeline (CUDA events;
// CPU backend: the host clock), from which come the GPU busy fraction over the whole run and the
// steady-state idle between decode steps (DecodeIdleMeter).
//
//   LLMEngine engine(EngineConfig{.preset = "tiny"});
//   int64_t id = engine.add_request({1, 2, 3}, params);
//   engine.run_until_done();
//   const std::vector<int32_t>& tokens = engine.scheduler().sequence(id).output;
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "engine/runtime/block_manager.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/input_batch.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/scheduler.h"

namespace day18 {

struct EngineConfig {
  std::string model_dir;        // Hugging Face folder, or
  std::string preset = "tiny";  // a built-in random model (used when model_dir is empty)
  DType dtype = DType::f32;
  Device device = Device::cpu;
  uint64_t seed = 0;  // weights of a preset
  int64_t max_num_seqs = 64;
  int64_t max_num_batched_tokens = 512;
  int64_t max_model_len = 1024;  // capped by the model's max_position
  int64_t block_size = 16;
  int64_t num_gpu_blocks = 0;   // 0: derive (CUDA: gpu_memory_utilization; CPU: a fixed default)
  int64_t num_cpu_blocks = 256;  // pinned swap pool
  double gpu_memory_utilization = 0.9;
  double watermark = 0.01;
  bool cuda_graphs = false;
  bool async_scheduling = true;  // overlap CPU scheduling of N+1 with the GPU's step N
  // Pad decode-only steps to the CUDA-graph batch buckets and plan attention for context buckets
  // even when running eagerly (always on with cuda_graphs): what makes eager == replay bitwise.
  bool pad_decode = false;
};

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
  double prefill_tokens_per_s() const { return prefill_wall_s > 0 ? prefill_tokens / prefill_wall_s : 0; }
  double decode_tokens_per_s() const { return decode_wall_s > 0 ? decode_tokens / decode_wall_s : 0; }
};

class LLMEngine {
 public:
  explicit LLMEngine(const EngineConfig& config);
  ~LLMEngine();

  int64_t add_request(std::vector<int32_t> prompt, SamplingParams params);
  // One step (see the header comment). Returns the sequences finished by the outputs processed
  // in this call.
  std::vector<Sequence*> step();
  bool has_work() const { return scheduler_->has_unfinished() || !inflight_.empty(); }
  // Steps until every request finished; `progress` is called about once per second.
  void run_until_done(const std::function<void(const LLMEngine&)>& progress = {});

  const EngineConfig& config() const { return config_; }
  LlamaModel& model() { return *model_; }
  const LlamaModel& model() const { return *model_; }
  Scheduler& scheduler() { return *scheduler_; }
  const Scheduler& scheduler() const { return *scheduler_; }
  BlockManager& block_manager() { return *bm_; }
  StepExecutor& executor() { return *executor_; }
  const EngineMetrics& metrics() const { return metrics_; }
  const std::vector<StepRecord>& records() const { return records_; }
  int64_t num_gpu_blocks() const { return bm_->num_gpu_blocks(); }
  size_t weight_bytes() const { return model_->weight_bytes(); }
  size_t kv_cache_bytes() const { return model_->kv_cache_bytes(); }

 private:
  struct InFlight {
    SchedulerOutput out;
    PreparedStep prep;
    StepRecord rec;
  };
  std::vector<Sequence*> finish_step(InFlight& f);

  EngineConfig config_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<BlockManager> bm_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<InputBatch> input_;
  std::unique_ptr<StepExecutor> executor_;
  std::deque<InFlight> inflight_;
  int next_parity_ = 0;
  std::unique_ptr<Event> origin_;  // CUDA: timeline origin, recorded before the first step
  double t0_ = -1;
  // CPU ms (schedule + prepare + submit) of the steps submitted since the last finish_step: they
  // ran inside the interval of the step finished next, but are charged to their own steps.
  double ahead_ms_ = 0;
  double first_compute_start_ = -1, last_compute_end_ = 0, busy_ms_ = 0;
  DecodeIdleMeter decode_idle_;
  EngineMetrics metrics_;
  std::vector<StepRecord> records_;
};

// Derives the GPU block count from a memory fraction: (fraction * total - used by others -
// weights - scratch reserve) / KV bytes per block. Throws naming the numbers if nothing fits.
int64_t derive_num_gpu_blocks(const ModelConfig& config, DType dtype, int64_t block_size,
                              double gpu_memory_utilization, int64_t max_model_len);

}  // namespace day18
