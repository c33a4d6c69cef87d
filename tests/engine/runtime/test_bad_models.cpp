// What the runtime does with bad models and impossible sizes: every case is a clear error before
// anything big is allocated, never a crash, a hang or a silently wrong result.
//   - a shard whose data_offsets wrap around 2^64 (read header bytes as a weight before);
//   - an index.json that maps a tensor to a file outside the model folder (followed before);
//   - a model that does not fit in memory (killed by the OOM killer a minute later before);
//   - a KV block size of 0 (SIGFPE before);
//   - NaN weights through the engine (SIGSEGV in the CPU top-p threshold before).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/core/rng.h"
#include "engine/core/safetensors.h"
#include "engine/runtime/contiguous_batch.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/model_memory.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_support.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  return testing::fresh_temp_dir("day18_bad_models_test", name);
}

const char* kConfig = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
  "hidden_size": 128, "intermediate_size": 192, "num_attention_heads": 2,
  "num_key_value_heads": 1, "head_dim": 64, "num_hidden_layers": 2, "vocab_size": 97,
  "max_position_embeddings": 256, "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
  "tie_word_embeddings": false})";

ModelConfig small_config() {
  return ModelConfig::from_json_string(kConfig, "config.json");
}

RuntimeLimits small_limits() {
  RuntimeLimits l;
  l.max_num_tokens = 64;
  l.max_num_seqs = 4;
  l.max_model_len = 128;
  l.kv.block_size = 16;
  l.kv.num_blocks = 32;
  return l;
}

// Random HF tensors of the small config; `nan_tensor` (if given) is all NaN.
std::map<std::string, OwnedTensor> hf_tensors(const std::string& nan_tensor = "") {
  Rng rng(3);
  std::map<std::string, OwnedTensor> w;
  for (auto& [name, shape] : hf_tensor_shapes(small_config())) {
    const bool norm = name.find("norm") != std::string::npos;
    OwnedTensor t = rng.normal_tensor(shape, DType::f32, norm ? 1.0 : 0.0, norm ? 0.1 : 0.05);
    if (name == nan_tensor)
      for (int64_t i = 0; i < t.numel(); ++i)
        t.ptr<float>()[i] = std::numeric_limits<float>::quiet_NaN();
    w.emplace(name, std::move(t));
  }
  return w;
}

std::map<std::string, Tensor> views(const std::map<std::string, OwnedTensor>& w) {
  std::map<std::string, Tensor> m;
  for (auto& [k, v] : w) m.emplace(k, v.view());
  return m;
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p) << s;
}

fs::path model_folder(const std::string& name, const std::string& nan_tensor = "") {
  const fs::path d = fresh_dir(name);
  write_text(d / "config.json", kConfig);
  write_safetensors((d / "model.safetensors").string(), views(hf_tensors(nan_tensor)));
  return d;
}

// A safetensors image by hand: every tensor packed in name order, except `victim`, whose
// data_offsets are [b, e] with b + (8 + header size) == 2^64 (wraps to offset 0: the header).
std::string image_with_wrapping_offsets(const std::map<std::string, OwnedTensor>& w,
                                        const std::string& victim) {
  std::string header, data;
  for (int pass = 0; pass < 3; ++pass) {  // the header's own length enters the victim's offsets
    const uint64_t data_begin = 8 + header.size();
    header = "{";
    data.clear();
    for (auto& [name, t] : w) {
      uint64_t b = data.size(), e = b + t.nbytes();
      if (name == victim) {
        b = ~uint64_t{0} - data_begin + 1;
        e = b + t.nbytes();
      } else {
        data.append(static_cast<const char*>(t.data()), t.nbytes());
      }
      header +=
          (header.size() > 1 ? "," : "") + ("\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[");
      for (size_t i = 0; i < t.sizes().size(); ++i)
        header += (i ? "," : "") + std::to_string(t.sizes()[i]);
      header += "],\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(e) + "]}";
    }
    header += "}";
  }
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

// ---- the loader ----------------------------------------------------------------------------

