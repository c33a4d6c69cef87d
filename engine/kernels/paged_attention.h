// PagedAttention (vLLM's paged_attention_v1 / paged_attention_v2) over the engine's KV-cache
// layout, with fp32 FMAs: every dtype, the thread-block-size experiment's subject, and the decode
// path of float32. float16 / bfloat16 decode runs the tensor-core kernel by default
// (paged_attention_mma.h), which reuses this file's v2 reduce kernel.
//
// Each query token attends to the first context_len keys of its sequence. The keys and values of a
// sequence are scattered over fixed-size KV blocks; block_tables[s][i] is the physical block that
// holds the sequence's tokens [i*block_size, (i+1)*block_size).
//
// Generalisation of vLLM: vLLM's context_lens is per sequence (decode only). Here both
// `seq_idx` and `context_lens` are PER QUERY TOKEN, so one kernel serves
//   - decode:  token b is sequence b: seq_idx[b] = b, context_lens[b] = that sequence's length;
//   - prefill: one token per prompt position p, seq_idx = its sequence, context_lens = p + 1
//     (causal mask by construction; slow compared with a real prefill kernel but correct).
//
// Metadata values live on the device and are not checked by the host here (the ops layer checks
// them when they are host tensors). The kernels guard memory safety instead: a token whose
// seq_idx is outside [0, num_seqs) or whose context_len is outside [0, max_context_len] gets NaN
// in every output element, and context_len == 0 (a padding token, e.g. in a CUDA graph padded
// batch) gets zeros. Physical block ids in block_tables are trusted.
//
// Launchers validate only what the launch itself needs (engine/ops/attention.h validates the
// rest): that the block's shared memory fits the device (paged_attention_shared_bytes <=
// max_shared_bytes_per_block()), that the thread count is compiled, and that the head size is.
// Each failure is an InvalidArgument naming the call. They take the stream last and run on the
// tensors' device. The readable version of v1 (vLLM's one block per (token, head), three plain
// phases) is beside these, in paged_attention_readable.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <iterator>
#include <string>
#include <utility>

#include "engine/core/tensor.h"

