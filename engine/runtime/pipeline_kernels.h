// The one kernel the step pipeline adds to the model's: feeding a decode step's input tokens on
// the device from the previous step's samples (async scheduling: the CPU schedules step N+1
// before step N's tokens come back, so it does not know them).
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18 {

// token_ids[i] = prev_sampled[src_rows[i]] wherever src_rows[i] >= 0; other tokens untouched.
//   token_ids    [num_tokens] i32 (in place)
//   src_rows     [num_tokens] i32 (-1 = the token id is already in token_ids)
//   prev_sampled [num_prev_rows] i32 (the previous step's sampled tokens, one per logits row)
// Same device for all three; asynchronous on `stream` for CUDA, a loop on the host.
// A sampled -1 (a row whose logits held a NaN or +inf, kernels/sampling.h): the host loop throws
// saying so; the CUDA kernel feeds 0 instead (it cannot throw, and -1 must not index the
// embedding) and the engine throws when it processes that step's samples.
void feed_sampled_tokens(const Tensor& token_ids, const Tensor& src_rows,
                         const Tensor& prev_sampled, cudaStream_t stream = nullptr);

}  // namespace day18
