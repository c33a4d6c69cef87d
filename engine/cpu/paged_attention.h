// CPU oracle of PagedAttention (and the engine's CPU backend): plain loops over the paged KV
// layout, double accumulation, the textbook softmax with its max subtracted. Same arguments and
// semantics as day18::cuda::paged_attention_v1 (engine/kernels/paged_attention.h): per-token
// seq_idx / context_lens, context_len 0 -> zeros, bad metadata -> NaN (the ops layer rejects it
// before it gets here).
#pragma once

#include "engine/core/tensor.h"

namespace day18::cpu {

void paged_attention(
    const Tensor& out,           // [num_tokens, num_heads, head_size]
    const Tensor& query,         // [num_tokens, num_heads, head_size]
    const Tensor& key_cache,     // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& value_cache,   // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& block_tables,  // [num_seqs, max_blocks_per_seq] int32
    const Tensor& seq_idx,       // [num_tokens] int32
    const Tensor& context_lens,  // [num_tokens] int32
    float scale);

}  // namespace day18::cpu
