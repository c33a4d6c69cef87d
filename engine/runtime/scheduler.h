// The scheduler (vLLM V0-style, with chunked prefill): decides, once per step, which sequences
// compute how many tokens, and which KV blocks move between the GPU and the CPU swap pool.
// docs/scheduler.md explains the policy with examples; in short, each schedule():
//
//   1. running sequences, oldest first: every decoding sequence computes 1 token; a sequence
//      still in its prompt gets a chunk of what is left of the token budget (after the budget
//      the remaining decodes need). A sequence that needs a block the pool does not have
//      preempts the NEWEST running sequence (itself, if it is the newest): swap-out to the CPU
//      pool, or, when that pool is full, recompute (blocks freed, back to waiting; its output
//      is kept and recomputed with the prompt).
//   2. if nothing was preempted: swapped sequences are swapped back in, oldest first.
//   3. if nothing was preempted and nothing is left swapped: waiting requests are admitted
//      oldest first while the token budget, max_num_seqs and the free blocks (less a watermark)
//      allow. A prompt longer than the budget left is chunked: this step computes what fits, the
//      next steps the rest.
//
// The engine loop, strictly alternating (one step in flight at a time):
//
//   SchedulerOutput out = scheduler.schedule();
//   executor: swap_blocks(out.swap_out) then swap_blocks(out.swap_in) on the cache stream, and
//             make the compute stream wait for them; then for every out.seqs[i]: positions
//             [seq->num_computed_tokens, + num_tokens), tokens seq->token(p), slots
//             block_manager.slot(*seq, p), context length num_computed_tokens + num_tokens;
//             sample one token per scheduled sequence (or only where do_sample).
//   scheduler.process_outputs(out, sampled);   // advances num_computed_tokens, appends, stops
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/runtime/block_manager.h"
#include "engine/runtime/sequence.h"

namespace day18 {

struct ScheduledSeq {
  Sequence* seq;
  int64_t num_tokens;  // 1 for decode, the prompt chunk for prefill
  bool is_prefill;
  // True when this step computes the sequence's last uncomputed position, so the token sampled
  // from it is kept. False for a prefill chunk that stops short of the end of the prompt: that
  // step's sample is discarded (the next chunk, not a sampled token, follows).
  bool do_sample = true;
  // Async scheduling only: index in seq->output of the placeholder this step's sample fills
  // (-1 in synchronous mode, or when do_sample is false).
  int64_t output_index = -1;
};

struct SchedulerOutput {
  // Prefills first, then decodes; each group in scheduling order (running sequences oldest
  // first, then swapped-in ones, then newly admitted ones). Sequences not listed (running but
  // without budget this step, swapped, waiting) compute nothing this step.
  std::vector<ScheduledSeq> seqs;
  // Block copies to run BEFORE the step's compute, swap_out first: (gpu, cpu) and (cpu, gpu)
  // pairs. In one step swap_in's GPU blocks never overlap swap_out's (no swap-in on a step that
  // preempts), but swap_out's GPU blocks may already be allocated to other sequences.
  std::vector<std::pair<int64_t, int64_t>> swap_out, swap_in;
  // Preempted this step: swapped out (status swapped) or sent back to recompute (status waiting).
  std::vector<Sequence*> preempted;
  int64_t num_batched_tokens = 0;  // sum of seqs[i].num_tokens <= max_num_batched_tokens
  int64_t num_prefills = 0;        // seqs[0, num_prefills) are prefills
  int64_t step = -1;               // index of the step this output belongs to

  bool empty() const { return seqs.empty() && swap_out.empty() && swap_in.empty(); }
  int64_t num_decodes() const { return static_cast<int64_t>(seqs.size()) - num_prefills; }
};

struct SchedulerConfig {
  int64_t max_num_batched_tokens = 2048;  // token budget of one step
  int64_t max_num_seqs = 256;             // running sequences at most (>= 1, <= the budget)
  int64_t max_model_len = 4096;           // prompt + output at most
  // Admissions and swap-ins leave this share of the GPU pool free (vLLM's 1% watermark), so a
  // new sequence does not immediately force a preemption. floor(watermark * num_gpu_blocks).
  double watermark = 0.01;
  // Async scheduling (vLLM V1 style): schedule() of step N+1 may run while step N's samples are
  // still on the GPU (at most two steps outstanding). schedule() then advances
  // num_computed_tokens at once and appends a placeholder (kPlaceholderToken) to each sampling
  // sequence's output; process_outputs(N) fills the placeholders in order, stops sequences, and
  // defers the free of a sequence that stopped at N but was scheduled in N+1 (its N+1 sample is
  // discarded) until N+1 is processed. A sequence that is certain to stop on length (max_tokens
  // or max_model_len) once its pending samples arrive is not scheduled again. docs/scheduler.md.
  bool async_scheduling = false;
};

// Counters since construction.
struct SchedulerStats {
  int64_t num_steps = 0;        // schedule() calls that returned a non-empty output
  int64_t num_preemptions = 0;  // swap-outs + recomputes
  int64_t num_swap_outs = 0;    // sequences swapped out
  int64_t num_swap_ins = 0;     // sequences swapped in
  int64_t num_recomputes = 0;   // sequences preempted by recompute (CPU pool full)
  int64_t num_blocks_swapped_out = 0;
  int64_t num_blocks_swapped_in = 0;
  int64_t num_prefill_tokens = 0;  // tokens computed in prefill chunks
  int64_t num_decode_tokens = 0;
  int64_t num_generated_tokens = 0;  // sampled tokens kept
  int64_t num_finished = 0;
  int64_t num_partial_prefills = 0;  // prefill chunks short of the end (sample discarded)
  int64_t num_discarded_samples = 0;  // async: samples of a step scheduled after its sequence stopped
};

class Scheduler {
 public:
  // Throws InvalidArgument unless max_num_batched_tokens >= max_num_seqs >= 1 (every running
  // sequence can decode every step), max_model_len >= 1 and 0 <= watermark < 1.
  Scheduler(SchedulerConfig config, BlockManager& block_manager);

