// What the lab 01 tests share. The lab replaces engine/runtime/executor.cpp and input_batch.cpp
// whole, so nothing here may come from them: the references are hand-computed cases, the CPU
// backend's model run on contiguous blocks (contiguous_batch.h: its own slot_mapping), and the
// engine's metrics, which read the executor's events themselves (engine_metrics.cpp).
//
//   Gate        a kernel that holds one stream still until the test opens it (or a timeout), so a
//               test can see which stage waits for which: held compute stream -> the H2D and the
//               previous step's wait() must still finish; held H2D -> the compute must not start.
//   StepRig     the engine's parts by hand (CUDA tiny model, block manager, input batch, the
//               executor), so a test can act between submit() and wait().
//   reference   the greedy next token of a sequence, recomputed from scratch on the CPU backend.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/block_manager.h"
#include "engine/runtime/contiguous_batch.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/input_batch.h"
#include "engine/runtime/llama_model.h"
#include "tests/labs/01/lab01_device.h"
#include "tests/labs/support/lab.h"

namespace day18::lab01 {

// ---- The engine by hand ----------------------------------------------------------------------

inline constexpr int64_t kBlockSize = 16;

// The tiny model (fp32) on the GPU with the executor and input batch the engine would build, and
// the same model on the CPU backend as the reference.
class StepRig {
 public:
  // Up to 8 sequences; room in the GPU pool for all of them at max_model_len.
  explicit StepRig(int64_t num_cpu_blocks = 32, int64_t max_model_len = 128,
                   int64_t max_num_tokens = 64);
  ~StepRig();  // waits for the device: nothing may still read the buffers it frees

  // A new running sequence holding `prompt`, with GPU blocks for it.
  Sequence& add(std::vector<int32_t> prompt);
  // `n` new sequences with random prompts of `len` tokens (seeded: the same every run).
  std::vector<Sequence*> add_random(int n, int len, uint64_t seed);
  // The next step of `seqs` in synchronous mode: a sequence with no output yet prefills its whole
  // prompt, the others decode their last token (blocks allocated as needed).
  SchedulerOutput next_step(const std::vector<Sequence*>& seqs);
  PreparedStep prepare(const SchedulerOutput& out, int parity);
  void submit(const SchedulerOutput& out, const PreparedStep& step);
  std::vector<int32_t> wait(const PreparedStep& step, StepTimes* times = nullptr);
  // After wait(): appends each sampled token and advances num_computed_tokens.
  void commit(const SchedulerOutput& out, const std::vector<int32_t>& tokens);
  // One whole step: next_step, prepare, submit, wait, commit; returns the tokens.
  std::vector<int32_t> run_step(const std::vector<Sequence*>& seqs, int parity);

  // The greedy next token of each sequence (prompt + output so far), recomputed from scratch by
  // the CPU backend's model on contiguous blocks.
  std::vector<int32_t> reference_next(const std::vector<Sequence*>& seqs);

  // The token ids in the pinned staging of `step` (what the H2D copies).
  int32_t* staged_tokens(const PreparedStep& step) const;

  StepExecutor& exec() { return *exec_; }
  BlockManager& bm() { return *bm_; }
  int64_t vocab() const;

 private:
  RuntimeLimits lim_;
  std::unique_ptr<LlamaModel> gpu_, cpu_;
  std::unique_ptr<BlockManager> bm_;
  std::unique_ptr<InputBatch> input_;
  std::unique_ptr<StepExecutor> exec_;
  std::deque<Sequence> seqs_;  // stable addresses
  int64_t next_step_ = 0;
};

// ---- The whole engine ------------------------------------------------------------------------

inline std::vector<std::vector<int32_t>> random_prompts(int n, int64_t vocab, uint64_t seed,
                                                        int min_len = 3, int max_len = 40) {
  Rng rng(seed);
  std::vector<std::vector<int32_t>> ps;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(rng.randint(min_len, max_len)));
    for (auto& t : p) t = static_cast<int32_t>(rng.randint(0, vocab - 1));
    ps.push_back(p);
  }
  return ps;
}

inline EngineConfig tiny_config(Device device) {
  EngineConfig c;
  c.preset = "tiny";
  c.device = device;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;
  c.max_model_len = 128;
  c.num_gpu_blocks = 64;
  c.num_cpu_blocks = 64;
  return c;
}

// Batch-32 decode on llama-1b shapes, fp16, random weights: steps long enough (milliseconds) for
// the overlap of one step's H2D with the previous step's compute to be seen in the events.
inline EngineConfig decode_config() {
  EngineConfig c;
  c.preset = "llama-1b";
  c.dtype = DType::f16;
  c.device = Device::cuda;
  c.max_num_seqs = 32;
  c.max_num_batched_tokens = 2048;
  c.max_model_len = 512;
  c.num_gpu_blocks = 32 * 32 + 64;
  c.num_cpu_blocks = 0;
  return c;
}

// 32 requests of 48 prompt tokens, `n` generated tokens each, EOS ignored.
inline void add_decode_requests(LLMEngine& e, int32_t n) {
  for (int i = 0; i < 32; ++i) {
    SamplingParams p;
    p.temperature = 0.f;
    p.max_tokens = n;
    p.ignore_eos = true;
    e.add_request(std::vector<int32_t>(48, 7 + i), p);
  }
}

inline SamplingParams greedy(int32_t n) {
  SamplingParams p;
  p.temperature = 0.f;
  p.max_tokens = n;
  return p;
}

inline std::vector<std::vector<int32_t>> run_engine(
    LLMEngine& e, const std::vector<std::vector<int32_t>>& prompts,
    const std::vector<SamplingParams>& params) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < prompts.size(); ++i) ids.push_back(e.add_request(prompts[i], params[i]));
  e.run_until_done();
  std::vector<std::vector<int32_t>> outs;
  for (int64_t id : ids) outs.push_back(e.scheduler().sequence(id).output);
  return outs;
}

// Greedy tokens of `model` (CPU backend) alone on one request: contiguous blocks, prefill then
// decode, `n` tokens. What the engine must produce for a greedy request, whatever the batching.
inline std::vector<int32_t> reference_greedy(LlamaModel& model, const std::vector<int32_t>& prompt,
                                             int64_t n) {
  const int64_t bs = model.limits().kv.block_size;
  const int64_t bps = model.limits().max_blocks_per_seq();
  std::vector<int32_t> out, pending = prompt;
  int64_t computed = 0;
  for (int64_t i = 0; i < n; ++i) {
    ContiguousBatch b =
        make_contiguous_batch({{pending, computed, 0, false}}, bs, bps, Device::cpu);
    out.push_back(greedy_tokens(model.forward(b.batch))[0]);
    computed += static_cast<int64_t>(pending.size());
    pending = {out.back()};
  }
  return out;
}

// The tiny model on the CPU backend for reference_greedy: one sequence of up to 128 tokens.
inline LlamaModel reference_model() {
  RuntimeLimits lim;
  lim.max_num_tokens = 64;
  lim.max_num_seqs = 1;
  lim.max_model_len = 128;
  lim.kv.num_blocks = 8;
  lim.kv.block_size = 16;
  return LlamaModel::from_preset("tiny", DType::f32, Device::cpu, 0, lim);
}

// Sleeps the host (the GPU keeps going).
inline void host_sleep_ms(double ms) {
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1e3)));
}

}  // namespace day18::lab01
