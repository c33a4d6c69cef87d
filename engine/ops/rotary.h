// Public rotary family (RoPE): one call per op for both backends.
//   rotary_embedding   in place on query and key.
//   rotary_and_cache   RoPE fused with one layer's KV-cache write and query packing (below).
//
//   query          [num_tokens, num_heads, head_size]     f32/f16/bf16 (token stride may be
//   key            [num_tokens, num_kv_heads, head_size]  larger: views into fused qkv)
//   positions      [num_tokens] int64, each in [0, max_position)
//   cos_sin_cache  [max_position, rot_dim], same dtype: cos in columns [0, rot_dim/2), sin in
//                  [rot_dim/2, rot_dim) (vLLM's layout); rot_dim even, <= head_size. Only the
//                  first rot_dim dims of each head rotate; the rest stay bit-identical.
//   is_neox        true: pairs (i, i + rot_dim/2) (Llama); false: pairs (2i, 2i+1) (GPT-J).
//
// Out-of-range positions: the CPU backend throws InvalidArgument naming positions[t] and its
// value before touching anything. The CUDA kernel leaves such a token untouched (no clamping: a
// clamped angle would be silently wrong) and counts it; with check_positions = true (the
// registry's default) the op waits and throws naming positions[t] and the value; without it the
// count goes to the process-wide record read by take_index_errors("positions") (ops/cache.h).
#pragma once

#include <cuda_runtime.h>

#include "engine/core/memory.h"

namespace day18 {

void rotary_embedding(const Tensor& positions, const Tensor& query, const Tensor& key,
                      const Tensor& cos_sin_cache, int64_t head_size, bool is_neox,
                      bool check_positions = false, cudaStream_t stream = nullptr);

// One layer's "rotate, cache, pack" in one launch (three nodes of the step graph become one):
//   query_out[t]               = rope(query[t])   every token
//   key_cache row of slot s    = rope(key[t])     s = slot_mapping[t] != -1
//   value_cache row of slot s  = value[t]         s != -1
// i.e. exactly (bit for bit, on either backend) rotary_embedding on copies of query and key,
// then query copied into query_out, then reshape_and_cache of the rotated key and value.
//
//   query_out                [num_tokens, num_heads, head_size], contiguous; written
//   query / key / value      [num_tokens, heads, head_size] views, read only (token stride may be
//                            larger: the column blocks of the fused qkv output); must not
//                            overlap the outputs
//   key_cache / value_cache  [num_blocks, num_kv_heads, block_size, head_size], contiguous
//   slot_mapping             [num_tokens] int64; slot = block_id * block_size + offset; -1 = skip
//   positions, cos_sin_cache, head_size, is_neox: as rotary_embedding (rot_dim = the table's
//                            second dimension, even, <= head_size)
// All on one device, one floating dtype. Index errors follow rotary_embedding (positions) and
// reshape_and_cache (slot_mapping): the CPU backend throws naming the index before writing
// anything; CUDA with check_positions / check_slots waits and throws naming the first bad row
// (all rows were processed: a bad position copies that token's query and key unrotated, a bad
// slot writes nothing to the caches); unchecked, the counts go to take_index_errors("positions")
// and take_index_errors("slot_mapping"), and nothing waits (graph-capturable).
void rotary_and_cache(const Tensor& query_out, const Tensor& query, const Tensor& key,
                      const Tensor& value, const Tensor& key_cache, const Tensor& value_cache,
                      const Tensor& slot_mapping, const Tensor& positions,
                      const Tensor& cos_sin_cache, int64_t head_size, bool is_neox,
                      bool check_positions = false, bool check_slots = false,
                      cudaStream_t stream = nullptr);

// The cos/sin table for rope_theta (e.g. 10000, 500000 for Llama 3) on either backend: computed
// on the CPU in double, rounded to `dtype`, copied to `storage`. See cpu::make_cos_sin_cache.
OwnedTensor make_cos_sin_cache(int64_t max_position, int64_t rot_dim, double rope_theta,
                               DType dtype, Storage storage = Storage::host);

}  // namespace day18