  // Queues a request; returns its id (0, 1, 2, ... in arrival order). Throws InvalidArgument
  // naming the request id when the prompt is empty, holds a negative token, is longer than
  // max_model_len, when a sampling parameter is out of range, or when the request could never
  // fit in the GPU pool (prompt + max_tokens - 1 positions, capped by max_model_len, must fit in
  // max_blocks_per_seq and in the pool less the watermark), so it would otherwise wait forever.
  int64_t add_request(std::vector<int32_t> prompt, SamplingParams params);

  // One step: picks the sequences and token counts, allocates their blocks, swaps and preempts.
  // Throws Error if the previous output was not processed yet.
  SchedulerOutput schedule();

  // After the step ran: `sampled_tokens` holds either one token per out.seqs entry (same order;
  // entries with do_sample false are ignored) or one per entry with do_sample, in order. Advances
  // each scheduled sequence's num_computed_tokens, appends kept tokens, finishes sequences on
  // max_tokens, EOS (unless ignore_eos) or max_model_len, and frees their blocks. Returns the
  // sequences finished this step (pointers stay valid until release()).
  std::vector<Sequence*> process_outputs(const SchedulerOutput& out,
                                         const std::vector<int32_t>& sampled_tokens);

  // Outputs returned by schedule() and not yet processed (0 or 1; up to 2 in async mode).
  int64_t num_pending_steps() const { return static_cast<int64_t>(pending_steps_.size()); }

  bool has_unfinished() const {
    return !waiting_.empty() || !running_.empty() || !swapped_.empty();
  }
  // The queues, oldest first (ids ascend).
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  const std::deque<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& swapped() const { return swapped_; }

  // Any request by id (finished ones included until released); throws InvalidArgument if unknown.
  Sequence& sequence(int64_t id);
  const Sequence& sequence(int64_t id) const;
  // Forgets a finished request (its Sequence is destroyed); throws if it is not finished.
  void release(int64_t id);

  const SchedulerStats& stats() const { return stats_; }
  const SchedulerConfig& config() const { return config_; }
  BlockManager& block_manager() { return bm_; }
  int64_t watermark_blocks() const { return watermark_blocks_; }

 private:
  // Preempts `victim` (a running sequence not scheduled this step): swap-out if the CPU pool has
  // room, else recompute. Removes it from running_.
  void preempt(Sequence& victim, SchedulerOutput& out);
  void finish(Sequence& seq, FinishReason reason);
  std::vector<Sequence*> process_outputs_async(const SchedulerOutput& out,
                                               const std::vector<int32_t>& sampled_tokens);
  double now() const;

  SchedulerConfig config_;
  BlockManager& bm_;
  int64_t watermark_blocks_ = 0;
  int64_t next_id_ = 0;
  // Owned sequences; unique_ptr keeps Sequence* stable however the containers change.
  std::unordered_map<int64_t, std::unique_ptr<Sequence>> seqs_;
  std::deque<Sequence*> waiting_, running_, swapped_;
  SchedulerStats stats_;
  int64_t next_step_ = 0;
  bool output_pending_ = false;  // schedule() returned an output not yet processed
  std::deque<int64_t> pending_steps_;  // steps scheduled, not yet processed (oldest first)
  // Async mode: outputs not yet processed that include the sequence; a sequence that finished
  // while still in one waits in deferred_free_ until that output is processed.
  std::unordered_map<const Sequence*, int64_t> inflight_;
  std::vector<Sequence*> deferred_free_;
  double t0_ = 0;
};

}  // namespace day18
