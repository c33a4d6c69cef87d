// CPU oracle and CPU backend of the rotary family: rotary_embedding and rotary_and_cache (same
// arguments as engine/kernels/rotary.h), plus the cos/sin cache builder shared by both backends.
#pragma once

#include "engine/core/memory.h"

namespace day18::cpu {

// In place on query and key; double math, rounded once to the dtype. Throws InvalidArgument
// naming positions[t] when a position is outside [0, max_position) (before touching anything).
void rotary_embedding(const Tensor& positions,      // [num_tokens] int64
                      const Tensor& query,          // [num_tokens, num_heads, head_size]
                      const Tensor& key,            // [num_tokens, num_kv_heads, head_size]
                      const Tensor& cos_sin_cache,  // [max_position, rot_dim]: cos | sin
                      bool is_neox);

// query_out[t] = rope(query[t]); for slot_mapping[t] != -1, the slot's key_cache row = rope(key[t])
// and its value_cache row = value[t]. Each pair is rotated by the same code as rotary_embedding,
// so the result is bit for bit rotary_embedding on copies of query and key, then the copies.
// Throws InvalidArgument naming positions[t] / slot_mapping[t] when one is out of range, before
// writing anything.
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
                      bool is_neox);

// The RoPE table [max_position, rot_dim]: row p = cos(p * f_i) for i < rot_dim/2, then
// sin(p * f_i), with f_i = rope_theta^(-2i / rot_dim). Computed in double on the CPU, rounded to
// `dtype`, placed in `storage` (the model builds it once at load time).
OwnedTensor make_cos_sin_cache(int64_t max_position, int64_t rot_dim, double rope_theta,
                               DType dtype, Storage storage = Storage::host);

}  // namespace day18::cpu
