#include "engine/runtime/model_weights.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/core/safetensors.h"
#include "engine/runtime/model_kernels.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kInitStd = 0.02;    // HF's initializer_range for Llama
constexpr double kNormNoise = 0.05;  // RMSNorm weights: 1 + normal(0, 0.05)

struct Entry {
  std::string name;            // Hugging Face tensor name
  std::vector<int64_t> shape;  // its shape in the checkpoint
  Tensor dst;                  // where it goes (a row slice of a fused matrix); empty w/o weights
};

// Every checkpoint tensor of `c` and its destination in `w` (if given).
std::vector<Entry> entries(const ModelConfig& c, const LlamaWeights* w) {
  std::vector<Entry> e;
  auto dst = [&](const OwnedTensor& t, int64_t begin = 0, int64_t end = -1) -> Tensor {
    if (!w) return {};
    return end < 0 ? t.view() : t.view().slice0(begin, end);
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size, q = c.q_size(), kv = c.kv_size();
  e.push_back(
      {"model.embed_tokens.weight", {c.vocab_size, H}, w ? dst(w->embed_tokens) : Tensor{}});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const LayerWeights* L = w ? &w->layers[l] : nullptr;
    auto d = [&](OwnedTensor LayerWeights::*m, int64_t b = 0, int64_t en = -1) {
      return L ? dst(L->*m, b, en) : Tensor{};
    };
    e.push_back({p + "input_layernorm.weight", {H}, d(&LayerWeights::input_layernorm)});
    e.push_back({p + "self_attn.q_proj.weight", {q, H}, d(&LayerWeights::qkv_proj, 0, q)});
    e.push_back({p + "self_attn.k_proj.weight", {kv, H}, d(&LayerWeights::qkv_proj, q, q + kv)});
    e.push_back(
        {p + "self_attn.v_proj.weight", {kv, H}, d(&LayerWeights::qkv_proj, q + kv, q + 2 * kv)});
    e.push_back({p + "self_attn.o_proj.weight", {H, q}, d(&LayerWeights::o_proj)});
    e.push_back(
        {p + "post_attention_layernorm.weight", {H}, d(&LayerWeights::post_attention_layernorm)});
    e.push_back({p + "mlp.gate_proj.weight", {I, H}, d(&LayerWeights::gate_up_proj, 0, I)});
    e.push_back({p + "mlp.up_proj.weight", {I, H}, d(&LayerWeights::gate_up_proj, I, 2 * I)});
    e.push_back({p + "mlp.down_proj.weight", {H, I}, d(&LayerWeights::down_proj)});
  }
  e.push_back({"model.norm.weight", {H}, w ? dst(w->norm) : Tensor{}});
  if (!c.tie_word_embeddings)
    e.push_back({"lm_head.weight", {c.vocab_size, H}, w ? dst(w->lm_head) : Tensor{}});
  return e;
}

// Where one tensor lives: its file and its place in it.
struct Location {
  std::string file;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute, in the file
  uint64_t nbytes = 0;
};

// The header of one safetensors file, through the core reader (engine/core/safetensors.h): the
// same overflow-safe checks as every other read, offsets checked against the file size, so a
// truncated or corrupt shard is reported now, not halfway through the load.
std::map<std::string, Location> read_header(const std::string& path) {
  std::map<std::string, Location> out;
  for (auto& [name, t] : read_safetensors_header(path).tensors)
    out.emplace(name, Location{path, t.dtype, t.shape, t.offset, t.nbytes});
  return out;
}

// A shard named by model.safetensors.index.json must be a file of the model folder: a relative
// path that stays inside it (no "..", not absolute). Symlinks inside the folder are followed as
// usual (the Hugging Face cache links every file to its blob); what is refused is an index that
// sends the loader to a path of its choosing.
void check_shard_name(const std::string& shard, const fs::path& index) {
  const fs::path p(shard);
  bool escapes = shard.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory();
  for (const fs::path& part : p.lexically_normal()) escapes |= part == "..";
  DAY18_REQUIRE(!escapes, index.string(), ": weight_map names shard '", shard,
                "', which is outside the model folder (shards must be files of that folder)");
}

