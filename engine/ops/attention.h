// PagedAttention, the public calls (both backends). See engine/kernels/paged_attention.h for the
// kernels and the per-token metadata; the layouts are:
//   out, query    [num_tokens, num_heads, head_size]              float32 / float16 / bfloat16
//   key_cache,
//   value_cache   [num_blocks, num_kv_heads, block_size, head_size]  same dtype as query
//   block_tables  [num_seqs, max_blocks_per_seq] int32  physical block of each logical block
//   seq_idx       [num_tokens] int32  row of block_tables (the sequence) of each query token
//   context_lens  [num_tokens] int32  keys the token attends to: positions 0..context_len-1 of
//                 its sequence. vLLM's context_lens is per sequence; making it per TOKEN lets one
//                 call do decode (seq_idx = 0..B-1, context_lens = sequence lengths) and prefill
//                 (one entry per prompt position p with context_len = p + 1: causal).
//                 context_len == 0 marks a padding token: its output is zeros. Negative values
//                 are rejected.
// out = softmax(scale * q . K^T) V per head; query head h reads KV head h / (num_heads /
// num_kv_heads) (GQA/MQA). Supported: head_size 32, 64, 80, 96, 112, 128, 192, 256
// (cuda::kPagedAttentionHeadSizes); block_size 8, 16, 32.
// fp32 accumulation on the GPU, double on the CPU.
//
// What is validated: dtypes, shapes, devices (all tensors on one device), contiguity, alignment
// (CUDA: 16 bytes for out, query and the caches, 4 for the int32 metadata), head/block size,
// num_heads % num_kv_heads, scale finite, max_context_len within [0, max_blocks_per_seq *
// block_size]. Metadata VALUES (seq_idx in range, 0 <= context_len <= max_context_len, physical
// block ids in [0, num_blocks)) are checked only when those tensors are in host memory (reading
// device memory would synchronize); on the device the kernels turn bad seq_idx / context_len into
// NaN outputs instead of reading out of bounds.
//
// max_context_len is the largest context_lens entry (or any upper bound of it): v1 and readable
// size their shared memory from it and v2 its partitions, without reading device memory.
#pragma once

#include <cuda_runtime.h>

#include <span>
#include <string_view>
#include <vector>

#include "engine/core/tensor.h"

