#include "engine/runtime/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/kernels/paged_attention.h"

namespace day18 {
namespace {

using nlohmann::json;

int64_t get_int(const json& j, const std::string& key, const std::string& what) {
  DAY18_REQUIRE(j.contains(key), what, ": missing key '", key, "'");
  const json& v = j.at(key);
  DAY18_REQUIRE(v.is_number_integer(), what, ": '", key, "' must be an integer, got ", v.dump());
  return v.get<int64_t>();
}

double get_double(const json& j, const std::string& key, const std::string& what) {
  DAY18_REQUIRE(j.contains(key), what, ": missing key '", key, "'");
  const json& v = j.at(key);
  DAY18_REQUIRE(v.is_number(), what, ": '", key, "' must be a number, got ", v.dump());
  return v.get<double>();
}

// An optional key: absent or null, or of the type it must have. A key of the wrong type is an
// error naming it, never skipped: a check that reads only strings would let `"model_type": 5` or
// `"attention_bias": "true"` through unchecked.
bool has_string(const json& j, const char* key, const std::string& what) {
  if (!j.contains(key) || j.at(key).is_null()) return false;
  DAY18_REQUIRE(j.at(key).is_string(), what, ": '", key, "' must be a string, got ",
                j.at(key).dump());
  return true;
}
bool has_boolean(const json& j, const char* key, const std::string& what) {
  if (!j.contains(key) || j.at(key).is_null()) return false;
  DAY18_REQUIRE(j.at(key).is_boolean(), what, ": '", key, "' must be true or false, got ",
                j.at(key).dump());
  return true;
}

// "rope_type" of a rope_parameters (transformers 5) or rope_scaling (4.x) object: only plain RoPE
// is implemented (Llama 3.1's "llama3" frequency scaling is not).
void require_default_rope(const json& r, const std::string& key, const std::string& what) {
  if (r.is_null()) return;
  DAY18_REQUIRE(r.is_object(), what, ": '", key, "' must be an object or null, got ", r.dump());
  std::string type = "default";
  const std::string where = what + ": " + key;
  if (has_string(r, "rope_type", where))
    type = r["rope_type"];
  else if (has_string(r, "type", where))
    type = r["type"];
  DAY18_REQUIRE(type == "default", what, ": ", key, ".rope_type = '", type,
                "' is not supported (only plain RoPE, rope_type 'default')");
}

}  // namespace

ModelConfig ModelConfig::from_json_string(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    DAY18_REQUIRE(false, what, ": malformed JSON: ", json_library_message(e.what()));
  }
  DAY18_REQUIRE(j.is_object(), what, ": not a JSON object");

  if (has_string(j, "model_type", what))
    DAY18_REQUIRE(j["model_type"] == "llama", what, ": model_type '",
                  j["model_type"].get<std::string>(), "' is not supported (llama only)");
  if (has_string(j, "hidden_act", what))
    DAY18_REQUIRE(j["hidden_act"] == "silu", what, ": hidden_act '",
                  j["hidden_act"].get<std::string>(), "' is not supported (silu only)");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (has_boolean(j, bias, what))
      DAY18_REQUIRE(!j[bias].get<bool>(), what, ": ", bias,
                    " = true is not supported (Llama projections have no bias)");

  ModelConfig c;
  c.hidden_size = get_int(j, "hidden_size", what);
  c.intermediate_size = get_int(j, "intermediate_size", what);
  c.num_heads = get_int(j, "num_attention_heads", what);
  c.num_kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                       ? get_int(j, "num_key_value_heads", what)
                       : c.num_heads;  // HF's default: plain multi-head attention
  c.num_layers = get_int(j, "num_hidden_layers", what);
  c.vocab_size = get_int(j, "vocab_size", what);
  c.max_position = get_int(j, "max_position_embeddings", what);
  c.rms_norm_eps = get_double(j, "rms_norm_eps", what);
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_int(j, "head_dim", what);
  } else {
    DAY18_REQUIRE(c.num_heads > 0 && c.hidden_size % c.num_heads == 0, what,
                  ": no head_dim, and hidden_size = ", c.hidden_size,
                  " is not a multiple of num_attention_heads = ", c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  // transformers 5 writes rope_parameters {"rope_theta", "rope_type"}; 4.x writes rope_theta and
  // rope_scaling at the top level.
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    const json& rp = j["rope_parameters"];
    require_default_rope(rp, "rope_parameters", what);
    c.rope_theta = get_double(rp, "rope_theta", what + ": rope_parameters");
  } else {
    c.rope_theta = get_double(j, "rope_theta", what);
  }
  if (j.contains("rope_scaling")) require_default_rope(j["rope_scaling"], "rope_scaling", what);
  if (j.contains("tie_word_embeddings")) {
    DAY18_REQUIRE(j["tie_word_embeddings"].is_boolean(), what,
                  ": 'tie_word_embeddings' must be true or false, got ",
                  j["tie_word_embeddings"].dump());
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  c.name = what;
  c.validate(what);
  return c;
}

ModelConfig ModelConfig::from_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DAY18_REQUIRE(in.good(), path, ": cannot open the model config (config.json)");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_string(ss.str(), path);
}

std::vector<std::string> ModelConfig::preset_names() {
  return {"tiny", "llama-1b", "llama-8b"};
}