TEST(BadModelFolder, DataOffsetsThatWrapAroundTwoToThe64AreRefused) {
  const fs::path d = fresh_dir("wrap");
  write_text(d / "config.json", kConfig);
  // model.norm.weight: 128 floats = 512 bytes, much less than the header, so the wrapped offset
  // stays inside the file and the old loader read the header's bytes as the final norm.
  std::ofstream(d / "model.safetensors", std::ios::binary)
      << image_with_wrapping_offsets(hf_tensors(), "model.norm.weight");
  EXPECT_THROW_WITH(LlamaModel::from_folder(d.string(), DType::f32, Device::cpu, small_limits()),
                    InvalidArgument, "model.safetensors", "tensor 'model.norm.weight'",
                    "outside the data section");
}

TEST(BadModelFolder, IndexMappingATensorOutsideTheFolderIsRefused) {
  // A real shard, one folder up: the index must not be able to send the loader there.
  const fs::path outside = fresh_dir("outside");
  write_safetensors((outside / "model-00001-of-00001.safetensors").string(), views(hf_tensors()));
  const fs::path abs_shard = outside / "model-00001-of-00001.safetensors";
  for (const std::string& shard :
       {std::string("../outside/model-00001-of-00001.safetensors"), abs_shard.string(),
        std::string("sub/../../outside/model-00001-of-00001.safetensors")}) {
    SCOPED_TRACE(shard);
    const fs::path d = fresh_dir("escaping");
    write_text(d / "config.json", kConfig);
    std::string map;
    for (auto& [name, shape] : hf_tensor_shapes(small_config()))
      map += (map.empty() ? "" : ", ") + ("\"" + name + "\": \"" + shard + "\"");
    write_text(d / "model.safetensors.index.json", "{\"weight_map\": {" + map + "}}");
    EXPECT_THROW_WITH(LlamaModel::from_folder(d.string(), DType::f32, Device::cpu, small_limits()),
                      InvalidArgument, "model.safetensors.index.json", shard.c_str(),
                      "outside the model folder");
  }
}

TEST(BadModelFolder, ASymlinkedShardInsideTheFolderStillLoads) {
  // The Hugging Face cache links every file of a snapshot to its blob elsewhere: fine.
  const fs::path blobs = fresh_dir("blobs");
  write_safetensors((blobs / "blob").string(), views(hf_tensors()));
  const fs::path d = fresh_dir("snapshot");
  write_text(d / "config.json", kConfig);
  fs::create_symlink(blobs / "blob", d / "model-00001-of-00001.safetensors");
  std::string map;
  for (auto& [name, shape] : hf_tensor_shapes(small_config()))
    map += (map.empty() ? "" : ", ") + ("\"" + name + "\": \"model-00001-of-00001.safetensors\"");
  write_text(d / "model.safetensors.index.json", "{\"weight_map\": {" + map + "}}");
  EXPECT_NO_THROW(LlamaModel::from_folder(d.string(), DType::f32, Device::cpu, small_limits()));
}

// ---- sizes -----------------------------------------------------------------------------------

TEST(ModelMemory, EstimateEqualsWhatTheModelAllocates) {
  for (DType dt : {DType::f32, DType::bf16}) {
    const RuntimeLimits l = small_limits();
    LlamaModel m = LlamaModel::from_preset("tiny", dt, Device::cpu, 0, l);
    const ModelMemory e = estimate_model_memory(m.config(), dt, Device::cpu, l);
    EXPECT_EQ(e.weights, double(m.weight_bytes())) << dtype_name(dt);
    EXPECT_EQ(e.kv_cache, double(m.kv_cache_bytes())) << dtype_name(dt);
    EXPECT_EQ(e.scratch, double(m.scratch_bytes())) << dtype_name(dt);
  }
}