namespace day18 {

// mma: the tensor-core decode kernel (engine/kernels/paged_attention_mma.h), split over context
// partitions when that fills the GPU, v2's reduce kernel after it; float32 has no tensor-core
// kernel and runs v1's or v2's FMA kernel on the same partitions. v1, v2: the FMA kernels
// (engine/kernels/paged_attention.h; the thread-block-size experiment's subject); readable:
// vLLM's paged_attention_v1 written to be read (engine/kernels/paged_attention_readable.h), a
// block per (token, head), the whole context in shared memory; automatic: the planner's rule.
// fma: v1 or v2 by the FMA kernels' rule below (what automatic chose before mma existed).
enum class PagedAttentionVersion { automatic, v1, v2, readable, mma, fma };
// "auto", "v1", "v2", "readable", "mma", "fma"
PagedAttentionVersion parse_paged_attention_version(std::string_view s);
std::string_view paged_attention_version_name(PagedAttentionVersion v);

// Process-wide default, for a command-line switch such as the CLI's: while it is anything but
// automatic, options.version == automatic resolves to it in plan_paged_attention (and so in
// paged_attention(), paged_attention_workspace_bound() and every caller that leaves the version
// automatic, such as the model). A version forced in the options is unaffected, and setting
// automatic again restores the engine's rule. Set it before anything is planned and kept: a
// workspace bound, or a CUDA graph captured, under one default is not revised by a later change
// (a later plan that needs more workspace than was reserved is an error, not an overrun).
// Thread-safe (atomic); one value for the whole process, not per thread.
void set_default_paged_attention_version(PagedAttentionVersion v);
PagedAttentionVersion default_paged_attention_version();  // automatic unless set

inline constexpr int kDefaultPartitionSize = 512;
// The automatic choice takes v1 for contexts up to this many tokens at any batch size.
inline constexpr int kV1MaxShortContext = 256;

struct PagedAttentionOptions {
  PagedAttentionVersion version = PagedAttentionVersion::automatic;
  int partition_size = 0;  // v2 tokens per partition; 0 = auto (see plan_paged_attention)
  int num_threads = 128;   // v1 threads per block: 128, or 64/256/512 for fp16 head_size 128
                           // (mma: always 128)
};

// What paged_attention() will launch for a shape, and the v2 workspace it needs.
struct PagedAttentionPlan {
  PagedAttentionVersion version = PagedAttentionVersion::v1;  // never automatic
  int partition_size = 0;                                     // v2 and mma
  int max_num_partitions = 1;  // v2, mma: ceil(max_context_len / partition_size)
  int num_threads = 128;
  std::vector<int64_t> exp_sums_shape;    // [num_tokens, num_heads, max_num_partitions] f32
  std::vector<int64_t> max_logits_shape;  // [num_tokens, num_heads, max_num_partitions] f32
  std::vector<int64_t> tmp_out_shape;  // [num_tokens, num_heads, max_num_partitions, head_size] f32
  size_t workspace_bytes = 0;  // the three above packed, each 256-byte aligned; v2, and mma
                               // with more than one partition
};

// The rule for version = automatic: mma. Its partition_size (auto) starts at the longest, 2048,
// and is halved (down to 64) while the grid (blocks = num_tokens * num_kv_heads * ceil(group /
// 16) * partitions) has fewer than 4 waves (a wave: SMs * paged_attention_mma_blocks_per_sm) and
// the halved grid stays within half a wave, or within one wave while the partition is longer
// than 512: long partitions amortize each block's start-up and keep the reduce small, short ones
// fill the GPU. Measured on the H200 (fp16, head 128, 32/8 heads; 264 blocks per wave):
//   B=64 ctx 4096   partition 256 / 512 / 1024 / 2048:  312 / 298 / 295 / 292 us  -> 2048
//   B=256 ctx 8192  partition 512 / 1024 / 2048:        2439 / 2214 / 2156 us      -> 2048
//   B=1 ctx 4096    partition 64 / 128 / 256:           22.0 / 17.4 / 16.3 us      -> 256
// One partition (max_context_len <= partition_size) writes the output directly: no workspace,
// no reduce.
//
// version = fma, the FMA kernels' rule (what automatic was before mma; the GPU's SM count and
// shared memory limit come from the current device, or an H100's 132 SMs / 227 KB when there is
// none):
//   partition_size auto: 512, halved (down to 64) while the v2 grid would have fewer than
//                        4 blocks per SM (B=1 decode: more partitions to fill the GPU).
//   v1 blocks = num_tokens * (num_heads / heads_per_block) (heads of a KV group share a block;
//   one head per block for small batches at short contexts: see kernels/paged_attention.h).
//   -> v1 if max_context_len <= kV1MaxShortContext (256) and v1's shared memory fits: so few
//      keys gain little from a split, and the reduce is one more launch;
//   -> v1 if the context fits ONE partition, v1's shared memory fits, and the v1 grid has at
//      least one block per SM (then v2 would only add its workspace and reduce kernel);
//   -> v2 otherwise. Measured on the H100: v1 over a long context loses to v2 everywhere (its
//      logits buffer of the whole context limits blocks per SM: B=256 ctx 8192 v1 23% of P,
//      v2 83%), and v2's reduce costs ~1-2% at large batch.
// The process default (set_default_paged_attention_version), when set, replaces automatic.
// Forcing v2 plans its partitions by the FMA rule above. Forcing v1, v2, mma or readable is
// honoured (paged_attention errors if v1's or the readable kernel's shared memory cannot hold the
// context, or mma's partition_size exceeds 2048); readable plans 128 threads and no workspace.
PagedAttentionPlan plan_paged_attention(int64_t num_tokens, int64_t num_heads, int64_t num_kv_heads,
                                        int64_t head_size, int max_context_len,
                                        const PagedAttentionOptions& options = {});

// The largest workspace plan_paged_attention(T, ..., ctx, options) asks for over every
// num_tokens T <= max_num_tokens and max_context_len ctx <= max_model_len: what a caller that
// allocates once (the model) must reserve. Evaluated by planning every candidate where the
// planner's rules can peak (see attention.cpp), so it follows whatever rule the planner has.
size_t paged_attention_workspace_bound(int64_t max_num_tokens, int64_t num_heads,
                                       int64_t num_kv_heads, int64_t head_size, int max_model_len,
                                       const PagedAttentionOptions& options = {});

// Splits a workspace (uint8 tensor of >= plan.workspace_bytes, same device) into the v2
// tensors of the plan.
struct PagedAttentionWorkspace {
  Tensor exp_sums, max_logits, tmp_out;
};
PagedAttentionWorkspace split_paged_attention_workspace(const PagedAttentionPlan& plan,
                                                        const Tensor& workspace);

// v1: whole context per thread block. CUDA: error if the context's logits do not fit in shared
// memory (use v2).
void paged_attention_v1(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                        const Tensor& value_cache, const Tensor& block_tables,
                        const Tensor& seq_idx, const Tensor& context_lens, double scale,
                        int max_context_len, int num_threads = 128, cudaStream_t stream = nullptr);

// v2: split-K over partitions of partition_size tokens (a positive multiple of block_size) and a
// reduce kernel. exp_sums/max_logits/tmp_out are caller-provided fp32 workspace (shapes in
// PagedAttentionPlan), so the call allocates nothing and can be captured in a CUDA graph.
// On the CPU backend the result is computed directly and the workspace is not touched.
void paged_attention_v2(const Tensor& out, const Tensor& exp_sums, const Tensor& max_logits,
                        const Tensor& tmp_out, const Tensor& query, const Tensor& key_cache,
                        const Tensor& value_cache, const Tensor& block_tables,
                        const Tensor& seq_idx, const Tensor& context_lens, double scale,
                        int max_context_len, int partition_size = kDefaultPartitionSize,
                        cudaStream_t stream = nullptr);

// mma: the tensor-core kernel (engine/kernels/paged_attention_mma.h) over partitions of
// partition_size tokens (a positive multiple of block_size, at most 2048). With one partition
// (max_context_len <= partition_size) it writes `out` directly and exp_sums, max_logits and
// tmp_out are not used (they may be undefined Tensor()s); otherwise they are the v2 workspace
// (shapes as v2) and v2's reduce kernel follows. float32 runs v1's FMA kernel (one partition) or
// v2's (several) instead; the CPU backend computes the result directly.
void paged_attention_mma(const Tensor& out, const Tensor& exp_sums, const Tensor& max_logits,
                         const Tensor& tmp_out, const Tensor& query, const Tensor& key_cache,
                         const Tensor& value_cache, const Tensor& block_tables,
                         const Tensor& seq_idx, const Tensor& context_lens, double scale,
                         int max_context_len, int partition_size, cudaStream_t stream = nullptr);

// The readable kernel (engine/kernels/paged_attention_readable.h): same validation as v1; CUDA:
// error naming max_context_len if its logits do not fit in shared memory. On the CPU backend the
// oracle runs, as for v1 and v2.
void paged_attention_readable(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                              const Tensor& value_cache, const Tensor& block_tables,
                              const Tensor& seq_idx, const Tensor& context_lens, double scale,
                              int max_context_len, cudaStream_t stream = nullptr);

// Runs the version plan_paged_attention() picks (mma, v1, v2 or readable). `workspace`: uint8 tensor
// of at least plan.workspace_bytes on the same device (may be an empty Tensor() when the plan is
// not v2 or the tensors are on the CPU).
void paged_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                     const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                     const Tensor& context_lens, double scale, int max_context_len,
                     const Tensor& workspace, const PagedAttentionOptions& options = {},
                     cudaStream_t stream = nullptr);