// All tensors of the checkpoint in `dir`: model.safetensors, or the shards that
// model.safetensors.index.json names.
std::map<std::string, Location> index_folder(const std::string& dir) {
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single)) return read_header(single.string());
  DAY18_REQUIRE(fs::exists(index), dir, ": no model.safetensors nor model.safetensors.index.json");
  std::ifstream in(index);
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    DAY18_REQUIRE(false, index.string(), ": malformed JSON: ", json_library_message(e.what()));
  }
  DAY18_REQUIRE(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                index.string(), ": missing 'weight_map'");
  std::map<std::string, std::string> weight_map;  // tensor -> shard
  std::set<std::string> shards;
  for (auto& [name, f] : j["weight_map"].items()) {
    DAY18_REQUIRE(f.is_string(), index.string(), ": weight_map['", name, "'] is not a file name");
    check_shard_name(f.get<std::string>(), index);
    weight_map[name] = f.get<std::string>();
    shards.insert(f.get<std::string>());
  }
  std::map<std::string, Location> all;
  for (const std::string& shard : shards) {
    const fs::path p = fs::path(dir) / shard;
    DAY18_REQUIRE(fs::exists(p), index.string(), ": shard '", shard, "' does not exist in ", dir);
    for (auto& [name, loc] : read_header(p.string())) all.emplace(name, loc);
  }
  for (auto& [name, shard] : weight_map) {
    auto it = all.find(name);
    DAY18_REQUIRE(it != all.end(), index.string(), ": tensor '", name, "' is mapped to ", shard,
                  " but that file does not contain it");
    DAY18_REQUIRE(it->second.file == (fs::path(dir) / shard).string(), index.string(),
                  ": tensor '", name, "' is mapped to ", shard, " but found in ",
                  it->second.file);
  }
  return all;
}

// src (n elements of `sdt`) -> dst (n elements of `ddt`), on the host.
void convert(const void* src, DType sdt, void* dst, DType ddt, int64_t n) {
  if (sdt == ddt) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(sdt));
    return;
  }
  dispatch_float(sdt, [&]<typename S>() {
    dispatch_float(ddt, [&]<typename D>() {
      const S* s = static_cast<const S*>(src);
      D* d = static_cast<D*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = from_float<D>(to_float(s[i]));
    });
  });
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> hf_tensor_shapes(
    const ModelConfig& config) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (auto& e : entries(config, nullptr)) out.emplace_back(e.name, e.shape);
  return out;
}

size_t LlamaWeights::bytes() const {
  size_t b = embed_tokens.nbytes() + norm.nbytes() + (has_lm_head() ? lm_head.nbytes() : 0);
  for (auto& l : layers)
    b += l.input_layernorm.nbytes() + l.qkv_proj.nbytes() + l.o_proj.nbytes() +
         l.post_attention_layernorm.nbytes() + l.gate_up_proj.nbytes() + l.down_proj.nbytes();
  return b;
}

LlamaWeights LlamaWeights::allocate(const ModelConfig& c, DType dtype, Storage storage) {
  DAY18_REQUIRE(is_floating(dtype), "model dtype must be float32, float16 or bfloat16, got ",
                dtype_name(dtype));
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  LlamaWeights w;
  w.embed_tokens = OwnedTensor({c.vocab_size, H}, dtype, storage);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights L;
    L.input_layernorm = OwnedTensor({H}, dtype, storage);
    L.qkv_proj = OwnedTensor({c.qkv_size(), H}, dtype, storage);
    L.o_proj = OwnedTensor({H, c.q_size()}, dtype, storage);
    L.post_attention_layernorm = OwnedTensor({H}, dtype, storage);
    L.gate_up_proj = OwnedTensor({2 * I, H}, dtype, storage);
    L.down_proj = OwnedTensor({H, I}, dtype, storage);
    w.layers.push_back(std::move(L));
  }
  w.norm = OwnedTensor({H}, dtype, storage);
  if (!c.tie_word_embeddings) w.lm_head = OwnedTensor({c.vocab_size, H}, dtype, storage);
  return w;
}

