// Embedding lookup: token ids -> hidden states, the first op of every step.
//
//   embedding(out, token_ids, weight, check_ids):  out[t, :] = weight[token_ids[t], :]
//
// Token ids outside [0, vocab_size):
//   - CPU tensors: always an InvalidArgument naming token_ids, the index, the value and the
//     vocabulary size (checked before anything is written).
//   - CUDA tensors: the kernel never reads outside the table; such a row comes out as zeros.
//     With check_ids = true (the default, and what `day18 kernel`/the tour/the golden tests use)
//     the op also records the first bad index on the device, waits for the stream
//     (cudaStreamSynchronize: a host sync, so not for CUDA-graph capture or the hot loop) and
//     throws the same InvalidArgument as the CPU. The engine's step loop, whose ids come from
//     its own sampler and tokenizer, passes check_ids = false: no sync, no extra launch.
//
// Same call for CPU and CUDA tensors. Validates dtypes (token_ids int32; weight and out
// float32/float16/bfloat16, the same), shapes, devices, contiguity.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18 {

void embedding(const Tensor& out,        // [num_tokens, hidden_size]
               const Tensor& token_ids,  // [num_tokens] int32
               const Tensor& weight,     // [vocab_size, hidden_size]
               bool check_ids = true, cudaStream_t stream = nullptr);

// Catches embedding(out, ids, weight, stream): a stream would silently convert to check_ids.
void embedding(const Tensor& out, const Tensor& token_ids, const Tensor& weight,
               cudaStream_t stream) = delete;

}  // namespace day18
