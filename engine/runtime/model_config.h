// The shape of a Llama-style model (what config.json says), the limits the runtime sizes its
// buffers for, and the batch one forward() step consumes.
//
//   ModelConfig cfg = ModelConfig::from_json_file("/models/llama-3.2-1b/config.json");
//   ModelConfig cfg = ModelConfig::preset("tiny");       // tiny, llama-1b, llama-8b
//
// Every error names the file, the key and the value ("config.json: num_key_value_heads = 3 does
// not divide num_attention_heads = 32").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace day18 {

struct ModelConfig {
  int64_t hidden_size = 0;        // H_d: width of the residual stream
  int64_t intermediate_size = 0;  // I: width of the MLP
  int64_t num_heads = 0;          // query heads
  int64_t num_kv_heads = 0;       // key/value heads (GQA: num_heads is a multiple)
  int64_t head_dim = 0;           // D (config.json may omit it: hidden_size / num_heads)
  int64_t num_layers = 0;
  int64_t vocab_size = 0;
  int64_t max_position = 0;  // max_position_embeddings: rows of the RoPE cos/sin table
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;  // LM head reuses the embedding table
  std::string name = "custom";       // preset name or the folder it came from (for reports)

  // Reads a Hugging Face config.json (transformers 4.x and 5.x: rope_theta at the top level or in
  // rope_parameters). Throws InvalidArgument naming the file and the key on a missing key, a
  // wrong type or an inconsistent/unsupported value (validate()).
  static ModelConfig from_json_file(const std::string& path);
  static ModelConfig from_json_string(const std::string& text, const std::string& what);
  // Built-in shapes: "tiny" (CPU-sized, used by CI), "llama-1b" (Llama 3.2 1B), "llama-8b"
  // (Llama 3.1 8B). Unknown names throw, listing the known ones.
  static ModelConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();

  // Throws InvalidArgument naming the field when the model cannot run on this engine:
  // non-positive sizes, num_heads % num_kv_heads != 0, head_dim not one PagedAttention supports
  // (cuda::kPagedAttentionHeadSizes: 32, 64, 80, 96, 112, 128, 192, 256), eps/theta not
  // positive, vocab >= 2^31 (token ids are int32).
  void validate(const std::string& what = "config") const;

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  int64_t qkv_size() const { return q_size() + 2 * kv_size(); }  // rows of the fused qkv_proj
  int64_t num_parameters() const;
  double weight_bytes(DType dtype) const { return double(num_parameters()) * dtype_size(dtype); }
  // K and V of one block, all layers: 2 * layers * kv_heads * block_size * head_dim * bytes.
  int64_t kv_cache_bytes_per_block(DType dtype, int64_t block_size) const;
  std::string describe() const;  // "tiny: 2 layers, hidden 256, heads 4/2 x 64, ..."
};

struct KVCacheConfig {
  int64_t num_blocks = 0;
  int64_t block_size = 16;  // tokens per block: 8, 16 or 32 (PagedAttention's choices)
};

// What the model sizes its scratch for. forward() refuses batches beyond these.
struct RuntimeLimits {
  int64_t max_num_tokens = 256;  // tokens in one step (prefill tokens + decode tokens)
  int64_t max_num_seqs = 64;     // sequences in one step (rows of block_tables and of logits)
  int64_t max_model_len = 2048;  // prompt + generated tokens of one sequence
  KVCacheConfig kv;
  // Throws naming the field (positive values, block_size supported, max_num_seqs <=
  // max_num_tokens, max_model_len <= max_position, kv.num_blocks * block_size >= max_model_len).
  void validate(const ModelConfig& config) const;
  // Throws (instead of dividing by zero) for a block size that is not positive.
  int64_t max_blocks_per_seq() const {
    DAY18_REQUIRE(kv.block_size > 0, "the KV block size (--block-size) must be 8, 16 or 32, got ",
                  kv.block_size);
    return (max_model_len + kv.block_size - 1) / kv.block_size;
  }
};

// One step's inputs, all on the model's device. Built by the input batch (or by
// make_contiguous_batch for tests and `day18 generate`).
struct ForwardBatch {
  Tensor token_ids;       // [num_tokens] i32
  Tensor positions;       // [num_tokens] i64: position of the token in its sequence
  Tensor slot_mapping;    // [num_tokens] i64: KV-cache slot (block * block_size + offset); -1 = pad
  Tensor seq_idx;         // [num_tokens] i32: row of block_tables
  Tensor context_lens;    // [num_tokens] i32: keys this token attends to (0 = padding token)
  Tensor block_tables;    // [num_seqs, max_blocks_per_seq] i32
  Tensor logits_indices;  // [num_seqs] i32: the token whose hidden state feeds the LM head
  int64_t max_context_len = 0;  // host value, >= every context_lens entry
  // Host: the token ranges of the step's sequences, [num_segments + 1] (vLLM's query_start_loc:
  // segment i is tokens [q[i], q[i+1]), one sequence). Attention runs the tensor-core prefill
  // kernel for segments of more than 8 tokens (ops/attention.h). Empty: not known, every token
  // takes the decode kernel.
  std::vector<int32_t> query_start_loc = {};

  int64_t num_tokens() const { return token_ids.defined() ? token_ids.numel() : 0; }
  int64_t num_seqs() const { return logits_indices.defined() ? logits_indices.numel() : 0; }
};

}  // namespace day18
