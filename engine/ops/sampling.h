// Public sampling ops: one call per op, the same for CPU and CUDA tensors (dispatch on the
// logits' device). Every argument is validated here and errors name it. Layouts, semantics and
// the algorithm: engine/kernels/sampling.h and sampling.cu.
//
// Parameter VALUES (temperature >= 0 and finite, top_k >= 0, 0 < top_p <= 1) are checked when the
// tensors are on the host. On the GPU they are not: checking would copy them back and synchronize
// every decode step, which is exactly what the pipeline must not do. vLLM validates sampling
// params once, when a request arrives; so should the caller. The kernels stay safe on bad values
// (temperature <= 0 or NaN -> greedy, top_k < 0 -> off, top_p clamped into (0, 1]).
//
// Logits VALUES: -inf masks a token; a row holding a NaN or +inf has no distribution, so its token
// is -1 and its probs are NaN, on both backends alike (engine/kernels/sampling.h, "Non-finite
// logits"). The ops do not throw for it: on the GPU that would need a sync, and the CPU must give
// the same answer. A caller that feeds tokens onward checks for -1.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/tensor.h"

namespace day18 {

// probs [batch, vocab] f32 = softmax(logits [batch, vocab] f32/f16/bf16 / temperature [batch] f32)
// (temperature 0: one-hot at the argmax).
void softmax(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
             cudaStream_t stream = nullptr);

// tokens [batch] i32 = argmax of each row of logits [batch, vocab] (ties -> lowest index; -1 for
// a row with a NaN or +inf).
void argmax(const Tensor& tokens, const Tensor& logits, cudaStream_t stream = nullptr);

// probs [batch, vocab] f32: the renormalised top-k/top-p-filtered distribution that `sample`
// draws from (zeros outside the kept set; one-hot at the argmax for temperature 0).
void top_k_top_p_probs(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
                       const Tensor& top_k, const Tensor& top_p, cudaStream_t stream = nullptr);

// tokens [batch] i32: one token per row, drawn with per-row temperature [batch] f32,
// top_k [batch] i32, top_p [batch] f32, seeds [batch] i64 and offsets [batch] i64; -1 for a row
// with a NaN or +inf logit.
void sample(const Tensor& tokens, const Tensor& logits, const Tensor& temperature,
            const Tensor& top_k, const Tensor& top_p, const Tensor& seeds, const Tensor& offsets,
            cudaStream_t stream = nullptr);

}  // namespace day18
