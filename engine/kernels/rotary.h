// CUDA launchers of the rotary family: rotary_embedding (RoPE, in place on query and key) and
// rotary_and_cache (RoPE fused with the KV-cache write and the query packing of one layer).
//
// For each token t at position p = positions[t] and each pair (x1, x2) of a head's first rot_dim
// dimensions, with c = cos_sin_cache[p][i], s = cos_sin_cache[p][rot_dim/2 + i]:
//     x1' = x1 * c - x2 * s,   x2' = x2 * c + x1 * s        (fp32 math)
//   neox style: pair i is (i, i + rot_dim/2)   (rotate halves; Llama, GPT-NeoX)
//   gptj style: pair i is (2i, 2i + 1)         (interleaved; GPT-J)
// Dimensions [rot_dim, head_size) are not rotated. Both launchers round each pair through the
// same device function, so rotary_and_cache gives the same bits as rotary_embedding followed by
// the copies.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18::cuda {

// One CUDA block per token; its threads stride over (num_heads + num_kv_heads) x (pair groups of
// a head): a group is 16 bytes of x1 and 16 bytes of x2 (neox) or one 16-byte chunk of
// interleaved pairs (gptj), with the matching cos/sin loaded as vectors too. Rows that do not
// allow 16-byte vectors (odd rot_dim, unaligned strides) take a one-pair-per-thread kernel.
// A position outside [0, max_position) leaves the token untouched and is counted in `errors`
// ([2] int64 device, see engine/kernels/cache.h; may be undefined).
void rotary_embedding(const Tensor& positions,      // [num_tokens] int64
                      const Tensor& query,          // [num_tokens, num_heads, head_size]
                      const Tensor& key,            // [num_tokens, num_kv_heads, head_size]
                      const Tensor& cos_sin_cache,  // [max_position, rot_dim]: cos | sin
                      bool is_neox,
                      const Tensor& errors,  // [2] int64 device (may be undefined)
                      cudaStream_t stream);

// rotary_and_cache, for each token t at position p = positions[t] with slot s = slot_mapping[t]:
//   query_out[t]                    = rope(query[t])   every token
//   key_cache[s / bs, :, s % bs]    = rope(key[t])     when s != -1   (bs = block_size)
//   value_cache[s / bs, :, s % bs]  = value[t]         when s != -1
// query, key, value are read only (they may be column blocks of the fused qkv output); the
// outputs must not overlap them. One CUDA block per token; its threads stride over the token's
// units: (num_heads + num_kv_heads) x (rotation groups + 16-byte tail chunks of a head), then
// num_kv_heads x (16-byte value chunks). A rotation group is 16 bytes of x1 and 16 bytes of x2
// (neox) or one 16-byte chunk of interleaved pairs (gptj), as in rotary_embedding; shapes that do
// not allow 16-byte vectors take the same kernel with one pair (neox) / one value per access.
// A bad position (outside [0, max_position)) copies the token's query and key through unrotated
// (what rotary_embedding + the copies would give) and is counted in `position_errors`; a bad slot
// (not -1, outside [0, num_blocks * block_size)) writes nothing to the caches and is counted in
// `slot_errors` ([2] int64 device records, see engine/kernels/cache.h; either may be undefined).
void rotary_and_cache(const Tensor& query_out,      // [num_tokens, num_heads, head_size]
                      const Tensor& query,          // [num_tokens, num_heads, head_size]
                      const Tensor& key,            // [num_tokens, num_kv_heads, head_size]
                      const Tensor& value,          // [num_tokens, num_kv_heads, head_size]
                      const Tensor& key_cache,      // [num_blocks, num_kv_heads, block_size,
                                                    //  head_size]
                      const Tensor& value_cache,    // [num_blocks, num_kv_heads, block_size,
                                                    //  head_size]
                      const Tensor& slot_mapping,   // [num_tokens] int64, -1 = skip
                      const Tensor& positions,      // [num_tokens] int64
                      const Tensor& cos_sin_cache,  // [max_position, rot_dim]: cos | sin
                      bool is_neox,
                      const Tensor& position_errors,  // [2] int64 device (may be undefined)
                      const Tensor& slot_errors,      // [2] int64 device (may be undefined)
                      cudaStream_t stream);

}  // namespace day18::cuda
