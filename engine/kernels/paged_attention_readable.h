// PagedAttention, the readable kernel: vLLM's paged_attention_v1 as the course text draws it, one
// thread block per (query token, query head), the whole context in that block, three phases
// (QK, softmax, weighted sum of V). It computes what cuda::paged_attention_v1 computes and is
// there to be read (and rewritten), not to be fast: the engine's default stays the optimized
// kernel of paged_attention.h, whose header comment lists what it does differently. Selected in
// the ops layer by PagedAttentionVersion::readable (engine/ops/attention.h).
//
// Same arguments, layouts and metadata semantics as cuda::paged_attention_v1
// (engine/kernels/paged_attention.h): seq_idx and context_lens are per query token; a token with
// context_len == 0 (padding) gets zeros; a token whose seq_idx is outside [0, num_seqs) or whose
// context_len is outside [0, max_context_len] gets NaN in every output element; physical block
// ids in block_tables are trusted. Head sizes and block sizes: those of kPagedAttentionHeadSizes
// and kPagedAttentionBlockSizes (the kernel loops over both at run time).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "engine/core/tensor.h"

namespace day18::cuda {

// vLLM's NUM_THREADS for paged_attention_v1: 4 warps per (token, head).
inline constexpr int kPagedAttentionReadableThreads = 128;

// Dynamic shared memory of one thread block: the fp32 logits of the whole context (rounded up to
// a multiple of 4 floats, see the .cu).
size_t paged_attention_readable_shared_bytes(int max_context_len);

// The launcher checks only what the launch itself needs, and trusts the rest (dtypes, shapes,
// head/block sizes, alignment: the ops layer validates them):
//   - the logits of max_context_len keys (plus the kernel's static shared memory) fit the
//     device's opt-in shared memory per block; else InvalidArgument naming max_context_len;
//   - num_tokens fits the grid's y dimension (65535).
// Runs on the stream given, on the tensors' device.
void paged_attention_readable(
    const Tensor& out,           // [num_tokens, num_heads, head_size]
    const Tensor& query,         // [num_tokens, num_heads, head_size]
    const Tensor& key_cache,     // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& value_cache,   // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& block_tables,  // [num_seqs, max_blocks_per_seq] int32
    const Tensor& seq_idx,       // [num_tokens] int32
    const Tensor& context_lens,  // [num_tokens] int32
    float scale, int max_context_len, cudaStream_t stream);

}  // namespace day18::cuda
