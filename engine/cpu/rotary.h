// CPU oracle and CPU backend of rotary_embedding (same arguments as engine/kernels/rotary.h),
// plus the cos/sin cache builder shared by both backends.
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

// The RoPE table [max_position, rot_dim]: row p = cos(p * f_i) for i < rot_dim/2, then
// sin(p * f_i), with f_i = rope_theta^(-2i / rot_dim). Computed in double on the CPU, rounded to
// `dtype`, placed in `storage` (the model builds it once at load time).
OwnedTensor make_cos_sin_cache(int64_t max_position, int64_t rot_dim, double rope_theta,
                               DType dtype, Storage storage = Storage::host);

}  // namespace day18::cpu