TEST(ModelMemory, TooBigIsRefusedWithTheNumbers) {
  ModelMemory need;
  need.weights = 32.1e9;
  need.kv_cache = 1e9;
  need.scratch = 0.2e9;
  EXPECT_THROW_WITH(check_memory_fits(need, Device::cpu, {24'000'000'000, "MemAvailable"},
                                      "llama-8b (float32, cpu)"),
                    InvalidArgument, "llama-8b (float32, cpu) does not fit in host memory",
                    "needs 33.3 GB", "weights 32.1 GB", "KV cache 1.0 GB", "24.0 GB is available",
                    "MemAvailable", "--dtype");
  EXPECT_THROW_WITH(
      check_memory_fits(need, Device::cuda, {16'000'000'000, "cudaMemGetInfo"}, "llama-8b"),
      InvalidArgument, "does not fit in GPU memory", "16.0 GB is available");
  EXPECT_NO_THROW(check_memory_fits(need, Device::cpu, {40'000'000'000, "x"}, "llama-8b"));
}

TEST(ModelMemory, AnAbsurdKvCacheIsRefusedBeforeAllocating) {
  RuntimeLimits l = small_limits();
  l.kv.num_blocks = 100'000'000;  // tiny: 32 KB a block, 3.2 TB in all
  EXPECT_THROW_WITH(LlamaModel::from_preset("tiny", DType::f32, Device::cpu, 0, l), InvalidArgument,
                    "does not fit in host memory", "KV cache 3276.8 GB");
  EngineConfig c;
  c.preset = "tiny";
  c.num_gpu_blocks = 100'000'000;
  EXPECT_THROW_WITH(LLMEngine{c}, InvalidArgument, "does not fit in host memory");
}

TEST(RuntimeLimitsBlockSize, ZeroIsAnErrorNotADivisionByZero) {
  RuntimeLimits l = small_limits();
  l.kv.block_size = 0;
  EXPECT_THROW_WITH((void)l.max_blocks_per_seq(), InvalidArgument, "--block-size", "got 0");
  EngineConfig c;
  c.preset = "tiny";
  c.block_size = 0;
  EXPECT_THROW_WITH(LLMEngine{c}, InvalidArgument, "block size");
}

// ---- NaN weights through the engine ----------------------------------------------------------

SamplingParams params(float t, float top_p) {
  SamplingParams p;
  p.temperature = t;
  p.top_p = top_p;
  p.max_tokens = 4;
  p.ignore_eos = true;
  return p;
}

void expect_nan_model_fails_clearly(Device device, bool async) {
  const fs::path d =
      model_folder(std::string("nan_") + (async ? "async" : "sync"), "model.norm.weight");
  for (const SamplingParams& p : {params(0.f, 1.f), params(1.f, 0.5f), params(0.8f, 0.9f)}) {
    SCOPED_TRACE(::testing::Message()
                 << "T " << p.temperature << " top_p " << p.top_p << (async ? " async" : " sync"));
    EngineConfig c;
    c.model_dir = d.string();
    c.device = device;
    c.dtype = DType::f32;
    c.max_num_seqs = 4;
    c.max_num_batched_tokens = 64;
    c.max_model_len = 128;
    c.num_gpu_blocks = 32;
    c.num_cpu_blocks = 8;
    c.async_scheduling = async;
    LLMEngine e(c);
    e.add_request({1, 2, 3, 4}, p);
    e.add_request({5, 6}, p);
    EXPECT_THROW_WITH(e.run_until_done(), Error, "NaN or +inf", "not finite");
  }
}

TEST(NanWeightsCpu, TheEngineStopsWithAClearErrorInEverySamplingMode) {
  expect_nan_model_fails_clearly(Device::cpu, /*async=*/false);
  expect_nan_model_fails_clearly(Device::cpu, /*async=*/true);
}

TEST(NanWeightsGpu, TheEngineStopsWithAClearErrorInEverySamplingMode) {
  DAY18_REQUIRE_GPU();
  expect_nan_model_fails_clearly(Device::cuda, /*async=*/false);
  expect_nan_model_fails_clearly(Device::cuda, /*async=*/true);
}

TEST(NanWeightsCpu, GreedyTokensNamesTheRow) {
  OwnedTensor logits({2, 5}, DType::f32, Storage::host);
  for (int i = 0; i < 10; ++i) logits.ptr<float>()[i] = float(i);
  logits.ptr<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW_WITH(greedy_tokens(logits.view()), Error, "logits row 1", "token 2", "not finite");
}

}  // namespace
}  // namespace day18
