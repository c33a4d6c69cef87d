// Linear layer, the CUDA backend of engine/ops/linear.h: a GEMM through cuBLAS, or for decode
// batches of M <= kGemvMaxM tokens a GEMV kernel of ours (see linear.cu for why):
//
//   out = input @ weight^T        (no bias: Llama's projections have none)
//
// weight is in Hugging Face nn.Linear layout [out_features, in_features], so the weight of any
// checkpoint is used as stored. Accumulation is fp32 for every dtype (CUBLAS_COMPUTE_32F); for
// float32 tensors that means true fp32 FMAs, never TF32 (the math mode is CUBLAS_DEFAULT_MATH,
// and CUBLAS_COMPUTE_32F_FAST_TF32 is not used).
// Launchers validate nothing; contiguous row-major tensors, same dtype.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "engine/core/tensor.h"

namespace day18::cuda {

void linear_cublas(const Tensor& out,     // [M, N]  (M = num_tokens, N = out_features)
                   const Tensor& input,   // [M, K]  (K = in_features)
                   const Tensor& weight,  // [N, K]
                   cudaStream_t stream);

// The GEMV path: same contract as linear_cublas for 1 <= M <= kGemvMaxM, when gemv_supported().
inline constexpr int kGemvMaxM = 8;
// M in [1, kGemvMaxM], K > 0 and a multiple of the 16-byte vector (8 halves, 4 floats), every
// pointer 16-byte aligned.
bool gemv_supported(const Tensor& out, const Tensor& input, const Tensor& weight);
void gemv(const Tensor& out,     // [M, N]
          const Tensor& input,   // [M, K]
          const Tensor& weight,  // [N, K]
          cudaStream_t stream);
// out = silu_and_mul(gate_up) @ weight^T without the activation's round trip through memory:
// each CTA computes the [M, K] activation into shared memory (rounded to T as silu_and_mul
// rounds it, so the result equals the unfused pair), then runs the GEMV on it. Needs
// gemv_silu_mul_supported(): M == 1, gemv_supported and K * sizeof(T) <= kGemvMaxStagedBytes.
inline constexpr size_t kGemvMaxStagedBytes = 48 * 1024;
bool gemv_silu_mul_supported(const Tensor& out, const Tensor& gate_up, const Tensor& weight);
void gemv_silu_mul(const Tensor& out,      // [M, N]
                   const Tensor& gate_up,  // [M, 2K]: gate | up
                   const Tensor& weight,   // [N, K]
                   cudaStream_t stream);

// The cuBLAS handle of the calling thread for the current device, created on first use, bound to
// `stream` and with its own workspace of kCublasWorkspaceBytes attached (in that order:
// cublasSetStream resets the workspace to cuBLAS's default pool). Every linear() call of this
// thread on this device uses it. The explicit workspace matters for CUDA graphs: without it
// cuBLAS may allocate during a call, which stream capture forbids. The first call on a thread
// creates the handle (cudaMalloc): make it before any capture begins.
cublasHandle_t cublas_handle(cudaStream_t stream);
inline constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;  // NVIDIA's advice for Hopper

// out = (rms_norm(input [+ residual]) * norm_weight) @ weight^T for ONE token, with the norm
// computed by every CTA into shared memory (no launch, no round trip of the normalized row);
// residual_out (if defined) = input + residual, written once. Needs gemv_rms_norm_supported():
// M == 1, gemv_supported, K * sizeof(T) <= kGemvMaxStagedBytes, 16-byte aligned tensors.
// residual_out must not alias input or residual (the other CTAs are still reading them).
bool gemv_rms_norm_supported(const Tensor& out, const Tensor& input, const Tensor& weight,
                             const Tensor& residual, const Tensor& norm_weight,
                             const Tensor& residual_out);
void gemv_rms_norm(const Tensor& out,           // [1, N]
                   const Tensor& residual_out,  // [1, K] or undefined
                   const Tensor& input,         // [1, K]
                   const Tensor& residual,      // [1, K] or undefined (plain RMSNorm)
                   const Tensor& norm_weight,   // [K]
                   float eps,
                   const Tensor& weight,  // [N, K]
                   cudaStream_t stream);

}  // namespace day18::cuda
