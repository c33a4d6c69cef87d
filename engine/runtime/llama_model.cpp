#include "engine/runtime/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/core/nvtx.h"
#include "engine/ops/embedding.h"
#include "engine/ops/layernorm.h"
#include "engine/ops/linear.h"
#include "engine/ops/rotary.h"
#include "engine/runtime/model_kernels.h"
#include "engine/runtime/model_memory.h"

namespace day18 {
namespace {

// The largest PagedAttention v2 workspace any batch within the limits can need: the planner's
// own answer over every batch size and context (a long prefill picks v2 with 512-token
// partitions, a batch-1 decode 64-token ones: either can be the worst case).
size_t attention_workspace_bound(const ModelConfig& c, const RuntimeLimits& lim) {
  return paged_attention_workspace_bound(lim.max_num_tokens, c.num_heads, c.num_kv_heads,
                                         c.head_dim, static_cast<int>(lim.max_model_len));
}

void zero(const OwnedTensor& t) {
  if (t.nbytes() == 0) return;
  if (t.storage() == Storage::device)
    DAY18_CUDA_CHECK(cudaMemset(t.data(), 0, t.nbytes()));
  else
    std::memset(t.data(), 0, t.nbytes());
}

// A [rows, cols] view of columns [col, col + cols) of a contiguous 2-D tensor, reshaped to
// [rows, heads, head_dim] (the q, k or v part of the fused qkv output).
Tensor column_block(const Tensor& m, int64_t rows, int64_t col, int64_t heads, int64_t head_dim) {
  const int64_t ld = m.size(1);
  void* p = static_cast<char*>(m.data()) + col * dtype_size(m.dtype());
  return Tensor(p, m.dtype(), {rows, heads, head_dim}, {ld, head_dim, 1}, m.device());
}

}  // namespace

LlamaModel LlamaModel::from_preset(const std::string& name, DType dtype, Device device,
                                   uint64_t seed, const RuntimeLimits& limits) {
  return from_config(ModelConfig::preset(name), dtype, device, seed, limits);
}

LlamaModel LlamaModel::from_config(const ModelConfig& config, DType dtype, Device device,
                                   uint64_t seed, const RuntimeLimits& limits) {
  config.validate(config.name);
  limits.validate(config);
  if (device == Device::cuda)
    DAY18_REQUIRE(cuda_available(), "LlamaModel: device cuda but ", cuda_unavailable_reason());
  check_model_fits(config, dtype, device, limits);  // before any allocation (model_memory.h)
  return LlamaModel(config, LlamaWeights::random(config, dtype, device, seed), dtype, device,
                    limits);
}

LlamaModel LlamaModel::from_folder(const std::string& dir, DType dtype, Device device,
                                   const RuntimeLimits& limits) {
  DAY18_REQUIRE(std::filesystem::is_directory(dir), dir, ": not a model folder (does not exist)");
  ModelConfig config =
      ModelConfig::from_json_file((std::filesystem::path(dir) / "config.json").string());
  config.name = std::filesystem::path(dir).filename().string();
  limits.validate(config);
  if (device == Device::cuda)
    DAY18_REQUIRE(cuda_available(), "LlamaModel: device cuda but ", cuda_unavailable_reason());
  check_model_fits(config, dtype, device, limits);  // before any allocation (model_memory.h)
  return LlamaModel(config, LlamaWeights::load_folder(dir, config, dtype, device), dtype, device,
                    limits);
}

LlamaModel::LlamaModel(const ModelConfig& config, LlamaWeights weights, DType dtype, Device device,
                       const RuntimeLimits& limits)
    : config_(config),
      dtype_(dtype),
      device_(device),
      limits_(limits),
      weights_(std::move(weights)) {
  config_.validate(config_.name);
  limits_.validate(config_);
  DAY18_REQUIRE(is_floating(dtype), "LlamaModel: dtype must be float32, float16 or bfloat16, got ",
                dtype_name(dtype));
  const Storage st = device == Device::cuda ? Storage::device : Storage::host;
  const Tensor& emb = weights_.embed_tokens.view();
  DAY18_REQUIRE(emb.dtype() == dtype && emb.device() == device &&
                    weights_.layers.size() == static_cast<size_t>(config_.num_layers),
                "LlamaModel: weights (", emb.describe(), ", ", weights_.layers.size(),
                " layers) do not match dtype ", dtype_name(dtype), ", device ", device_name(device),
                ", ", config_.num_layers, " layers");

  const ModelConfig& c = config_;
  const int64_t T = limits_.max_num_tokens, S = limits_.max_num_seqs;
  cos_sin_cache_ = make_cos_sin_cache(limits_.max_model_len, c.head_dim, c.rope_theta, dtype, st);

  const std::vector<int64_t> cache_shape = {c.num_layers, limits_.kv.num_blocks, c.num_kv_heads,
                                            limits_.kv.block_size, c.head_dim};
  key_cache_ = OwnedTensor(cache_shape, dtype, st);
  value_cache_ = OwnedTensor(cache_shape, dtype, st);
  // Never read before written (context_lens bounds every read), but zeros keep a stale-NaN bug in
  // a kernel from hiding behind garbage and make runs reproducible.
  zero(key_cache_);
  zero(value_cache_);

  residual_ = OwnedTensor({T, c.hidden_size}, dtype, st);
  hidden_ = OwnedTensor({T, c.hidden_size}, dtype, st);
  qkv_ = OwnedTensor({T, c.qkv_size()}, dtype, st);
  query_ = OwnedTensor({T, c.num_heads, c.head_dim}, dtype, st);
  attn_out_ = OwnedTensor({T, c.num_heads, c.head_dim}, dtype, st);
  gate_up_ = OwnedTensor({T, 2 * c.intermediate_size}, dtype, st);
  act_ = OwnedTensor({T, c.intermediate_size}, dtype, st);
  last_hidden_ = OwnedTensor({S, c.hidden_size}, dtype, st);
  last_residual_ = OwnedTensor({S, c.hidden_size}, dtype, st);
  if (dtype != DType::f32) logits_dtype_ = OwnedTensor({S, c.vocab_size}, dtype, st);
  logits_ = OwnedTensor({S, c.vocab_size}, DType::f32, st);
  // The CPU backend computes attention directly and never touches a workspace.
  if (device == Device::cuda)
    attn_workspace_ =
        OwnedTensor({static_cast<int64_t>(attention_workspace_bound(c, limits_))}, DType::u8, st);
  if (device == Device::cuda) DAY18_CUDA_CHECK(cudaDeviceSynchronize());
}

size_t LlamaModel::scratch_bytes() const {
  size_t b = 0;
  for (const OwnedTensor* t :
       {&cos_sin_cache_, &residual_, &hidden_, &qkv_, &query_, &attn_out_, &gate_up_, &act_,
        &last_hidden_, &last_residual_, &logits_dtype_, &logits_, &attn_workspace_})
    b += t->data() ? t->nbytes() : 0;  // a default OwnedTensor is an empty scalar view
  return b;
}

std::vector<Tensor> LlamaModel::key_caches() const {
  std::vector<Tensor> v;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const Tensor layer = key_cache_.view().slice0(l, l + 1);
    v.push_back(layer.view(
        {limits_.kv.num_blocks, config_.num_kv_heads, limits_.kv.block_size, config_.head_dim}));
  }
  return v;
}

