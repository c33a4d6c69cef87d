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

// ---- The tuning experiments (engine/tuning/, `day18 tune block-size`) -------------------------
// What rms_norm (fused = false) / fused_add_rms_norm (fused = true) launch for rows of `hidden`
// elements of `dtype` (16-byte aligned tensors, as the engine allocates them):
struct RmsNormLaunch {
  int threads = 0;               // threads per block (one block per token)
  int vectors_per_thread = 0;    // version 1: 1, 2 or 4 16-byte vectors held in registers;
                                 // 0: version 2 (two passes over the row)
  bool vectorized = false;       // 16-byte accesses (hidden a multiple of the vector width)
  const void* kernel = nullptr;  // the __global__ function (for occupancy queries)
};
// threads_override: 0 = the launcher's own choice; else the threads per block to use, a multiple
// of 32 in [32, 1024] (InvalidArgument naming it otherwise).
RmsNormLaunch rms_norm_launch(DType dtype, int64_t hidden, bool fused, int threads_override = 0);

// rms_norm / fused_add_rms_norm with `threads` threads per block (a multiple of 32 in [32, 1024],
// validated): each thread keeps ceil(hidden_vectors / threads) vectors in registers when that is
// <= 4, else the loop version runs. Same results as the automatic choice.
void rms_norm_with_threads(const Tensor& out, const Tensor& input, const Tensor& weight,
                           double eps, int threads, cudaStream_t stream);
void fused_add_rms_norm_with_threads(const Tensor& input, const Tensor& residual,
                                     const Tensor& weight, double eps, int threads,
                                     cudaStream_t stream);

}  // namespace day18::cuda
