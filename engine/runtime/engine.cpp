#include "engine/runtime/engine.h"

#include <cstdio>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/runtime/model_memory.h"
#include "engine/profiling/range_recorder.h"

namespace day18 {
namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One CPU stage of a step, as the timeline shows it: `fn` runs inside the stage's range, named
// `name` (an NVTX range for Nsight Systems, recorded by the engine's range recorder while `day18
// trace` records: DAY18_NVTX_RANGE), and the stage's wall time goes to `ms` (StepRecord). The
// stages, in the order one step() runs them: Scheduler (schedule), PrepareInputs and Launch (run),
// Wait and ProcessOutputs (finish_step); the model's own ranges (ModelExecutor > Attention, MLP,
// Norm; Sampling) open inside Launch. Which step a stage belongs to is marked by the caller
// (trace::mark_step) before the range ends.
template <typename Fn>
void timed_stage(const char* name, double& ms, Fn&& fn) {
  // LAB 05 BEGIN stage_ranges: clock, fn() inside the stage's range, its time (about 6 lines)
  const auto t = std::chrono::steady_clock::now();
  {
    DAY18_NVTX_RANGE(name);
    fn();
  }
  ms = ms_since(t);
  // LAB 05 END stage_ranges
}
}  // namespace

int64_t derive_num_gpu_blocks(const ModelConfig& c, DType dtype, int64_t block_size, double util,
                              int64_t max_model_len) {
  DAY18_REQUIRE(util > 0 && util <= 1, "--gpu-memory-utilization must be in (0, 1], got ", util);
  size_t free_b = 0, total_b = 0;
  DAY18_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double used_by_others = double(total_b - free_b);
  const double weights = c.weight_bytes(dtype);
  const double reserve = 1.5 * (1 << 30);  // activations, logits, workspaces, cuBLAS
  const double avail = util * double(total_b) - used_by_others - weights - reserve;
  const double per_block = double(c.kv_cache_bytes_per_block(dtype, block_size));
  const int64_t blocks = avail > 0 ? static_cast<int64_t>(avail / per_block) : 0;
  const int64_t need = (max_model_len + block_size - 1) / block_size;
  DAY18_REQUIRE(blocks >= need, "KV cache: ", util, " of ", total_b / (1 << 20), " MiB leaves ",
                static_cast<int64_t>(std::max(avail, 0.0)) / (1 << 20), " MiB after ",
                static_cast<int64_t>(weights) / (1 << 20), " MiB of weights (", c.name, " ",
                dtype_name(dtype), "): ", blocks, " blocks, but one sequence of max_model_len ",
                max_model_len, " needs ", need,
                "; raise --gpu-memory-utilization, lower --max-model-len or use a smaller model");
  return blocks;
}

LLMEngine::LLMEngine(const EngineConfig& cfg) : config_(cfg) {
  if (config_.cuda_graphs) {
    DAY18_REQUIRE(config_.device == Device::cuda,
                  "--cuda-graphs on needs --device cuda (the CPU backend has no graphs)");
    config_.pad_decode = true;
  }
  if (config_.device == Device::cuda)
    DAY18_REQUIRE(cuda_available(), "engine: --device cuda but ", cuda_unavailable_reason());
  ModelConfig mc = config_.model_dir.empty()
                       ? ModelConfig::preset(config_.preset)
                       : ModelConfig::from_json_file(
                             (std::filesystem::path(config_.model_dir) / "config.json").string());
  DAY18_REQUIRE(config_.max_model_len >= 1, "max_model_len must be >= 1, got ",
                config_.max_model_len);
  // Before anything divides by it (the KV-block count is derived from it on both backends).
  DAY18_REQUIRE(config_.block_size == 8 || config_.block_size == 16 || config_.block_size == 32,
                "block size (--block-size) must be 8, 16 or 32, got ", config_.block_size);
  RuntimeLimits lim;
  lim.max_model_len = std::min(config_.max_model_len, mc.max_position);
  config_.max_model_len = lim.max_model_len;
  lim.max_num_tokens = config_.max_num_batched_tokens;
  lim.max_num_seqs = config_.max_num_seqs;
  lim.kv.block_size = config_.block_size;
  int64_t blocks = config_.num_gpu_blocks;
  if (blocks <= 0) {
    blocks = config_.device == Device::cuda
                 ? derive_num_gpu_blocks(mc, config_.dtype, config_.block_size,
                                         config_.gpu_memory_utilization, lim.max_model_len)
                 : std::max<int64_t>(512, lim.max_blocks_per_seq());
  }
  lim.kv.num_blocks = blocks;
  DAY18_REQUIRE(config_.num_cpu_blocks >= 0, "num_cpu_blocks must be >= 0, got ",
                config_.num_cpu_blocks);
  check_swap_pool_fits(mc, config_.dtype, config_.block_size, config_.num_cpu_blocks);
  model_ = std::make_unique<LlamaModel>(
      config_.model_dir.empty()
          ? LlamaModel::from_preset(config_.preset, config_.dtype, config_.device, config_.seed,
                                    lim)
          : LlamaModel::from_folder(config_.model_dir, config_.dtype, config_.device, lim));
  bm_ = std::make_unique<BlockManager>(blocks, config_.num_cpu_blocks, config_.block_size,
                                       lim.max_blocks_per_seq());
  SchedulerConfig sc;
  sc.max_num_batched_tokens = config_.max_num_batched_tokens;
  sc.max_num_seqs = config_.max_num_seqs;
  sc.max_model_len = lim.max_model_len;
  sc.watermark = config_.watermark;
  sc.async_scheduling = config_.async_scheduling;
  scheduler_ = std::make_unique<Scheduler>(sc, *bm_);
  input_ = std::make_unique<InputBatch>(lim, config_.device);
  executor_ = std::make_unique<StepExecutor>(*model_, config_.num_cpu_blocks, config_.cuda_graphs);
}

