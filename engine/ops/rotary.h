// Public rotary_embedding (RoPE): one call for both backends, in place on query and key.
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

// The cos/sin table for rope_theta (e.g. 10000, 500000 for Llama 3) on either backend: computed
// on the CPU in double, rounded to `dtype`, copied to `storage`. See cpu::make_cos_sin_cache.
OwnedTensor make_cos_sin_cache(int64_t max_position, int64_t rot_dim, double rope_theta,
                               DType dtype, Storage storage = Storage::host);

}  // namespace day18
