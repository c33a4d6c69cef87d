// RMSNorm, the normalization of every Llama-style decoder layer (and the final norm).
//
//   rms_norm(out, input, weight, eps):
//     out[t, :] = input[t, :] / sqrt(mean(input[t, :]^2) + eps) * weight
//   fused_add_rms_norm(input, residual, weight, eps):   (in place, vLLM semantics)
//     residual = input + residual        (stored in the dtype: the next layer's residual stream)
//     input    = rms_norm(residual) * weight
//
// Same call for CPU and CUDA tensors (dispatch on input.device()). Validates everything and
// throws day18::InvalidArgument naming the argument: dtypes (float32/float16/bfloat16, all the
// same), shapes, devices (all on the same one), contiguity, eps > 0 and finite.
// The math is fp32 on the GPU (double on the CPU), rounded once to the dtype at the end.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18 {

void rms_norm(const Tensor& out,     // [num_tokens, hidden_size]
              const Tensor& input,   // [num_tokens, hidden_size]
              const Tensor& weight,  // [hidden_size]
              double eps, cudaStream_t stream = nullptr);

void fused_add_rms_norm(const Tensor& input,     // [num_tokens, hidden_size]  in: x, out: normed
                        const Tensor& residual,  // [num_tokens, hidden_size]  in: r, out: x + r
                        const Tensor& weight,    // [hidden_size]
                        double eps, cudaStream_t stream = nullptr);

}  // namespace day18
