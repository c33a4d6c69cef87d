// The simplest batch builder there is, for tests and `day18 generate`: no scheduler, no block
// manager. Sequence slot s owns the physical KV blocks [s * blocks_per_seq, (s + 1) *
// blocks_per_seq), so token p of that sequence lives in slot s * blocks_per_seq * block_size + p.
//
//   ContiguousBatch b = make_contiguous_batch({{prompt, /*start=*/0, /*seq=*/0}}, 16, 8, device);
//   const Tensor& logits = model.forward(b.batch, stream);
//
// The real engine builds the same ForwardBatch from its block manager's tables in pinned staging.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/memory.h"
#include "engine/runtime/model_config.h"

namespace day18 {

struct SequenceChunk {
  std::vector<int32_t> tokens;  // the tokens to run this step (whole prompt, or one decode token)
  int64_t start_pos = 0;        // tokens of this sequence already in the KV cache
  int64_t seq_slot = 0;         // which contiguous block range the sequence owns
  bool padding = false;         // padding tokens: slot -1, context_len 0 (CUDA-graph padding)
};

struct ContiguousBatch {
  std::vector<OwnedTensor> storage;  // owns the tensors the batch views
  ForwardBatch batch;
};

// One row of block_tables and one logits row per chunk (its last token), in chunk order. Padding
// chunks add their tokens to the batch but no block table row and no logits row.
ContiguousBatch make_contiguous_batch(const std::vector<SequenceChunk>& chunks, int64_t block_size,
                                      int64_t blocks_per_seq, Device device);

// Greedy token of each row of host or device logits [num_seqs, vocab] f32 (ties: lowest id).
// Throws day18::Error naming the row and the token if a row holds a NaN or +inf.
std::vector<int32_t> greedy_tokens(const Tensor& logits);

}  // namespace day18