std::vector<Tensor> LlamaModel::value_caches() const {
  std::vector<Tensor> v;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const Tensor layer = value_cache_.view().slice0(l, l + 1);
    v.push_back(layer.view(
        {limits_.kv.num_blocks, config_.num_kv_heads, limits_.kv.block_size, config_.head_dim}));
  }
  return v;
}

void LlamaModel::validate_batch(const ForwardBatch& b) const {
  const std::pair<const Tensor*, const char*> all[] = {
      {&b.token_ids, "batch.token_ids"},          {&b.positions, "batch.positions"},
      {&b.slot_mapping, "batch.slot_mapping"},    {&b.seq_idx, "batch.seq_idx"},
      {&b.context_lens, "batch.context_lens"},    {&b.block_tables, "batch.block_tables"},
      {&b.logits_indices, "batch.logits_indices"}};
  for (auto& [t, name] : all) {
    expect_defined(*t, name);
    expect_device(*t, name, device_);
    expect_contiguous(*t, name);
  }
  expect_dtype(b.token_ids, "batch.token_ids", DType::i32);
  expect_dtype(b.positions, "batch.positions", DType::i64);
  expect_dtype(b.slot_mapping, "batch.slot_mapping", DType::i64);
  expect_dtype(b.seq_idx, "batch.seq_idx", DType::i32);
  expect_dtype(b.context_lens, "batch.context_lens", DType::i32);
  expect_dtype(b.block_tables, "batch.block_tables", DType::i32);
  expect_dtype(b.logits_indices, "batch.logits_indices", DType::i32);
  expect_dim(b.token_ids, "batch.token_ids", 1);
  const int64_t T = b.token_ids.size(0);
  DAY18_REQUIRE(T >= 1 && T <= limits_.max_num_tokens, "batch: num_tokens = ", T,
                " outside [1, max_num_tokens = ", limits_.max_num_tokens, "]");
  expect_shape(b.positions, "batch.positions", {T});
  expect_shape(b.slot_mapping, "batch.slot_mapping", {T});
  expect_shape(b.seq_idx, "batch.seq_idx", {T});
  expect_shape(b.context_lens, "batch.context_lens", {T});
  expect_dim(b.block_tables, "batch.block_tables", 2);
  expect_dim(b.logits_indices, "batch.logits_indices", 1);
  const int64_t S = b.logits_indices.size(0);
  DAY18_REQUIRE(S >= 1 && S <= limits_.max_num_seqs, "batch: num_seqs = ", S,
                " (logits_indices) outside [1, max_num_seqs = ", limits_.max_num_seqs, "]");
  DAY18_REQUIRE(b.block_tables.size(0) <= limits_.max_num_seqs,
                "batch.block_tables: ", b.block_tables.size(0),
                " rows, more than max_num_seqs = ", limits_.max_num_seqs);
  DAY18_REQUIRE(b.max_context_len >= 0 && b.max_context_len <= limits_.max_model_len,
                "batch.max_context_len = ", b.max_context_len,
                " outside [0, max_model_len = ", limits_.max_model_len, "]");
  if (device_ == Device::cpu) {
    // Host tensors: the values are cheap to check (the CUDA path trusts its input batch).
    const int32_t* li = b.logits_indices.ptr<int32_t>();
    for (int64_t s = 0; s < S; ++s)
      DAY18_REQUIRE(li[s] >= 0 && li[s] < T, "batch.logits_indices[", s, "] = ", li[s],
                    " outside [0, num_tokens = ", T, ")");
    if (T == S)  // forward() skips the logits-row gather then (see the final norm)
      for (int64_t s = 0; s < S; ++s)
        DAY18_REQUIRE(li[s] == s, "batch.logits_indices[", s, "] = ", li[s],
                      ": with one token per sequence (num_tokens == num_seqs) it must be ", s);
    const int64_t* pos = b.positions.ptr<int64_t>();
    for (int64_t t = 0; t < T; ++t)
      DAY18_REQUIRE(pos[t] >= 0 && pos[t] < limits_.max_model_len, "batch.positions[", t,
                    "] = ", pos[t], " outside [0, max_model_len = ", limits_.max_model_len, ")");
  }
}