LLMEngine::~LLMEngine() {
  // Let the GPU finish what reads our buffers before they are freed.
  // A destructor must not throw: report a failure instead.
  if (config_.device == Device::cuda && !inflight_.empty())
    if (const cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess)
      std::fprintf(stderr, "day18: ~LLMEngine: cudaDeviceSynchronize failed: %s\n",
                   cudaGetErrorString(e));
}

int64_t LLMEngine::add_request(std::vector<int32_t> prompt, SamplingParams params) {
  const int64_t vocab = model_->config().vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i)
    DAY18_REQUIRE(prompt[i] < vocab, "request ", scheduler_->stats().num_finished,
                  ": prompt token ", i, " = ", prompt[i], " is outside the vocabulary [0, ", vocab,
                  ")");
  return scheduler_->add_request(std::move(prompt), params);
}

std::vector<Sequence*> LLMEngine::step() {
  if (!meter_.started()) meter_.start(config_.device == Device::cuda, executor_->compute_stream());
  StepRecord rec;
  SchedulerOutput out = schedule(rec);
  const bool submitted = run(std::move(out), rec);
  // Process the oldest step: at once in synchronous mode; in async mode once a newer one runs.
  return process(config_.async_scheduling && submitted ? 1 : 0);
}

SchedulerOutput LLMEngine::schedule(StepRecord& rec) {
  SchedulerOutput out;
  timed_stage("Scheduler", rec.scheduler_ms, [&] {
    out = scheduler_->schedule();
    // The scheduler numbers the step, so the range ends in it; an empty output runs no step.
    trace::mark_step(out.empty() ? -1 : out.step);
  });
  return out;
}

bool LLMEngine::run(SchedulerOutput out, StepRecord& rec) {
  if (out.empty()) {
    if (inflight_.empty() && scheduler_->has_unfinished())
      throw Error(
          "engine: the scheduler returned an empty step with requests left and nothing "
          "in flight (stalled)");
    meter_.scheduled_nothing(rec.scheduler_ms);
    return false;
  }
  const InFlight* prev = inflight_.empty() ? nullptr : &inflight_.back();
  trace::mark_step(out.step);
  PreparedStep prep;
  timed_stage("PrepareInputs", rec.prepare_ms, [&] { prep = prepare_inputs(out, prev, rec); });
  // Launch: every copy, wait and kernel of the step is enqueued (CUDA: submit() returns at once;
  // CPU backend: the model runs here).
  timed_stage("Launch", rec.submit_ms, [&] {
    executor_->submit(out, prep, prev ? &prev->prep : nullptr, input_->staging(prep.parity));
  });
  meter_.submitted(rec, out);
  inflight_.push_back(InFlight{std::move(out), std::move(prep), rec});
  return true;
}

PreparedStep LLMEngine::prepare_inputs(const SchedulerOutput& out, const InFlight* prev,
                                       StepRecord& rec) {
  const int parity = next_parity_;
  next_parity_ ^= 1;
  int64_t pad = 0, ctxb = 0;
  if (config_.pad_decode && out.num_prefills == 0) {
    pad = executor_->graph_bucket(static_cast<int64_t>(out.seqs.size()));
    int64_t max_ctx = 0;
    for (const ScheduledSeq& s : out.seqs)
      max_ctx = std::max(
          max_ctx, s.seq->num_computed_tokens + (config_.async_scheduling ? 0 : s.num_tokens));
    ctxb = executor_->context_bucket(max_ctx);
  }
  rec.padded_to = pad;
  return input_->prepare(out, *bm_, parity, config_.async_scheduling, prev ? &prev->prep : nullptr,
                         pad, ctxb);
}

std::vector<Sequence*> LLMEngine::process(size_t keep) {
  std::vector<Sequence*> finished;
  while (inflight_.size() > keep) {
    std::vector<Sequence*> f = finish_step(inflight_.front());
    finished.insert(finished.end(), f.begin(), f.end());
    inflight_.pop_front();
  }
  return finished;
}

std::vector<Sequence*> LLMEngine::finish_step(InFlight& f) {
  StepRecord& rec = f.rec;
  trace::mark_step(f.out.step);
  std::vector<int32_t> tokens;
  // Wait: the CPU's only wait for the GPU (on the step's D2H event; CPU backend: nothing to wait).
  timed_stage("Wait", rec.wait_ms, [&] { tokens = executor_->wait(f.prep, &rec.gpu); });
  std::vector<Sequence*> finished;
  timed_stage("ProcessOutputs", rec.process_ms,
              [&] { finished = scheduler_->process_outputs(f.out, tokens); });
  meter_.finished(rec, f.out, executor_->is_cuda() ? &executor_->events(f.prep.parity) : nullptr,
                  executor_->num_graph_replays());
  return finished;
}

void LLMEngine::run_until_done(const std::function<void(const LLMEngine&)>& progress) {
  double last = now_s();
  while (has_work()) {
    step();
    if (progress && now_s() - last >= 1.0) {
      last = now_s();
      progress(*this);
    }
  }
}

}  // namespace day18
