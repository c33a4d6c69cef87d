// Inputs and oracle outputs for the kernels the experiments sweep: fresh seeded random values
// (generated on the device, fill_random_normal), the host copies the CPU oracle (engine/cpu/)
// reads, and the oracle's output. Built once per shape and shared by every configuration of a
// group, so each configuration is checked against the same expected output.
#pragma once

#include <cstdint>

#include "engine/core/memory.h"
#include "engine/core/tensor.h"

namespace day18::tuning {

// PagedAttention decode: B sequences of `ctx` cached tokens, one query token each; KV blocks of
// `block_size` at shuffled physical ids (a cache after allocate/free churn).
struct AttentionInputs {
  int64_t batch = 0, ctx = 0, num_heads = 0, num_kv_heads = 0, head_size = 0, block_size = 0;
  DType dtype = DType::f16;
  float scale = 1;
  OwnedTensor query, key_cache, value_cache, block_tables, seq_idx, context_lens;  // device
  OwnedTensor out;       // device, poisoned before each checked launch
  OwnedTensor expected;  // host: the CPU oracle's output
};
AttentionInputs make_attention_inputs(int64_t batch, int64_t ctx, int64_t num_heads,
                                      int64_t num_kv_heads, int64_t head_size, int64_t block_size,
                                      DType dtype, uint64_t seed);

// RMSNorm over [tokens, hidden]: input, residual and weight; expected out (rms_norm) and
// expected input/residual after fused_add_rms_norm.
struct NormInputs {
  int64_t tokens = 0, hidden = 0;
  DType dtype = DType::f16;
  double eps = 1e-5;
  OwnedTensor input, residual, weight, out;       // device
  OwnedTensor input0, residual0;                  // device: pristine copies (fused is in place)
  OwnedTensor expected_out;                       // host: rms_norm
  OwnedTensor expected_fused, expected_residual;  // host: fused_add_rms_norm's input, residual
};
NormInputs make_norm_inputs(int64_t tokens, int64_t hidden, DType dtype, uint64_t seed);

// A cudaMemcpyAsync of src into dst (same size, device), on `stream`.
void copy_device(const Tensor& dst, const Tensor& src, cudaStream_t stream);

}  // namespace day18::tuning
