// LLMEngine: the whole step loop. Owns the model, the block manager, the scheduler, the input
// batch and the stream executor; one step() is
//
//   [Scheduler]      schedule step N+1 (CPU)                       -- while the GPU runs step N
//   [PrepareInputs]  fill the pinned staging of N+1's parity (CPU)
//                    submit: swaps (cache stream) -> one H2D (h2d stream) -> feed placeholders,
//                    [ModelExecutor] forward, [Sampling] (compute stream) -> D2H (d2h stream)
//                    wait on step N's D2H event (the CPU's only wait)
//   [ProcessOutputs] append N's tokens, stop sequences, free blocks (deferred if N+1 uses them)
//
// With async_scheduling off, each step is scheduled, run, waited for and processed before the next
// (the same stages, no overlap). The CPU backend runs the same code synchronously.
//
// step() reads as its three stages: schedule(), run() (prepare + submit), process() (wait +
// process outputs). What each step took is measured in engine_metrics.h (StepRecord,
// EngineMetrics, DecodeIdleMeter; EngineMeter keeps the books).
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
#include <string>
#include <vector>

#include "engine/runtime/block_manager.h"
#include "engine/runtime/engine_metrics.h"
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
  int64_t num_gpu_blocks = 0;    // 0: derive (CUDA: gpu_memory_utilization; CPU: a fixed default)
  int64_t num_cpu_blocks = 256;  // pinned swap pool
  double gpu_memory_utilization = 0.9;
  double watermark = 0.01;
  bool cuda_graphs = false;
  bool async_scheduling = true;  // overlap CPU scheduling of N+1 with the GPU's step N
  // Pad decode-only steps to the CUDA-graph batch buckets and plan attention for context buckets
  // even when running eagerly (always on with cuda_graphs): what makes eager == replay bitwise.
  bool pad_decode = false;
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
  const EngineMetrics& metrics() const { return meter_.metrics(); }
  const std::vector<StepRecord>& records() const { return meter_.records(); }
  int64_t num_gpu_blocks() const { return bm_->num_gpu_blocks(); }
  size_t weight_bytes() const { return model_->weight_bytes(); }
  size_t kv_cache_bytes() const { return model_->kv_cache_bytes(); }

 private:
  struct InFlight {
    SchedulerOutput out;
    PreparedStep prep;
    StepRecord rec;
  };
  // The stages of step(): schedule the next step; prepare its inputs and submit it (false if it
  // is empty); wait for and process the oldest steps in flight until `keep` are left.
  SchedulerOutput schedule(StepRecord& rec);
  bool run(SchedulerOutput out, StepRecord& rec);
  std::vector<Sequence*> process(size_t keep);
  PreparedStep prepare_inputs(const SchedulerOutput& out, const InFlight* prev, StepRecord& rec);
  std::vector<Sequence*> finish_step(InFlight& f);  // waits for one step, processes its outputs

  EngineConfig config_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<BlockManager> bm_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<InputBatch> input_;
  std::unique_ptr<StepExecutor> executor_;
  std::deque<InFlight> inflight_;
  int next_parity_ = 0;
  EngineMeter meter_;
};

// Derives the GPU block count from a memory fraction: (fraction * total - used by others -
// weights - scratch reserve) / KV bytes per block. Throws naming the numbers if nothing fits.
int64_t derive_num_gpu_blocks(const ModelConfig& config, DType dtype, int64_t block_size,
                              double gpu_memory_utilization, int64_t max_model_len);

}  // namespace day18