LlamaWeights LlamaWeights::random(const ModelConfig& c, DType dtype, Device device, uint64_t seed) {
  LlamaWeights w = allocate(c, dtype, device == Device::cuda ? Storage::device : Storage::host);
  // One id per weight tensor (the fused matrices are filled as a whole).
  uint64_t id = 0;
  auto linear = [&](const OwnedTensor& t) { fill_random_normal(t, seed, id++, 0.0, kInitStd); };
  auto norm = [&](const OwnedTensor& t) { fill_random_normal(t, seed, id++, 1.0, kNormNoise); };
  linear(w.embed_tokens);
  for (auto& L : w.layers) {
    norm(L.input_layernorm);
    linear(L.qkv_proj);
    linear(L.o_proj);
    norm(L.post_attention_layernorm);
    linear(L.gate_up_proj);
    linear(L.down_proj);
  }
  norm(w.norm);
  if (w.has_lm_head()) linear(w.lm_head);
  if (device == Device::cuda) DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  return w;
}

LlamaWeights LlamaWeights::load_folder(const std::string& dir, const ModelConfig& c, DType dtype,
                                       Device device) {
  // 1. Headers only: every expected tensor present with the right shape, nothing unexpected.
  const std::map<std::string, Location> found = index_folder(dir);
  const std::vector<Entry> expected = entries(c, nullptr);
  std::set<std::string> names;
  for (const Entry& e : expected) {
    names.insert(e.name);
    auto it = found.find(e.name);
    DAY18_REQUIRE(it != found.end(), dir, ": missing tensor '", e.name, "' (config ", c.describe(),
                  ")");
    DAY18_REQUIRE(is_floating(it->second.dtype), it->second.file, ": tensor '", e.name,
                  "' has dtype ", dtype_name(it->second.dtype), ", expected a floating type");
    DAY18_REQUIRE(it->second.shape == e.shape, it->second.file, ": tensor '", e.name,
                  "' has shape ", shape_string(it->second.shape), ", config.json implies ",
                  shape_string(e.shape));
  }
  for (auto& [name, loc] : found) {
    if (names.count(name)) continue;
    // Older checkpoints store RoPE's inverse frequencies (we compute them), tied ones may still
    // carry the LM head (identical to the embedding).
    const bool harmless = name.find("rotary_emb.inv_freq") != std::string::npos ||
                          (name == "lm_head.weight" && c.tie_word_embeddings);
    DAY18_REQUIRE(harmless, loc.file, ": unexpected tensor '", name,
                  "' (not part of a Llama model with this config.json)");
  }

  // 2. Allocate, then read tensor by tensor through one host staging buffer.
  LlamaWeights w = allocate(c, dtype, device == Device::cuda ? Storage::device : Storage::host);
  std::map<std::string, std::ifstream> files;
  std::vector<char> raw;
  for (const Entry& e : entries(c, &w)) {
    const Location& loc = found.at(e.name);
    std::ifstream& in = files[loc.file];
    if (!in.is_open()) in.open(loc.file, std::ios::binary);
    raw.resize(loc.nbytes);
    in.seekg(static_cast<std::streamoff>(loc.offset));
    in.read(raw.data(), static_cast<std::streamsize>(loc.nbytes));
    DAY18_REQUIRE(in.good(), loc.file, ": cannot read tensor '", e.name, "'");
    if (device == Device::cpu) {
      convert(raw.data(), loc.dtype, e.dst.data(), dtype, e.dst.numel());
    } else {
      OwnedTensor staging(e.dst.sizes(), dtype, Storage::host);
      convert(raw.data(), loc.dtype, staging.data(), dtype, e.dst.numel());
      copy_tensor(e.dst, staging.view());
    }
  }
  return w;
}

}  // namespace day18
