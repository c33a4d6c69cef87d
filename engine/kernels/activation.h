// SiLU-and-mul, the gated activation of Llama's MLP (SwiGLU), the CUDA backend of
// engine/ops/activation.h:
//
//   out[t, j] = silu(input[t, j]) * input[t, d + j],   silu(x) = x / (1 + exp(-x))
//
// The gate_up projection writes gate and up side by side ([gate | up], vLLM's layout), so one
// kernel reads both halves of each row and writes a row half as wide.
// Launchers validate nothing (engine/ops/activation.cpp does); contiguous tensors, same dtype.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18::cuda {

void silu_and_mul(const Tensor& out,    // [num_tokens, d]
                  const Tensor& input,  // [num_tokens, 2 * d]  gate = [:, :d], up = [:, d:]
                  cudaStream_t stream);

}  // namespace day18::cuda