ModelConfig ModelConfig::preset(const std::string& name) {
  ModelConfig c;
  c.name = name;
  if (name == "tiny") {
    // Small enough for the CPU backend in CI (~1.4 M parameters), and still GQA (2 query heads per
    // KV head), multi-layer, untied LM head, head_dim 64 (the smallest PagedAttention size).
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 64;
    c.num_layers = 2;
    c.vocab_size = 512;
    c.max_position = 2048;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = false;
  } else if (name == "llama-1b") {
    // Llama 3.2 1B's shapes (tied embeddings), with plain RoPE.
    c.hidden_size = 2048;
    c.intermediate_size = 8192;
    c.num_heads = 32;
    c.num_kv_heads = 8;
    c.head_dim = 64;
    c.num_layers = 16;
    c.vocab_size = 128256;
    c.max_position = 131072;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = true;
  } else if (name == "llama-8b") {
    // Llama 3.1 8B's shapes, with plain RoPE.
    c.hidden_size = 4096;
    c.intermediate_size = 14336;
    c.num_heads = 32;
    c.num_kv_heads = 8;
    c.head_dim = 128;
    c.num_layers = 32;
    c.vocab_size = 128256;
    c.max_position = 131072;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = false;
  } else {
    std::string known;
    for (auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    DAY18_REQUIRE(false, "unknown model preset '", name, "' (known: ", known, ")");
  }
  c.validate("preset " + name);
  return c;
}

void ModelConfig::validate(const std::string& what) const {
  auto positive = [&](int64_t v, const char* key) {
    DAY18_REQUIRE(v > 0, what, ": ", key, " must be positive, got ", v);
  };
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_heads, "num_attention_heads");
  positive(num_kv_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(num_layers, "num_hidden_layers");
  positive(vocab_size, "vocab_size");
  positive(max_position, "max_position_embeddings");
  DAY18_REQUIRE(num_heads % num_kv_heads == 0, what, ": num_key_value_heads = ", num_kv_heads,
                " does not divide num_attention_heads = ", num_heads);
  // The head sizes the PagedAttention kernels are instantiated for.
  bool supported = false;
  for (int d : cuda::kPagedAttentionHeadSizes) supported |= d == head_dim;
  DAY18_REQUIRE(supported, what, ": head_dim = ", head_dim,
                " is not supported by PagedAttention (supported: ",
                cuda::paged_attention_head_sizes_text(), ")");
  DAY18_REQUIRE(std::isfinite(rms_norm_eps) && rms_norm_eps > 0, what,
                ": rms_norm_eps must be positive, got ", rms_norm_eps);
  DAY18_REQUIRE(std::isfinite(rope_theta) && rope_theta > 0, what,
                ": rope_theta must be positive, got ", rope_theta);
  DAY18_REQUIRE(vocab_size < (int64_t(1) << 31), what, ": vocab_size = ", vocab_size,
                " does not fit the int32 token ids");
}

int64_t ModelConfig::num_parameters() const {
  const int64_t per_layer = qkv_size() * hidden_size               // q/k/v projections
                            + hidden_size * q_size()               // o_proj
                            + 3 * intermediate_size * hidden_size  // gate, up, down
                            + 2 * hidden_size;                     // two RMSNorm weights
  return vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2) + num_layers * per_layer +
         hidden_size;
}

int64_t ModelConfig::kv_cache_bytes_per_block(DType dtype, int64_t block_size) const {
  return 2 * num_layers * num_kv_heads * block_size * head_dim *
         static_cast<int64_t>(dtype_size(dtype));
}

std::string ModelConfig::describe() const {
  std::ostringstream os;
  os << name << ": " << num_layers << " layers, hidden " << hidden_size << ", heads " << num_heads
     << "/" << num_kv_heads << " x " << head_dim << ", intermediate " << intermediate_size
     << ", vocab " << vocab_size << (tie_word_embeddings ? " (tied)" : "") << ", "
     << double(num_parameters()) / 1e6 << " M parameters";
  return os.str();
}

void RuntimeLimits::validate(const ModelConfig& config) const {
  DAY18_REQUIRE(max_num_tokens > 0, "RuntimeLimits: max_num_tokens must be positive, got ",
                max_num_tokens);
  DAY18_REQUIRE(max_num_seqs > 0 && max_num_seqs <= max_num_tokens,
                "RuntimeLimits: max_num_seqs must be in [1, max_num_tokens = ", max_num_tokens,
                "], got ", max_num_seqs);
  DAY18_REQUIRE(max_model_len > 0 && max_model_len <= config.max_position,
                "RuntimeLimits: max_model_len must be in [1, max_position_embeddings = ",
                config.max_position, "], got ", max_model_len);
  DAY18_REQUIRE(kv.block_size == 8 || kv.block_size == 16 || kv.block_size == 32,
                "RuntimeLimits: kv.block_size must be 8, 16 or 32, got ", kv.block_size);
  DAY18_REQUIRE(kv.num_blocks >= max_blocks_per_seq(),
                "RuntimeLimits: kv.num_blocks = ", kv.num_blocks,
                " cannot hold even one sequence of max_model_len = ", max_model_len, " (needs ",
                max_blocks_per_seq(), " blocks of ", kv.block_size, ")");
  DAY18_REQUIRE(kv.num_blocks < (int64_t(1) << 31) / kv.block_size,
                "RuntimeLimits: kv.num_blocks = ", kv.num_blocks, " too large for int32 block ids");
}

}  // namespace day18
