// Linear layer: every projection of the model (q/k/v/o, gate_up, down, LM head).
//
//   linear(out, input, weight):  out = input @ weight^T
//     input [M, K] (M = num_tokens), weight [N, K] (Hugging Face nn.Linear layout:
//     [out_features, in_features]), out [M, N].
//
// No bias: Llama-family projections have none, so the op does not take one.
// Accumulation is fp32 for every dtype; fp32 tensors are multiplied in true fp32, never TF32.
// CUDA tensors go to one of two algorithms (LinearAlgo):
//   - cublas: cublasGemmEx, the tiled tensor-core GEMM. Any M, any K >= 0 (K not a multiple of 8
//     too: cuBLAS then picks a kernel that does not need 16-byte aligned rows, slower but correct);
//   - gemv: our one-warp-per-output-row kernel for decode batches, M <= 8 (kernels/linear.h). It
//     needs K a multiple of 16 bytes' worth of elements and 16-byte aligned tensors.
//   - automatic (the default) takes gemv where it applies and M <= kLinearAutoGemvMaxM, else
//   cuBLAS.
// CPU tensors go to the plain C++ oracle (double accumulation) whatever the algo.
// Validates dtypes (float32/float16/bfloat16, all the same), shapes, devices, contiguity; M, N,
// K < 2^31 (cuBLAS takes int); an explicit gemv the shapes do not allow is an error naming `algo`.
//
//   linear_silu_mul(out, gate_up, weight):  out = silu_and_mul(gate_up) @ weight^T
//     gate_up [M, 2K] (gate | up, the gate_up projection's output), weight [N, K], out [M, N].
// The MLP's down projection with SiLU-and-mul folded in: on CUDA where the GEMV is the linear
// algorithm (M <= kLinearAutoGemvMaxM) it is ONE kernel that computes the activation into shared
// memory and multiplies it (one launch and one [M, K] round trip through memory fewer per layer);
// otherwise, and on the CPU, it is silu_and_mul into `scratch` ([M, K], required then) followed
// by linear. Same result either way: the activation is rounded to the dtype exactly as
// silu_and_mul rounds it.
//
//   rms_norm_linear(out, residual_out, input, residual, norm_weight, eps, weight):
//     residual_out = input + residual (rounded to the dtype), x = rms_norm(residual_out) *
//     norm_weight, out = x @ weight^T. Without a residual (undefined tensor): x = rms_norm(input)
//     * norm_weight and no residual_out. The decoder layer's fused_add_rms_norm + the projection
//     after it (QKV, gate_up), as one kernel where the GEMV serves (one token on CUDA): each CTA
//     normalizes the row in shared memory, so the norm costs no launch. Otherwise, and on the
//     CPU, the norm ops then linear through `scratch` ([M, K]). residual_out must not overlap
//     input or residual (the fused kernel reads them while CTA 0 writes it), unlike
//     fused_add_rms_norm's in-place update. The fused norm sums the squares in another order than
//     the norm kernel: the result may differ from the unfused pair by a rounding of x.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string_view>

#include "engine/core/tensor.h"

namespace day18 {

enum class LinearAlgo { automatic, cublas, gemv };
LinearAlgo parse_linear_algo(std::string_view s);  // "auto", "cublas", "gemv"
const char* linear_algo_name(LinearAlgo a);

// automatic picks the GEMV up to this many tokens. Measured on the H100 (BM_linear, fp16, llama-1b
// and llama-8b projections): the GEMV beats cuBLAS at M = 1 on every shape (o_proj 8.4 vs
// 10.3 us, down 18.4 vs 28.5 us, LM head 184 vs 200 us) and loses from M = 2 on, where each
// weight vector needs M activation loads from L1 and cuBLAS's tensor-core tiles reuse it instead.
inline constexpr int64_t kLinearAutoGemvMaxM = 1;

void linear(const Tensor& out,     // [M, N]
            const Tensor& input,   // [M, K]
            const Tensor& weight,  // [N, K]
            cudaStream_t stream = nullptr);
void linear(const Tensor& out, const Tensor& input, const Tensor& weight, LinearAlgo algo,
            cudaStream_t stream = nullptr);

// True when linear_silu_mul runs as one fused kernel (no scratch needed) for these tensors.
bool linear_silu_mul_is_fused(const Tensor& out, const Tensor& gate_up, const Tensor& weight);
void linear_silu_mul(const Tensor& out,      // [M, N]
                     const Tensor& gate_up,  // [M, 2K]
                     const Tensor& weight,   // [N, K]
                     const Tensor& scratch,  // [M, K] or undefined when fused
                     cudaStream_t stream = nullptr);

// True when rms_norm_linear runs as one fused kernel (no scratch needed) for these tensors.
bool rms_norm_linear_is_fused(const Tensor& out, const Tensor& residual_out, const Tensor& input,
                              const Tensor& residual, const Tensor& norm_weight,
                              const Tensor& weight);
void rms_norm_linear(const Tensor& out,           // [M, N]
                     const Tensor& residual_out,  // [M, K] or undefined (iff residual is)
                     const Tensor& input,         // [M, K]
                     const Tensor& residual,      // [M, K] or undefined
                     const Tensor& norm_weight,   // [K]
                     double eps,
                     const Tensor& weight,   // [N, K]
                     const Tensor& scratch,  // [M, K], or undefined when fused
                     cudaStream_t stream = nullptr);

}  // namespace day18
