// Two small helpers the model needs beyond the op families, each for both backends:
//
//   fill_random_normal: seeded random weights for the presets, generated where they live (8 B
//     parameters of llama-8b are filled on the GPU in well under a second). A counter-based hash
//     (splitmix64 of seed, tensor id and element index): element i depends on nothing else, so the
//     CPU and the GPU produce BIT-IDENTICAL weights for the same seed, which is what lets the tests
//     compare the CUDA backend with the CPU backend on the same model.
//   cast_to_float: fp16/bf16 logits -> fp32 (cuBLAS writes the LM head in the model's dtype).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/core/tensor.h"

namespace day18 {

// t (contiguous, f32/f16/bf16, any device) = mean + std * z, z approximately standard normal:
// the Irwin-Hall sum of four 24-bit uniforms, centred and scaled to unit variance (bounded at
// +-3.46 std; plenty for random test weights). Computed in double with one rounding to float,
// then one to the dtype, identically on host and device. Asynchronous on `stream` for CUDA.
void fill_random_normal(const Tensor& t, uint64_t seed, uint64_t tensor_id, double mean, double std,
                        cudaStream_t stream = nullptr);

// out [n...] f32 = in [n...] (f32/f16/bf16), contiguous, same shape and device.
void cast_to_float(const Tensor& out, const Tensor& in, cudaStream_t stream = nullptr);

// dst [rows, cols] = src [rows, cols] where src's rows are `src_row_stride` elements apart (a
// column block of a wider matrix, e.g. the q part of the fused qkv output) and dst is contiguous.
// One cudaMemcpy2DAsync on CUDA (no allocation, graph-capturable), a row loop on the host.
void copy_rows(const Tensor& dst, const Tensor& src, cudaStream_t stream = nullptr);

}  // namespace day18
