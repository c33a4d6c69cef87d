// The weights of a Llama-style model, laid out for the engine's GEMMs.
//
// Two fusions happen at load time (vLLM does the same: QKVParallelLinear, MergedColumnParallel
// Linear), so each becomes ONE cuBLAS call per layer instead of two or three:
//   qkv_proj     = rows of q_proj, then k_proj, then v_proj   [(H + 2 KV) * D, hidden]
//   gate_up_proj = rows of gate_proj, then up_proj             [2 * I, hidden]
// A linear weight is [out_features, in_features] (nn.Linear), so stacking projections that read
// the same input is stacking their rows: the GEMM's output row is [q | k | v] per token, and
// [gate | up] per token is exactly what silu_and_mul expects.
//
// Sources:
//   - random (presets): seeded, generated on the device that holds them (fill_random_normal), HF's
//     initialisation: linear and embedding weights normal(0, 0.02), RMSNorm weights 1 + a little
//     noise (HF uses exactly 1; noise makes a wrong norm weight visible in the tests).
//   - a Hugging Face folder: model.safetensors, or model-*.safetensors with
//     model.safetensors.index.json. Every header is read and checked against the config (names,
//     shapes, dtypes, offsets) BEFORE any weight memory is allocated; then each tensor is read,
//     converted to the model's dtype on the host (bf16 file -> fp16 model is fine), and copied
//     into its place (a row slice of the fused matrices).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/memory.h"
#include "engine/runtime/model_config.h"

namespace day18 {

struct LayerWeights {
  OwnedTensor input_layernorm;           // [hidden]
  OwnedTensor qkv_proj;                  // [(H + 2 KV) * D, hidden]: q rows, k rows, v rows
  OwnedTensor o_proj;                    // [hidden, H * D]
  OwnedTensor post_attention_layernorm;  // [hidden]
  OwnedTensor gate_up_proj;              // [2 * I, hidden]: gate rows, then up rows
  OwnedTensor down_proj;                 // [hidden, I]
};

struct LlamaWeights {
  OwnedTensor embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  OwnedTensor norm;     // [hidden]  the final RMSNorm
  OwnedTensor lm_head;  // [vocab, hidden]; empty when tie_word_embeddings (embed_tokens serves)

  bool has_lm_head() const { return lm_head.data() != nullptr; }
  const Tensor& lm_head_weight() const {
    return has_lm_head() ? lm_head.view() : embed_tokens.view();
  }
  size_t bytes() const;

  // Uninitialised weights of the config's shapes, in `storage`.
  static LlamaWeights allocate(const ModelConfig& config, DType dtype, Storage storage);
  static LlamaWeights random(const ModelConfig& config, DType dtype, Device device, uint64_t seed);
  // `config` must be the folder's config.json (LlamaModel::from_folder reads it).
  static LlamaWeights load_folder(const std::string& dir, const ModelConfig& config, DType dtype,
                                  Device device);
};

// The Hugging Face tensors a Llama checkpoint must contain for `config`, with their shapes, in a
// fixed order (embedding, layer by layer, norm, lm_head unless tied).
std::vector<std::pair<std::string, std::vector<int64_t>>> hf_tensor_shapes(
    const ModelConfig& config);

}  // namespace day18
