// CUDA launcher of rotary_embedding (RoPE), in place on query and key.
//
// For each token t at position p = positions[t] and each pair (x1, x2) of a head's first rot_dim
// dimensions, with c = cos_sin_cache[p][i], s = cos_sin_cache[p][rot_dim/2 + i]:
//     x1' = x1 * c - x2 * s,   x2' = x2 * c + x1 * s        (fp32 math)
//   neox style: pair i is (i, i + rot_dim/2)   (rotate halves; Llama, GPT-NeoX)
//   gptj style: pair i is (2i, 2i + 1)         (interleaved; GPT-J)
// Dimensions [rot_dim, head_size) are not touched.
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

}  // namespace day18::cuda
