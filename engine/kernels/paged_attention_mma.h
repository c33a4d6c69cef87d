// Decode attention on tensor cores over the paged KV cache: the engine's default kernel for
// float16 / bfloat16 decode tokens (the op layer's version "mma"; engine/ops/attention.h).
//
// Why another kernel: paged_attention_kernel (paged_attention.h) computes q.k and p.v with fp32
// FMAs on 16-byte register loads, issued in bursts of 8 per thread, then consumed. On the H200
// (4.2 TB/s) it stalls at 57% of P at B=64, ctx 4096: 96 registers per thread allow 5 blocks of
// 4 warps per SM, each warp alternates "load 8 rows, wait, reduce with shuffles", and the bytes in
// flight per SM drop to zero between bursts.
//
// This kernel keeps the memory system busy and leaves the arithmetic to the tensor cores:
//   - one thread block (4 warps) per (query token, KV head, partition of the context); the query
//     heads of the KV group (GQA: num_heads / num_kv_heads of them, up to 16 per block) are the
//     rows of one m16n8k16 tile, so every K/V row is read from memory once for the whole group;
//   - K and V tiles of 64 keys are gathered through the block table with 16-byte cp.async copies
//     straight into shared memory, kStages tiles deep (3 for head_size <= 128, else 2): while the
//     warps compute tile t, tiles t+1 and t+2 are in flight (64 KB per block at head_size 128);
//   - each warp takes 16 keys of a tile: S = Q K^T (mma), online softmax on the accumulators
//     (exp2, running max and sum per row), O += P V (mma), fp32 accumulators in registers;
//   - the four warps' (max, sum, O) are merged through shared memory at the end.
// With one partition (max_context_len <= partition_size) the block writes `out`; otherwise it
// writes the partition's normalized output and softmax statistics in the v2 workspace layout and
// paged_attention_v2_reduce (paged_attention.h) combines them.
//
// Metadata contract as paged_attention.h: a token with seq_idx outside [0, num_seqs) or
// context_len outside [0, max_context_len] gets NaN outputs, context_len == 0 zeros (with
// partitions, the reduce kernel writes both); physical block ids are trusted.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "engine/core/tensor.h"

namespace day18::cuda {

inline constexpr int kPagedAttentionMmaThreads = 128;
inline constexpr int kPagedAttentionMmaTileKeys = 64;
// Query heads of one KV group one block takes (the M of the mma); larger groups take several
// blocks.
inline constexpr int kPagedAttentionMmaMaxRows = 16;
// The largest partition (keys per block): the partition's block ids are staged in shared memory.
inline constexpr int kPagedAttentionMmaMaxPartition = 2048;

// True for float16 / bfloat16 and a compiled head size (kPagedAttentionHeadSizes).
bool paged_attention_mma_supported(DType dtype, int head_size);

// Dynamic shared memory of one block, and how many blocks of it fit on one SM of a GPU with
// `shared_per_sm` bytes of shared memory per SM (sm_90: 228 KB, 1 KB of it reserved per block).
size_t paged_attention_mma_shared_bytes(int head_size);
int paged_attention_mma_blocks_per_sm(int head_size, size_t shared_per_sm);

// Grid: x = num_tokens * num_kv_heads * ceil(group / 16), y = max_num_partitions (1 without a
// workspace). partition_size: keys per block, 1..kPagedAttentionMmaMaxPartition. With
// max_num_partitions == 1 (exp_sums, max_logits, tmp_out may then be undefined tensors) the
// kernel writes `out`; otherwise the workspace, then the reduce kernel runs (launched with PDL).
// Launchers validate nothing (engine/ops/attention.h does) and run on the tensors' device.
void paged_attention_mma(const Tensor& out,           // [num_tokens, num_heads, head_size]
                         const Tensor& exp_sums,      // [num_tokens, num_heads, parts] f32
                         const Tensor& max_logits,    // [num_tokens, num_heads, parts] f32
                         const Tensor& tmp_out,       // [num_tokens, num_heads, parts, head] f32
                         const Tensor& query,         // [num_tokens, num_heads, head_size]
                         const Tensor& key_cache,     // [blocks, kv_heads, block_size, head]
                         const Tensor& value_cache,   // [blocks, kv_heads, block_size, head]
                         const Tensor& block_tables,  // [num_seqs, max_blocks_per_seq] int32
                         const Tensor& seq_idx,       // [num_tokens] int32
                         const Tensor& context_lens,  // [num_tokens] int32
                         float scale, int max_context_len, int partition_size,
                         int max_num_partitions, cudaStream_t stream);

}  // namespace day18::cuda
