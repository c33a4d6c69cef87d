// Linear layer: every projection of the model (q/k/v/o, gate_up, down, LM head).
//
//   linear(out, input, weight):  out = input @ weight^T
//     input [M, K] (M = num_tokens), weight [N, K] (Hugging Face nn.Linear layout:
//     [out_features, in_features]), out [M, N].
//
// No bias: Llama-family projections have none, so the op does not take one.
// CUDA tensors go to cuBLAS (cublasGemmEx, fp32 accumulation for fp16/bf16; fp32 tensors are
// multiplied in true fp32, never TF32). CPU tensors go to the plain C++ oracle (double
// accumulation). Any K >= 0 works (K not a multiple of 8 too: cuBLAS then picks a kernel that
// does not need 16-byte aligned rows, slower but correct). Validates dtypes (float32/float16/
// bfloat16, all the same), shapes, devices, contiguity; M, N, K < 2^31 (cuBLAS takes int).
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18 {

void linear(const Tensor& out,     // [M, N]
            const Tensor& input,   // [M, K]
            const Tensor& weight,  // [N, K]
            cudaStream_t stream = nullptr);

}  // namespace day18
