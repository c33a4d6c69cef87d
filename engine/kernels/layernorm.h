// RMSNorm kernels (Llama's LayerNorm replacement), the CUDA backend of engine/ops/layernorm.h.
//
//   rms_norm:            out = input * rsqrt(mean(input^2) + eps) * weight        (per token)
//   fused_add_rms_norm:  residual = input + residual  (rounded to the dtype, stored)
//                        input    = rms_norm(residual) * weight                   (in place)
//
// The fused form is what every decoder layer runs between attention and MLP (vLLM semantics):
// one pass reads input and residual once and writes both, instead of an add kernel followed by a
// norm kernel that reads the sum back.
//
// Launchers validate nothing (engine/ops/layernorm.cpp does); all tensors contiguous, same dtype
// (float, half or bfloat16), on the current device. The math is fp32 whatever the dtype.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18::cuda {

void rms_norm(const Tensor& out,     // [num_tokens, hidden_size]
              const Tensor& input,   // [num_tokens, hidden_size]
              const Tensor& weight,  // [hidden_size]
              double eps, cudaStream_t stream);

void fused_add_rms_norm(const Tensor& input,     // [num_tokens, hidden_size]  in: x, out: normed
                        const Tensor& residual,  // [num_tokens, hidden_size]  in: r, out: x + r
                        const Tensor& weight,    // [hidden_size]
                        double eps, cudaStream_t stream);

}  // namespace day18::cuda
