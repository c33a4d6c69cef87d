#include "engine/runtime/engine.h"

#include <cstdio>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"

namespace day18 {
namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

bool DecodeIdleMeter::counts(const StepRecord& prev, const StepRecord& next) {
  const bool decodes = prev.num_prefills == 0 && prev.num_seqs > 0 && next.num_prefills == 0 &&
                       next.num_seqs > 0;
  return decodes && !next.gpu.captured && !next.swaps;
}

bool DecodeIdleMeter::add(const StepRecord& next) {
  const bool counted = has_prev_ && counts(prev_, next);
  if (counted) {
    const double gap = std::max(0.0, next.compute_start - prev_.compute_end);
    ++pairs_;
    idle_ms_ += gap;
    span_ms_ += std::max(gap, next.compute_end - prev_.compute_end);
    if (lower_.empty() || gap <= lower_.top())
      lower_.push(gap);
    else
      upper_.push(gap);
    if (lower_.size() > upper_.size() + 1) {
      upper_.push(lower_.top());
      lower_.pop();
    } else if (upper_.size() > lower_.size()) {
      lower_.push(upper_.top());
      upper_.pop();
    }
  }
  prev_ = next;
  has_prev_ = true;
  return counted;
}

double DecodeIdleMeter::median_gap_ms() const {
  if (lower_.empty()) return 0;
  return lower_.size() > upper_.size() ? lower_.top() : 0.5 * (lower_.top() + upper_.top());
}

int64_t derive_num_gpu_blocks(const ModelConfig& c, DType dtype, int64_t block_size,
                              double util, int64_t max_model_len) {
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
                  ": prompt token ", i, " = ", prompt[i], " is outside the vocabulary [0, ",
                  vocab, ")");
  return scheduler_->add_request(std::move(prompt), params);
}