void LlamaModel::norm_linear(const Tensor& out, const Tensor& norm_weight, const Tensor& weight,
                             bool add_residual, Tensor& residual, bool fuse, int64_t T,
                             cudaStream_t stream) {
  const Tensor hidden = hidden_.view().slice0(0, T);
  const double eps = config_.rms_norm_eps;
  if (fuse) {
    // One decode token on CUDA: the norm runs inside the GEMV (rms_norm_linear). Its updated
    // residual stream cannot be written in place (every CTA still reads the old one), so it
    // moves between residual_ and last_residual_ (unused in a one-token step: T == S).
    DAY18_NVTX_RANGE("Norm+GEMV");
    const Tensor a = residual_.view().slice0(0, 1), b = last_residual_.view().slice0(0, 1);
    const Tensor next = residual.data() == a.data() ? b : a;
    rms_norm_linear(out, add_residual ? next : Tensor(), add_residual ? hidden : residual,
                    add_residual ? residual : Tensor(), norm_weight, eps, weight,
                    last_hidden_.view().slice0(0, 1), stream);
    if (add_residual) residual = next;
    return;
  }
  {
    DAY18_NVTX_RANGE("Norm");
    if (add_residual)
      fused_add_rms_norm(hidden, residual, norm_weight, eps, stream);
    else
      rms_norm(hidden, residual, norm_weight, eps, stream);
  }
  linear(out, hidden, weight, stream);
}

