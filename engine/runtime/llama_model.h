// LlamaModel: one forward step of a Llama-style decoder over a paged KV cache, on either backend.
//
//   LlamaModel model = LlamaModel::from_preset("tiny", DType::f32, Device::cpu, /*seed=*/0,
//   limits); const Tensor& logits = model.forward(batch, stream);   // [num_seqs, vocab] f32
//
// The step, as the timeline shows it (NVTX ranges in brackets):
//   [ModelExecutor]
//     embedding(token_ids)                                       -> residual
//     per layer l:
//       [Norm]      l == 0: hidden = rms_norm(residual)
//                   else:   residual += hidden; hidden = rms_norm(residual)  (fused_add_rms_norm)
//       [Attention] qkv = hidden @ qkv_proj^T                    one GEMM for q, k and v
//                   rotary_embedding(positions, q, k)            in place, views into qkv
//                   reshape_and_cache(k, v -> layer l's cache at slot_mapping)
//                   q -> contiguous (PagedAttention reads a packed query)
//                   attn = paged_attention(q, caches, block_tables, seq_idx, context_lens)
//                   hidden = attn @ o_proj^T
//       [Norm]      residual += hidden; hidden = rms_norm(residual)  (post_attention_layernorm)
//       [MLP]       gate_up = hidden @ gate_up_proj^T           one GEMM for gate and up
//                   act = silu(gate) * up
//                   hidden = act @ down_proj^T
//     [Norm] LM head: gather the rows at logits_indices (the last token of each sequence) of
//            hidden and residual, residual += hidden, rms_norm (the final norm, on num_seqs rows
//            only), logits = hidden @ lm_head^T, cast to fp32 for the sampler.
//
// Every buffer is allocated at construction (activations for max_num_tokens, the PagedAttention
// workspace for the worst plan, the KV caches, the RoPE table): forward() allocates nothing and
// synchronizes nothing, so a CUDA graph can capture it. The returned logits are a view into the
// model's scratch, valid until the next forward().
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/memory.h"
#include "engine/ops/attention.h"
#include "engine/runtime/model_config.h"
#include "engine/runtime/model_weights.h"

namespace day18 {

class LlamaModel {
 public:
  // Random seeded weights of a preset (ModelConfig::preset), generated on `device`.
  static LlamaModel from_preset(const std::string& name, DType dtype, Device device, uint64_t seed,
                                const RuntimeLimits& limits);
  // A Hugging Face folder: config.json + model.safetensors (or shards with the index json).
  static LlamaModel from_folder(const std::string& dir, DType dtype, Device device,
                                const RuntimeLimits& limits);
  // Any config, random weights (tests: odd shapes without a preset).
  static LlamaModel from_config(const ModelConfig& config, DType dtype, Device device,
                                uint64_t seed, const RuntimeLimits& limits);
  // Takes ownership of prepared weights (must match config, dtype and device).
  LlamaModel(const ModelConfig& config, LlamaWeights weights, DType dtype, Device device,
             const RuntimeLimits& limits);

  LlamaModel(LlamaModel&&) noexcept = default;
  LlamaModel& operator=(LlamaModel&&) noexcept = default;
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  // One step: logits [num_seqs, vocab] f32 of the tokens at batch.logits_indices. Writes each
  // token's K and V into the caches at slot_mapping first. Validates the batch's shapes, dtypes
  // and devices against the limits (host-side only: no sync, no allocation); on the CUDA
  // backend index VALUES are not checked (the ops' unchecked hot-path variants run).
  const Tensor& forward(const ForwardBatch& batch, cudaStream_t stream = nullptr);

  const ModelConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const RuntimeLimits& limits() const { return limits_; }
  const LlamaWeights& weights() const { return weights_; }

  // Per-layer views [num_blocks, num_kv_heads, block_size, head_dim] (for copy_blocks/swap).
  std::vector<Tensor> key_caches() const;
  std::vector<Tensor> value_caches() const;
  // All layers in one tensor [num_layers, num_blocks, num_kv_heads, block_size, head_dim]
  // (copy_blocks' stacked form: one launch for every layer).
  const Tensor& key_cache_stacked() const { return key_cache_.view(); }
  const Tensor& value_cache_stacked() const { return value_cache_.view(); }

  size_t weight_bytes() const { return weights_.bytes(); }
  size_t kv_cache_bytes() const { return key_cache_.nbytes() + value_cache_.nbytes(); }
  size_t scratch_bytes() const;  // activations + attention workspace + RoPE table + logits
  size_t attention_workspace_bytes() const {
    return attn_workspace_.data() ? attn_workspace_.nbytes() : 0;
  }

  // PagedAttention settings for every layer (version/partition/threads: the tuning experiments).
  // Forcing a version whose workspace exceeds the one allocated makes forward() throw.
  PagedAttentionOptions& attention_options() { return attn_options_; }

 private:
  void validate_batch(const ForwardBatch& b) const;
  // A decoder-layer norm and the projection after it: out = linear(norm(hidden [+ residual])).
  // add_residual: fused_add_rms_norm (residual += hidden), else rms_norm of the residual (layer
  // 0's input). fuse: one kernel (rms_norm_linear), the residual stream moving buffers.
  void norm_linear(const Tensor& out, const Tensor& norm_weight, const Tensor& weight,
                   bool add_residual, Tensor& residual, bool fuse, int64_t T, cudaStream_t stream);
  void attention(int64_t layer, const ForwardBatch& b, int64_t T, Tensor& residual, bool fuse,
                 cudaStream_t stream);
  void mlp(int64_t layer, int64_t T, Tensor& residual, bool fuse, cudaStream_t stream);

  ModelConfig config_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
  RuntimeLimits limits_;
  LlamaWeights weights_;
  PagedAttentionOptions attn_options_;

  OwnedTensor cos_sin_cache_;  // [max_model_len, head_dim]: cos | sin (neox style)
  OwnedTensor key_cache_;      // [num_layers, num_blocks, num_kv_heads, block_size, head_dim]
  OwnedTensor value_cache_;    // same

  // Scratch, sized for max_num_tokens T / max_num_seqs S.
  OwnedTensor residual_;        // [T, hidden]  the residual stream
  OwnedTensor hidden_;          // [T, hidden]  normed input of a block / output of a block
  OwnedTensor qkv_;             // [T, (H + 2 KV) * D]
  OwnedTensor query_;           // [T, H, D]    packed q for PagedAttention
  OwnedTensor attn_out_;        // [T, H, D]
  OwnedTensor gate_up_;         // [T, 2 * I]
  OwnedTensor act_;             // [T, I]
  OwnedTensor last_hidden_;     // [S, hidden]  rows at logits_indices
  OwnedTensor last_residual_;   // [S, hidden]
  OwnedTensor logits_dtype_;    // [S, vocab]   LM head output in the model dtype (fp16/bf16 only)
  OwnedTensor logits_;          // [S, vocab]   f32
  OwnedTensor attn_workspace_;  // u8: PagedAttention v2's partials for the worst plan
  Tensor logits_view_;          // rows [0, num_seqs) of logits_
};

}  // namespace day18