std::vector<Sequence*> LLMEngine::step() {
  if (t0_ < 0) t0_ = now_s();
  const bool cuda = config_.device == Device::cuda;
  if (cuda && !origin_) {
    origin_ = std::make_unique<Event>();
    origin_->record(executor_->compute_stream());
  }
  StepRecord rec;
  SchedulerOutput out;
  auto t = std::chrono::steady_clock::now();
  {
    DAY18_NVTX_RANGE("Scheduler");
    out = scheduler_->schedule();
  }
  auto ms = [](auto a) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
  };
  rec.scheduler_ms = ms(t);
  InFlight* prev = inflight_.empty() ? nullptr : &inflight_.back();
  const bool submitted = !out.empty();
  if (submitted) {
    t = std::chrono::steady_clock::now();
    PreparedStep prep;
    {
      DAY18_NVTX_RANGE("PrepareInputs");
      const int parity = next_parity_;
      next_parity_ ^= 1;
      int64_t pad = 0, ctxb = 0;
      if (config_.pad_decode && out.num_prefills == 0) {
        pad = executor_->graph_bucket(static_cast<int64_t>(out.seqs.size()));
        int64_t max_ctx = 0;
        for (const ScheduledSeq& s : out.seqs)
          max_ctx = std::max(max_ctx, s.seq->num_computed_tokens +
                                          (config_.async_scheduling ? 0 : s.num_tokens));
        ctxb = executor_->context_bucket(max_ctx);
      }
      prep = input_->prepare(out, *bm_, parity, config_.async_scheduling,
                             prev ? &prev->prep : nullptr, pad, ctxb);
      rec.padded_to = pad;
    }
    rec.prepare_ms = ms(t);
    t = std::chrono::steady_clock::now();
    executor_->submit(out, prep, prev ? &prev->prep : nullptr, input_->staging(prep.parity));
    rec.submit_ms = ms(t);
    ahead_ms_ += rec.scheduler_ms + rec.prepare_ms + rec.submit_ms;
    rec.swaps = !out.swap_out.empty() || !out.swap_in.empty();
    rec.step = out.step;
    rec.num_seqs = static_cast<int64_t>(out.seqs.size());
    rec.num_tokens = out.num_batched_tokens;
    rec.num_prefills = out.num_prefills;
    inflight_.push_back(InFlight{std::move(out), std::move(prep), rec});
  } else if (inflight_.empty() && scheduler_->has_unfinished()) {
    throw Error("engine: the scheduler returned an empty step with requests left and nothing in "
                "flight (stalled)");
  } else {
    metrics_.scheduler_ms += rec.scheduler_ms;
  }
  // Process the oldest step: at once in synchronous mode; in async mode once a newer one runs.
  const size_t keep = config_.async_scheduling && submitted ? 1 : 0;
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
  auto t = std::chrono::steady_clock::now();
  auto ms = [](auto a) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
  };
  const std::vector<int32_t> tokens = executor_->wait(f.prep, &rec.gpu);
  rec.wait_ms = ms(t);
  if (config_.device == Device::cuda) {
    const auto& ev = executor_->events(f.prep.parity);
    rec.h2d_start = Event::elapsed_ms(*origin_, ev.h2d_start);
    rec.h2d_end = Event::elapsed_ms(*origin_, ev.h2d_done);
    rec.compute_start = Event::elapsed_ms(*origin_, ev.compute_start);
    rec.compute_end = Event::elapsed_ms(*origin_, ev.compute_done);
  } else {  // the host clock around forward + sampling (run inside submit)
    rec.compute_start = (rec.gpu.host_start_s - t0_) * 1e3;
    rec.compute_end = (rec.gpu.host_end_s - t0_) * 1e3;
  }
  rec.graph = rec.gpu.graph;
  t = std::chrono::steady_clock::now();
  std::vector<Sequence*> finished;
  {
    DAY18_NVTX_RANGE("ProcessOutputs");
    finished = scheduler_->process_outputs(f.out, tokens);
  }
  rec.process_ms = ms(t);
  rec.end_wall_s = now_s() - t0_;
  const double prev_end = records_.empty() ? 0 : records_.back().end_wall_s;
  // See StepRecord::wall_ms. The interval since the previous step's outputs holds the CPU work of
  // the steps submitted since (ahead_ms_: in async mode the next step, whose compute on the CPU
  // backend runs inside submit); this step's own was charged to an earlier interval.
  rec.wall_ms = (rec.end_wall_s - prev_end) * 1e3 - ahead_ms_ +
                (rec.scheduler_ms + rec.prepare_ms + rec.submit_ms) - rec.gpu.capture_ms;
  ahead_ms_ = 0;
  EngineMetrics& m = metrics_;
  ++m.steps;
  m.scheduler_ms += rec.scheduler_ms;
  m.prepare_ms += rec.prepare_ms;
  m.wait_ms += rec.wait_ms;
  m.process_ms += rec.process_ms;
  m.model_ms += rec.gpu.graph ? rec.gpu.compute_ms : rec.gpu.model_ms;
  m.sampling_ms += rec.gpu.graph ? 0 : rec.gpu.sampling_ms;
  m.h2d_ms += rec.gpu.h2d_ms;
  m.d2h_ms += rec.gpu.d2h_ms;
  for (const ScheduledSeq& s : f.out.seqs) {
    (s.is_prefill ? m.prefill_tokens : m.decode_tokens) += s.num_tokens;
    m.generated_tokens += s.do_sample ? 1 : 0;
  }
  (f.out.num_prefills > 0 ? m.prefill_wall_s : m.decode_wall_s) += rec.wall_ms / 1e3;
  m.wall_s = rec.end_wall_s;
  m.graph_replays = executor_->num_graph_replays();
  m.graph_captures += rec.gpu.captured ? 1 : 0;
  m.graph_capture_ms += rec.gpu.capture_ms;
  // GPU busy over the whole run, and in the steady decode state.
  if (first_compute_start_ < 0) first_compute_start_ = rec.compute_start;
  last_compute_end_ = rec.compute_end;
  busy_ms_ += rec.compute_end - rec.compute_start;
  m.gpu_busy_fraction_all = last_compute_end_ > first_compute_start_
                                ? busy_ms_ / (last_compute_end_ - first_compute_start_)
                                : 1.0;
  rec.steady_decode = decode_idle_.add(rec);
  m.decode_steady_pairs = decode_idle_.pairs();
  m.decode_gap_median_us = decode_idle_.median_gap_ms() * 1e3;
  m.decode_idle_fraction = decode_idle_.idle_fraction();
  m.gpu_busy_fraction = m.decode_steady_pairs > 0 ? 1 - m.decode_idle_fraction : 0;
  records_.push_back(rec);
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
