// The input batch: turns a SchedulerOutput into the tensors one step consumes, in pinned host
// staging, double-buffered (parity = step % 2), so the CPU fills step N+1's staging while the
// DMA engine may still read step N's.
//
// Everything a step needs is packed into ONE buffer per parity, so the whole input crosses PCIe
// in ONE cudaMemcpyAsync (h2d stream) into a device buffer of the same parity; the compute stream
// waits on the H2D event and the model reads views into that device buffer. Packed layout
// (InputLayout; every section 16-byte aligned, sizes for this step's T tokens / S rows):
//
//   token_ids [T] i32 | positions [T] i64 | slot_mapping [T] i64 | seq_idx [T] i32 |
//   context_lens [T] i32 | src_rows [T] i32 | block_tables [S, W] i32 | logits_indices [S] i32 |
//   temperature [S] f32 | top_k [S] i32 | top_p [S] f32 | seeds [S] i64 | offsets [S] i64
//
// W = max_blocks_per_seq. One block-table row per scheduled sequence (seq_idx points at it), one
// logits row per SAMPLING sequence (logits_indices = its last token); a step without a sampling
// sequence (only partial prefill chunks) gets one dummy greedy row that nobody reads.
// src_rows[i] >= 0 marks a decode token whose value is still on the device (async scheduling: a
// placeholder); feed_sampled_tokens fills it from the previous step's sampled row src_rows[i].
//
// CUDA-graph padding (pad_to > num scheduled, decode-only steps): padding tokens get slot -1,
// context_len 0, position 0, token 0, src_row -1, seq_idx 0; padding rows a zero block table,
// logits index 0 (a real token) and greedy sampling. Their samples are never read.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/core/memory.h"
#include "engine/runtime/block_manager.h"
#include "engine/runtime/model_config.h"
#include "engine/runtime/scheduler.h"

namespace day18 {

struct InputLayout {
  int64_t num_tokens = 0, num_rows = 0, width = 0;  // T, S, W
  size_t token_ids = 0, positions = 0, slot_mapping = 0, seq_idx = 0, context_lens = 0,
         src_rows = 0, block_tables = 0, logits_indices = 0, temperature = 0, top_k = 0,
         top_p = 0, seeds = 0, offsets = 0;
  size_t bytes = 0;  // the whole packed buffer: what the one H2D copies
  static InputLayout make(int64_t num_tokens, int64_t num_rows, int64_t width);
};

// Views of one packed buffer (host staging or its device copy).
struct StepTensors {
  ForwardBatch batch;
  Tensor src_rows;  // [T] i32
  Tensor temperature, top_k, top_p, seeds, offsets;  // [S]
  static StepTensors view(const InputLayout& layout, void* base, Device device,
                          int64_t max_context_len);
};

// What prepare() decided, kept until the step's samples are processed.
struct PreparedStep {
  int parity = 0;
  InputLayout layout;
  int64_t max_context_len = 0;
  int64_t num_scheduled = 0;   // entries of the SchedulerOutput
  int64_t num_sampling = 0;    // real logits rows (entries with do_sample), rows [0, S_real)
  int64_t num_real_tokens = 0;
  // Where each SchedulerOutput entry's tokens lie: entry i is tokens [q[i], q[i+1]) (the real
  // tokens only; graph padding lies past the end). Goes into ForwardBatch::query_start_loc.
  std::vector<int32_t> query_start_loc;
  bool decode_only = false;
  bool feeds_from_device = false;  // some src_rows >= 0
  // Row of the sampled-token buffer for each SchedulerOutput entry (-1: does not sample).
  std::vector<int32_t> row_of_entry;
  // The sampling sequences and their rows: the next step feeds placeholders from these.
  std::unordered_map<const Sequence*, int32_t> row_of_seq;
};

class InputBatch {
 public:
  // Staging is pinned on the CUDA backend (plain host memory on the CPU backend), sized for the
  // limits' worst step.
  InputBatch(const RuntimeLimits& limits, Device device);

  // Fills staging[parity] for `out`. `advanced`: the scheduler already advanced
  // num_computed_tokens (async scheduling), so an entry's first position is
  // num_computed_tokens - num_tokens. `prev`: the step still in flight whose samples feed this
  // step's placeholder tokens (nullptr if none). `pad_to`: CUDA-graph bucket for decode-only steps
  // (0 = no padding). `ctx_bucket`: decode-only steps plan attention for this max_context_len
  // (>= every context length; 0 = the exact maximum).
  PreparedStep prepare(const SchedulerOutput& out, const BlockManager& bm, int parity,
                       bool advanced, const PreparedStep* prev, int64_t pad_to = 0,
                       int64_t ctx_bucket = 0);

  void* staging(int parity) const { return staging_[parity].data(); }
  size_t capacity() const { return staging_[0].size(); }
  const RuntimeLimits& limits() const { return limits_; }

 private:
  RuntimeLimits limits_;
  Device device_;
  Buffer staging_[2];
};

}  // namespace day18
