// Prefill attention: a FlashAttention-style kernel on tensor cores that reads K and V through the
// block table of the paged KV cache (the layouts of engine/kernels/paged_attention.h).
//
// The decode kernels (paged_attention_v1/v2) run one thread block per (query token, KV group)
// and re-read the whole context for every token: right for decode, where each sequence has one
// query token, and slow for prefill, where a 2048-token prompt reads its keys 2048 times without
// tensor cores. Here one thread block computes a TILE of kPrefillTileQ consecutive query tokens of
// ONE sequence for one query head, so each K/V row brought into shared memory serves 64 queries:
//
//   for each K/V tile of kPrefillTileK keys (gathered from the paged cache by cp.async into
//   shared memory, double-buffered: tile j+1 loads while tile j is used):
//     S = Q K^T                    mma.sync m16n8k16, fp16/bf16 inputs, fp32 accumulators
//     causal / context mask        key j is visible to query row r iff j < context_lens[r]
//     online softmax (fp32)        running row max m and row sum l, O rescaled by exp(m_old-m)
//     O += P V                     P rounded to fp16/bf16 in registers, fp32 accumulators
//   out = O / l
//
// The mask comes from the per-token context_lens (a prompt position p has context_len p + 1; a
// chunk after a cached prefix has prefix + its own causal part), so causal prefill, chunked
// prefill and any other per-token context are the same code. K/V tiles past the tile's largest
// context are never loaded; tiles wholly below its smallest context skip the mask.
//
// Grid: x = (number of query tiles over all segments) * num_heads; the heads of one tile are
// adjacent (the query heads of a KV group read the same K/V through L2), and within a segment
// the LAST tile (most keys) is scheduled first. 128 threads = 4 warps, 16 query rows each.
// Dynamic shared memory: prefill_attention_shared_bytes(head_size) (Q tile + 2 K + 2 V tiles,
// rows padded by 16 bytes so ldmatrix reads are free of bank conflicts).
//
// A SEGMENT is a range of query tokens [token_start, token_start + num_tokens) that all belong to
// one sequence (same seq_idx). Metadata values are on the device and, as in the decode kernels,
// not checked by the host: a row whose seq_idx differs from its segment's first token's, whose
// seq_idx is outside [0, num_seqs), or whose context_len is outside [0, max_blocks_per_seq *
// block_size], gets NaN in every output element; context_len == 0 gives zeros. Physical block
// ids are trusted. Tokens outside every segment are not touched.
//
// Supported: float16 and bfloat16 (fp32 stays on the decode kernels: no fp32 mma), every head
// size of the decode kernels (kPagedAttentionHeadSizes: 32, 64, 80, 96, 112, 128, 192, 256, all
// multiples of the mma's k = 16), block_size 8, 16, 32 (a runtime value). 16 instantiations (dtype
// x head size). Head 32 keeps its Q fragments in registers as every head up to 128 does; heads 192
// and 256 re-read them from shared memory (Q in registers would cost 48 / 64 more registers on top
// of O's 96 / 128). The launcher validates nothing (engine/ops/attention.h does) and takes the
// stream last.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/core/tensor.h"

namespace day18::cuda {

inline constexpr int kPrefillTileQ = 64;     // query tokens per thread block
inline constexpr int kPrefillTileK = 64;     // keys per K/V tile
inline constexpr int kPrefillThreads = 128;  // 4 warps x 16 query rows
// Segments passed in one launch (they travel as a kernel parameter, no device buffer); more are
// split over several launches.
inline constexpr int kPrefillMaxSegmentsPerLaunch = 128;

struct PrefillSegment {
  int32_t token_start = 0;  // first query token (row of query / out / seq_idx / context_lens)
  int32_t num_tokens = 0;   // query tokens of the segment (> 0)
};

// float16 / bfloat16 and a head size the kernel is compiled for.
bool prefill_attention_supported(DType dtype, int head_size);

// Dynamic shared memory of one thread block (above 48 KB the launcher opts in).
size_t prefill_attention_shared_bytes(int head_size);

// Query tiles (thread blocks per head) the segments need: sum of ceil(num_tokens / 64).
int64_t prefill_attention_num_tiles(std::span<const PrefillSegment> segments);

void prefill_attention(
    const Tensor& out,           // [num_tokens, num_heads, head_size]
    const Tensor& query,         // [num_tokens, num_heads, head_size]
    const Tensor& key_cache,     // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& value_cache,   // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& block_tables,  // [num_seqs, max_blocks_per_seq] int32
    const Tensor& seq_idx,       // [num_tokens] int32
    const Tensor& context_lens,  // [num_tokens] int32
    float scale, std::span<const PrefillSegment> segments, cudaStream_t stream);

}  // namespace day18::cuda