void LlamaModel::attention(int64_t l, const ForwardBatch& b, int64_t T, Tensor& residual, bool fuse,
                           cudaStream_t stream) {
  DAY18_NVTX_RANGE("Attention");
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[l];
  const Tensor hidden = hidden_.view().slice0(0, T);
  const Tensor qkv = qkv_.view().slice0(0, T);
  // input_layernorm (+ the residual add from the previous layer), then the QKV projection.
  norm_linear(qkv, w.input_layernorm, w.qkv_proj, /*add_residual=*/l > 0, residual, fuse, T,
              stream);

  const Tensor q = column_block(qkv, T, 0, c.num_heads, c.head_dim);
  const Tensor k = column_block(qkv, T, c.q_size(), c.num_kv_heads, c.head_dim);
  const Tensor v = column_block(qkv, T, c.q_size() + c.kv_size(), c.num_kv_heads, c.head_dim);
  const Tensor key_cache = key_cache_.view().slice0(l, l + 1).view(
      {limits_.kv.num_blocks, c.num_kv_heads, limits_.kv.block_size, c.head_dim});
  const Tensor value_cache = value_cache_.view().slice0(l, l + 1).view(
      {limits_.kv.num_blocks, c.num_kv_heads, limits_.kv.block_size, c.head_dim});
  // One launch: rotate q and k by position, pack rope(q) into the [T, H, D] query PagedAttention
  // reads (q is a strided view into qkv), write rope(k) and v into their slots of the paged cache.
  // (Unfused, this was rotary_embedding + reshape_and_cache + a strided copy of q: three nodes.)
  const Tensor query = query_.view().slice0(0, T);
  rotary_and_cache(query, q, k, v, key_cache, value_cache, b.slot_mapping, b.positions,
                   cos_sin_cache_, c.head_dim, /*is_neox=*/true, /*check_positions=*/false,
                   /*check_slots=*/false, stream);
  const Tensor attn = attn_out_.view().slice0(0, T);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  const int max_ctx = static_cast<int>(b.max_context_len);
  if (device_ == Device::cuda) {
    const PagedAttentionPlan plan =
        plan_paged_attention(T, c.num_heads, c.num_kv_heads, c.head_dim, max_ctx, attn_options_);
    DAY18_REQUIRE(plan.workspace_bytes <= attn_workspace_.nbytes(),
                  "LlamaModel: the PagedAttention plan needs ", plan.workspace_bytes,
                  " bytes of workspace, the model allocated ", attn_workspace_.nbytes(),
                  " (attention_options() forces a smaller partition than the bound assumes)");
  }
  // Segments of more than kPrefillMinQueryTokens tokens run the tensor-core prefill kernel, the
  // other tokens the decode kernel (ops/attention.h); a decode-only step launches what it did
  // without b.query_start_loc.
  paged_attention(attn, query, key_cache, value_cache, b.block_tables, b.seq_idx, b.context_lens,
                  scale, max_ctx, device_ == Device::cuda ? attn_workspace_.view() : Tensor(),
                  b.query_start_loc, attn_options_, stream);
  linear(hidden, attn.view({T, c.q_size()}), w.o_proj, stream);
}