namespace day18::cuda {

// Head sizes and KV block sizes the kernels are compiled for. The head sizes are vLLM's
// (PagedAttention.get_supported_head_sizes); this list is the one place they are named: the
// dispatch of the decode and prefill kernels, the ops layer's and the model config's checks and
// their error messages (paged_attention_head_sizes_text) all follow it.
inline constexpr int kPagedAttentionHeadSizes[] = {32, 64, 80, 96, 112, 128, 192, 256};
inline constexpr int kPagedAttentionBlockSizes[] = {8, 16, 32};
// Thread counts of v1 (the thread-block-size experiment). 128 exists for every head size and
// dtype; 64/256/512 only for fp16 with head_size 128 (compile time: see paged_attention.cu).
inline constexpr int kPagedAttentionThreadCounts[] = {64, 128, 256, 512};
inline constexpr int kPagedAttentionDefaultThreads = 128;
// One thread block handles up to this many query heads of ONE KV group (see the .cu).
inline constexpr int kMaxHeadsPerBlock = 4;

// The kernels' shift from a token's position to its KV block: log2(block_size), for a block size
// of kPagedAttentionBlockSizes (powers of two; the ops layer refuses any other).
inline int paged_block_shift(int block_size) {
  int l = 0;
  while ((1 << l) < block_size) ++l;
  return l;
}

// "32, 64, 80, 96, 112, 128, 192, 256": kPagedAttentionHeadSizes for error messages.
inline std::string paged_attention_head_sizes_text() {
  std::string s;
  for (int h : kPagedAttentionHeadSizes) s += (s.empty() ? "" : ", ") + std::to_string(h);
  return s;
}

// Host side: calls f.template operator()<H>() with H the entry of kPagedAttentionHeadSizes that
// equals head_size, and returns true; returns false, calling nothing, for any other head_size.
// Instantiates f once per entry, so a size added to the list is compiled by every kernel that
// dispatches through this (paged_attention.cu, prefill_attention.cu).
template <typename F>
bool dispatch_paged_attention_head_size(int head_size, F&& f) {
  return [&]<size_t... I>(std::index_sequence<I...>) {
    return ((head_size == kPagedAttentionHeadSizes[I] &&
             (f.template operator()<kPagedAttentionHeadSizes[I]>(), true)) ||
            ...);
  }(std::make_index_sequence<std::size(kPagedAttentionHeadSizes)>{});
}

// True when a v1 kernel with this many threads exists for (dtype, head_size): a float dtype, a
// head size of kPagedAttentionHeadSizes, and 128 threads, or 64/256/512 for fp16 head_size 128.
bool paged_attention_v1_has_threads(DType dtype, int head_size, int num_threads);

// Query heads one thread block processes: the largest divisor of num_heads/num_kv_heads that is
// <= kMaxHeadsPerBlock, so each K/V row is read once for the whole group; except when the batch
// is so small that one block per KV group would leave SMs idle (num_tokens * num_kv_heads <
// num_sms, e.g. a batch-1 decode: 8 blocks on 132 SMs) and the context short (max_context_len <=
// kOneHeadPerBlockMaxContext): then 1, a block per query head, which re-reads K/V through L2 but
// cuts the serial work of each block by the group size. Measured on the H100 (fp16, 32/8 heads,
// B=1, v2, BM_paged_attention): head 64 ctx 48: 14.5 -> 11.8 us, ctx 1000: 16.5 -> 13.7 us; but
// head 128 ctx 4096: 24 -> 33 us (the 4x L2 re-reads cost more than they save), hence the bound.
inline constexpr int kOneHeadPerBlockMaxContext = 1024;
int paged_attention_heads_per_block(int num_heads, int num_kv_heads, int64_t num_tokens,
                                    int max_context_len, int num_sms);

// Dynamic shared memory of one thread block: fp32 logits for `context_tokens` keys (the whole
// context for v1, one partition for v2) x heads_per_block, or the output reduction buffer,
// whichever is larger.
size_t paged_attention_shared_bytes(int heads_per_block, int head_size, int num_threads,
                                    int context_tokens);

// v1: the whole context of one (token, KV group) in one thread block; logits of the whole
// context in shared memory. Needs paged_attention_shared_bytes(..., max_context_len) <=
// max_shared_bytes_per_block() (engine/core/device.h), else InvalidArgument (use v2).
// num_threads: paged_attention_v1_has_threads. Heads per block: the automatic choice. The same
// launch as paged_attention_v1_configured(..., num_threads, 0, stream).
void paged_attention_v1(
    const Tensor& out,           // [num_tokens, num_heads, head_size]
    const Tensor& query,         // [num_tokens, num_heads, head_size]
    const Tensor& key_cache,     // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& value_cache,   // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& block_tables,  // [num_seqs, max_blocks_per_seq] int32
    const Tensor& seq_idx,       // [num_tokens] int32
    const Tensor& context_lens,  // [num_tokens] int32
    float scale, int max_context_len, int num_threads, cudaStream_t stream);

// v2: split-K. The context is cut into partitions of partition_size tokens; one thread block per
// (token, KV group, partition) writes that partition's normalized output and softmax statistics
// into the fp32 workspace, and a reduce kernel combines the partitions into `out`.
// max_num_partitions = ceil(max_context_len / partition_size). kPagedAttentionDefaultThreads
// threads, heads per block automatic: paged_attention_v2_configured(..., 128, 0, stream).
void paged_attention_v2(
    const Tensor& out,           // [num_tokens, num_heads, head_size]
    const Tensor& exp_sums,      // [num_tokens, num_heads, max_num_partitions] f32
    const Tensor& max_logits,    // [num_tokens, num_heads, max_num_partitions] f32
    const Tensor& tmp_out,       // [num_tokens, num_heads, max_num_partitions, head_size] f32
    const Tensor& query,         // [num_tokens, num_heads, head_size]
    const Tensor& key_cache,     // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& value_cache,   // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& block_tables,  // [num_seqs, max_blocks_per_seq] int32
    const Tensor& seq_idx,       // [num_tokens] int32
    const Tensor& context_lens,  // [num_tokens] int32
    float scale, int max_context_len, int partition_size, cudaStream_t stream);

// v2's reduce kernel alone: combines the partitions that a main kernel wrote into the workspace
// (this file's v2, or paged_attention_mma.h's partitioned launch) into `out`. Launched with PDL:
// it must directly follow the main kernel on `stream`.
void paged_attention_v2_reduce(const Tensor& out,           // [num_tokens, num_heads, head_size]
                               const Tensor& exp_sums,      // [num_tokens, num_heads, parts] f32
                               const Tensor& max_logits,    // [num_tokens, num_heads, parts] f32
                               const Tensor& tmp_out,       // [num_tokens, num_heads, parts, H]
                               const Tensor& seq_idx,       // [num_tokens] int32
                               const Tensor& context_lens,  // [num_tokens] int32
                               int num_seqs,  // block_tables.size(0): seq_idx's bound
                               int max_context_len, int partition_size, cudaStream_t stream);

// ---- The tuning experiments (engine/tuning/, `day18 tune block-size`) -------------------------
// The main kernel compiled for (dtype, head_size, num_threads), for occupancy queries
// (cudaOccupancyMaxActiveBlocksPerMultiprocessor, cudaFuncGetAttributes), with its dynamic
// shared memory limit raised to `shared_bytes` when that is above the default 48 KB (what the
// launch does): nullptr when no such kernel is compiled (paged_attention_v1_has_threads).
const void* paged_attention_kernel_function(DType dtype, int head_size, int num_threads,
                                            size_t shared_bytes);

// True when a block may take `heads_per_block` query heads: 1 .. kMaxHeadsPerBlock, dividing
// num_heads / num_kv_heads (the heads of one block share one KV head).
bool paged_attention_heads_per_block_valid(int num_heads, int num_kv_heads, int heads_per_block);

// v1 and v2 exactly as above (one launch path: the plain calls are these at the defaults) but
// with the launch configuration given instead of chosen: num_threads
// (paged_attention_v1_has_threads) and heads_per_block (0 = the automatic choice,
// paged_attention_heads_per_block). v2 with num_threads != 128 runs the same main kernel at that
// thread count (then the reduce kernel as always). Validates these two (InvalidArgument naming
// them) and that the shared memory fits; everything else is as trusted as above.
void paged_attention_v1_configured(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                                   const Tensor& value_cache, const Tensor& block_tables,
                                   const Tensor& seq_idx, const Tensor& context_lens, float scale,
                                   int max_context_len, int num_threads, int heads_per_block,
                                   cudaStream_t stream);
void paged_attention_v2_configured(const Tensor& out, const Tensor& exp_sums,
                                   const Tensor& max_logits, const Tensor& tmp_out,
                                   const Tensor& query, const Tensor& key_cache,
                                   const Tensor& value_cache, const Tensor& block_tables,
                                   const Tensor& seq_idx, const Tensor& context_lens, float scale,
                                   int max_context_len, int partition_size, int num_threads,
                                   int heads_per_block, cudaStream_t stream);

}  // namespace day18::cuda
