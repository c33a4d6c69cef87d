// CPU oracle (and CPU backend) of the sampling family: the same calls as engine/kernels/sampling.h,
// computed the plain way: std::nth_element for the top-k threshold, std::sort plus a double
// prefix sum for top-p, double precision throughout, and the same Philox numbers and Gumbel-max
// argmax as the GPU, so both backends sample the same token for the same (seed, offset, logits).
// Tensors are host tensors; the stream is ignored. Layouts and semantics: see
// engine/kernels/sampling.h.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18::cpu {

void softmax(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
             cudaStream_t stream = nullptr);

void argmax(const Tensor& tokens, const Tensor& logits, cudaStream_t stream = nullptr);

void top_k_top_p_probs(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
                       const Tensor& top_k, const Tensor& top_p, cudaStream_t stream = nullptr);

void sample(const Tensor& tokens, const Tensor& logits, const Tensor& temperature,
            const Tensor& top_k, const Tensor& top_p, const Tensor& seeds, const Tensor& offsets,
            cudaStream_t stream = nullptr);

}  // namespace day18::cpu
