// Embedding lookup, the first op of every step, the CUDA backend of engine/ops/embedding.h:
//
//   out[t, :] = weight[token_ids[t], :]
//
// The kernel never reads outside weight: a token id outside [0, vocab_size) produces a row of
// zeros, and if `bad_index` is not null the smallest such token index t is recorded there
// (atomicMin; the caller initializes *bad_index to kNoBadIndex). The ops layer uses it for the
// checked mode. Launchers validate nothing; contiguous tensors, out and weight the same dtype.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/core/tensor.h"

namespace day18::cuda {

// Initial value of *bad_index: the byte pattern 0x7f7f7f7f, so a cudaMemsetAsync can set it.
inline constexpr int32_t kNoBadIndex = 0x7f7f7f7f;

void embedding(const Tensor& out,        // [num_tokens, hidden_size]
               const Tensor& token_ids,  // [num_tokens] int32
               const Tensor& weight,     // [vocab_size, hidden_size]
               int32_t* bad_index,       // device int32 or nullptr (see above)
               cudaStream_t stream);

}  // namespace day18::cuda