// ---------------------------------------------------------------- prefill (varlen) attention
// The tensor-core prefill kernel (engine/kernels/prefill_attention.h): a thread block computes 64
// query tokens of ONE sequence for one head, K/V tiles gathered from the paged cache, online
// softmax, the causal (and chunked-prefill) mask from the per-token context_lens. It needs to know
// which query rows belong together, which the per-token metadata cannot say without reading
// device memory, so the caller passes the step's layout on the host:
//
//   query_start_loc (host, vLLM's name) [num_segments + 1] int32: segment i is the query rows
//   [query_start_loc[i], query_start_loc[i + 1]), all of ONE sequence (one seq_idx value);
//   non-decreasing, within [0, num_tokens]. Rows outside [front, back) belong to no segment
//   (CUDA-graph padding, say).
//
// A segment with MORE than this many query tokens takes the prefill kernel in the varlen
// paged_attention() below; at 8 or fewer the decode kernel's one block per (token, KV group)
// already keeps K/V reads low and fills the GPU (a decode step: 1 token per sequence).
inline constexpr int kPrefillMinQueryTokens = 8;

// True when the tensor-core kernel exists: float16 / bfloat16 and a head_size of the decode
// kernels (32, 64, 80, 96, 112, 128, 192 or 256; float32 has no fp16 tensor-core MMA: it stays on
// the decode kernels).
bool prefill_attention_available(DType dtype, int64_t head_size);

// Every row of every segment (whatever its length) through the prefill kernel; rows outside the
// segments are not written. Same validation as paged_attention_v1, plus: query_start_loc as
// above (error naming the entry), float16/bfloat16 on CUDA, and, for host metadata, one seq_idx
// per segment. The CPU backend runs the oracle on each segment's rows. No workspace: one thread
// block walks the whole context of its 64 rows (allocates nothing, capturable in a graph).
void prefill_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                       const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                       const Tensor& context_lens, double scale, int max_context_len,
                       std::span<const int32_t> query_start_loc, cudaStream_t stream = nullptr);

// The varlen step call, what the model runs: segments of more than kPrefillMinQueryTokens rows
// take prefill_attention(); every other row (short segments, decodes, rows outside every segment)
// takes the decode path, paged_attention() above, in one call per maximal run of consecutive such
// rows, so each row is computed exactly once. Falls back to ONE paged_attention() call over every
// row, exactly the call without query_start_loc, when query_start_loc is empty, no segment is long
// enough, the tensors are on the CPU, the dtype/head size has no prefill kernel, or a version is
// forced (options.version or the process default other than automatic: `--paged-attention v2`
// runs every token through v2, the old path, for comparison). A decode-only step, the one CUDA
// graphs capture, therefore launches what it launched before. The decode runs plan their own
// v1/v2 with max_context_len (an upper bound for them too) and use `workspace` as before.
void paged_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                     const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                     const Tensor& context_lens, double scale, int max_context_len,
                     const Tensor& workspace, std::span<const int32_t> query_start_loc,
                     const PagedAttentionOptions& options = {}, cudaStream_t stream = nullptr);

}  // namespace day18
