// SiLU-and-mul (SwiGLU's activation) of Llama's MLP:
//
//   silu_and_mul(out, input):  out[t, j] = silu(input[t, j]) * input[t, d + j]
//   silu(x) = x * sigmoid(x) = x / (1 + exp(-x))
//
// input holds [gate | up] per token (the fused gate_up projection's output, as in vLLM).
// Same call for CPU and CUDA tensors. Validates everything and throws day18::InvalidArgument
// naming the argument. The math is fp32 on the GPU (double on the CPU).
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18 {

void silu_and_mul(const Tensor& out,    // [num_tokens, d]
                  const Tensor& input,  // [num_tokens, 2 * d]  gate = [:, :d], up = [:, d:]
                  cudaStream_t stream = nullptr);

}  // namespace day18