void LlamaModel::mlp(int64_t l, int64_t T, Tensor& residual, bool fuse, cudaStream_t stream) {
  DAY18_NVTX_RANGE("MLP");
  const LayerWeights& w = weights_.layers[l];
  const Tensor hidden = hidden_.view().slice0(0, T);
  const Tensor gate_up = gate_up_.view().slice0(0, T);
  const Tensor act = act_.view().slice0(0, T);
  // post_attention_layernorm (+ the attention output into the residual), then gate_up.
  norm_linear(gate_up, w.post_attention_layernorm, w.gate_up_proj, /*add_residual=*/true, residual,
              fuse, T, stream);
  // SiLU-and-mul + down projection: one fused GEMV for one decode token on CUDA, else
  // silu_and_mul into `act` and a GEMM (or GEMV).
  linear_silu_mul(hidden, gate_up, w.down_proj, act, stream);
}

const Tensor& LlamaModel::forward(const ForwardBatch& b, cudaStream_t stream) {
  DAY18_NVTX_RANGE("ModelExecutor");
  validate_batch(b);
  const ModelConfig& c = config_;
  const int64_t T = b.num_tokens(), S = b.num_seqs();
  const Tensor hidden = hidden_.view().slice0(0, T);
  Tensor residual = residual_.view().slice0(0, T);  // may move to last_residual_ (norm_linear)
  const bool check = false;  // hot path: no host sync for index checks (CPU checks anyway)
  // One decode token on CUDA: every norm runs inside the GEMV after it (see norm_linear).
  const LayerWeights& w0 = weights_.layers[0];
  const bool fuse =
      T == 1 && S == 1 &&
      rms_norm_linear_is_fused(qkv_.view().slice0(0, 1), last_residual_.view().slice0(0, 1), hidden,
                               residual, w0.input_layernorm, w0.qkv_proj) &&
      rms_norm_linear_is_fused(gate_up_.view().slice0(0, 1), last_residual_.view().slice0(0, 1),
                               hidden, residual, w0.post_attention_layernorm, w0.gate_up_proj);

  embedding(residual, b.token_ids, weights_.embed_tokens, check, stream);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    attention(l, b, T, residual, fuse, stream);
    mlp(l, T, residual, fuse, stream);
  }

  {
    DAY18_NVTX_RANGE("Norm");
    // Only the rows that produce logits go through the final norm and the LM head (a prefill of
    // 500 tokens needs one row). embedding() is a row gather: out[s] = table[indices[s]]. A
    // decode step (one token per sequence, T == S) needs no gather: logits_indices is then the
    // identity, and the norm runs in place (two launches fewer per step).
    logits_view_ = logits_.view().slice0(0, S);
    const Tensor lm_out = dtype_ == DType::f32 ? logits_view_ : logits_dtype_.view().slice0(0, S);
    if (fuse) {  // one decode token: the final norm inside the LM head's GEMV
      norm_linear(lm_out, weights_.norm, weights_.lm_head_weight(), /*add_residual=*/true, residual,
                  fuse, T, stream);
    } else {
      Tensor last_hidden = hidden;
      if (T != S) {
        last_hidden = last_hidden_.view().slice0(0, S);
        const Tensor last_residual = last_residual_.view().slice0(0, S);
        embedding(last_hidden, b.logits_indices, hidden, check, stream);
        embedding(last_residual, b.logits_indices, residual, check, stream);
        fused_add_rms_norm(last_hidden, last_residual, weights_.norm, c.rms_norm_eps, stream);
      } else {
        fused_add_rms_norm(hidden, residual, weights_.norm, c.rms_norm_eps, stream);
      }
      linear(lm_out, last_hidden, weights_.lm_head_weight(), stream);
    }
    if (dtype_ != DType::f32) cast_to_float(logits_view_, lm_out, stream);
  }
  return logits_view_;
}

}  // namespace day18
