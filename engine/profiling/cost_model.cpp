#include "engine/profiling/cost_model.h"

#include <algorithm>
#include <cctype>

#include "engine/ops/attention.h"
#include "engine/ops/linear.h"

namespace day18 {
namespace cost {
namespace {
double d(int64_t v) {
  return static_cast<double>(v);
}
double esz(DType dt) {
  return static_cast<double>(dtype_size(dt));
}
}  // namespace

OpCost linear(int64_t M, int64_t N, int64_t K, DType dt) {
  return {(d(M) * d(K) + d(N) * d(K) + d(M) * d(N)) * esz(dt), 2.0 * d(M) * d(N) * d(K)};
}

OpCost rms_norm(int64_t tokens, int64_t hidden, DType dt) {
  return {(2.0 * d(tokens) * d(hidden) + d(hidden)) * esz(dt), 4.0 * d(tokens) * d(hidden)};
}

OpCost fused_add_rms_norm(int64_t tokens, int64_t hidden, DType dt) {
  return {(4.0 * d(tokens) * d(hidden) + d(hidden)) * esz(dt), 5.0 * d(tokens) * d(hidden)};
}

OpCost rms_norm_linear(int64_t M, int64_t N, int64_t K, DType dt) {
  OpCost c = linear(M, N, K, dt);
  c.bytes += (2.0 * d(M) * d(K) + d(K)) * esz(dt);
  c.flops += 5.0 * d(M) * d(K);
  return c;
}

OpCost silu_and_mul(int64_t tokens, int64_t dd, DType dt) {
  return {3.0 * d(tokens) * d(dd) * esz(dt), 4.0 * d(tokens) * d(dd)};
}

OpCost linear_silu_mul(int64_t M, int64_t N, int64_t K, DType dt) {
  return {(2.0 * d(M) * d(K) + d(N) * d(K) + d(M) * d(N)) * esz(dt),
          2.0 * d(M) * d(N) * d(K) + 4.0 * d(M) * d(K)};
}

OpCost rotary_and_cache(int64_t tokens, int64_t num_heads, int64_t num_kv_heads, int64_t head_size,
                        DType dt) {
  const double T = d(tokens), q = d(num_heads) * d(head_size), kv = d(num_kv_heads) * d(head_size);
  const double bytes = (2.0 * T * q + 4.0 * T * kv + T * d(head_size)) * esz(dt) + 2.0 * 8.0 * T;
  return {bytes, 3.0 * (d(num_heads) + d(num_kv_heads)) * d(head_size) * T};
}

OpCost paged_attention(int64_t tokens, int64_t num_heads, int64_t num_kv_heads, int64_t head_size,
                       int64_t kv_rows, DType dt) {
  const double row = d(num_kv_heads) * d(head_size) * esz(dt);
  const double q_bytes = d(tokens) * d(num_heads) * d(head_size) * esz(dt);
  // Every query head attends over its sequence's context: tokens x context = kv_rows per head.
  return {2.0 * d(kv_rows) * row + 2.0 * q_bytes, 4.0 * d(num_heads) * d(kv_rows) * d(head_size)};
}

OpCost paged_attention_v2_reduce(int64_t tokens, int64_t num_heads, int64_t head_size,
                                 int64_t partitions, DType dt) {
  const double th = d(tokens) * d(num_heads);
  return {th * d(partitions) * (d(head_size) + 2.0) * 4.0 + th * d(head_size) * esz(dt),
          2.0 * th * d(partitions) * d(head_size)};
}

OpCost embedding(int64_t tokens, int64_t hidden, DType dt) {
  return {4.0 * d(tokens) + 2.0 * d(tokens) * d(hidden) * esz(dt), 0};
}

OpCost cast_to_float(int64_t n, DType dt) {
  return {d(n) * (esz(dt) + 4.0), 0};
}

OpCost sampling(int64_t rows, int64_t vocab) {
  // The logits once (fp32) plus per row: temperature, top-k, top-p, seed, offset, token.
  return {d(rows) * d(vocab) * 4.0 + d(rows) * (4 + 4 + 4 + 8 + 8 + 4), 4.0 * d(rows) * d(vocab)};
}

}  // namespace cost

std::string kernel_family(const std::string& n) {
  // The engine's kernels, by the name of their __global__ function (order matters: the longer
  // name first).
  static const std::pair<const char*, const char*> kOurs[] = {
      {"fused_add_rms_norm_kernel", "fused_add_rms_norm"},
      {"rms_norm_kernel", "rms_norm"},
      {"rotary_and_cache_kernel", "rotary_and_cache"},
      {"rotary_kernel", "rotary_embedding"},
      {"reshape_and_cache_kernel", "reshape_and_cache"},
      {"paged_attention_v2_reduce_kernel", "paged_attention_v2_reduce"},
      {"prefill_attention_kernel", "prefill_attention"},
      {"paged_attention_readable_kernel", "paged_attention"},
      {"paged_attention_mma_kernel", "paged_attention"},
      {"paged_attention_kernel", "paged_attention"},
      {"gemv_kernel", "gemv"},
      {"silu_and_mul_kernel", "silu_and_mul"},
      {"embedding_kernel", "embedding"},
      {"cast_to_float_kernel", "cast_to_float"},
      {"sampling_kernel", "sampling"},
      {"softmax_kernel", "sampling"},
      {"argmax_kernel", "sampling"},
      {"feed_sampled_tokens_kernel", "feed_tokens"},
      {"copy_blocks_kernel", "copy_blocks"},
      {"swap_blocks_kernel", "swap_blocks"},
  };
  for (const auto& [k, f] : kOurs)
    if (n.find(k) != std::string::npos) return f;
  // cuBLAS / cuBLASLt / CUTLASS GEMM kernels: sm90_xmma_gemm_..., nvjet_sm90_..., cutlass_...,
  // gemv2T_kernel, gemmSN_TN_kernel, ...
  std::string low = n;
  std::transform(low.begin(), low.end(), low.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  // cuBLAS's split-K reduce sums the partial products of the GEMM launched just before it: it is
  // part of that GEMM, not a planned launch of its own.
  if (low.find("splitkreduce") != std::string::npos) return "linear_reduce";
  // nvjet_sm90_*: cuBLAS 12.x/13.x's own GEMM kernels on Hopper.
  for (const char* k : {"gemm", "gemv", "xmma", "cutlass", "nvjet", "cublas"})
    if (low.find(k) != std::string::npos) return "linear";
  return "other";
}

std::vector<PlannedLaunch> decode_step_launches(const ModelConfig& c, const DecodeShape& s) {
  c.validate(c.name);
  DAY18_REQUIRE(s.num_seqs >= 1, "decode shape: num_seqs (--batch) must be >= 1, got ", s.num_seqs);
  DAY18_REQUIRE(s.context_len >= 1 && s.context_len <= c.max_position,
                "decode shape: context_len (--context) must be in [1, ", c.max_position, "] for ",
                c.name, ", got ", s.context_len);
  DAY18_REQUIRE(is_floating(s.dtype), "decode shape: dtype must be f32, f16 or bf16, got ",
                dtype_name(s.dtype));
  const DType dt = s.dtype;
  const int64_t T = s.num_seqs, H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  // One token on CUDA: every norm inside the GEMV after it, SiLU-and-mul inside the down GEMV.
  const bool one = T <= kLinearAutoGemvMaxM;
  const std::string lin = one ? "gemv" : "linear";
  std::vector<PlannedLaunch> p;
  auto add = [&](std::string op, std::string family, std::string what, OpCost cost) {
    p.push_back({std::move(op), std::move(family), std::move(what), cost});
  };
  add("embedding", "embedding", "embed_tokens", cost::embedding(T, H, dt));
  const PagedAttentionPlan plan = plan_paged_attention(T, c.num_heads, c.num_kv_heads, c.head_dim,
                                                       static_cast<int>(s.context_len));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string L = "layer " + std::to_string(l) + " ";
    if (one) {
      add("rms_norm_linear", "gemv", L + "input_layernorm + qkv_proj",
          cost::rms_norm_linear(T, c.qkv_size(), H, dt));
    } else {
      if (l == 0)
        add("rms_norm", "rms_norm", L + "input_layernorm", cost::rms_norm(T, H, dt));
      else
        add("fused_add_rms_norm", "fused_add_rms_norm", L + "input_layernorm",
            cost::fused_add_rms_norm(T, H, dt));
      add("linear", lin, L + "qkv_proj", cost::linear(T, c.qkv_size(), H, dt));
    }
    add("rotary_and_cache", "rotary_and_cache", L + "rope + KV-cache write",
        cost::rotary_and_cache(T, c.num_heads, c.num_kv_heads, c.head_dim, dt));
    add("paged_attention", "paged_attention",
        L + "attention (" + std::string(paged_attention_version_name(plan.version)) + ")",
        cost::paged_attention(T, c.num_heads, c.num_kv_heads, c.head_dim, T * s.context_len, dt));
    if (plan.version == PagedAttentionVersion::v2 ||
        (plan.version == PagedAttentionVersion::mma && plan.max_num_partitions > 1))
      add("paged_attention_v2_reduce", "paged_attention_v2_reduce", L + "attention v2 reduce",
          cost::paged_attention_v2_reduce(T, c.num_heads, c.head_dim, plan.max_num_partitions, dt));
    add("linear", lin, L + "o_proj", cost::linear(T, H, c.q_size(), dt));
    if (one) {
      add("rms_norm_linear", "gemv", L + "post_attention_layernorm + gate_up_proj",
          cost::rms_norm_linear(T, 2 * I, H, dt));
      add("linear_silu_mul", "gemv", L + "silu_and_mul + down_proj",
          cost::linear_silu_mul(T, H, I, dt));
    } else {
      add("fused_add_rms_norm", "fused_add_rms_norm", L + "post_attention_layernorm",
          cost::fused_add_rms_norm(T, H, dt));
      add("linear", lin, L + "gate_up_proj", cost::linear(T, 2 * I, H, dt));
      add("silu_and_mul", "silu_and_mul", L + "silu_and_mul", cost::silu_and_mul(T, I, dt));
      add("linear", lin, L + "down_proj", cost::linear(T, H, I, dt));
    }
  }
  if (one) {
    add("rms_norm_linear", "gemv", "final norm + lm_head", cost::rms_norm_linear(T, V, H, dt));
  } else {
    add("fused_add_rms_norm", "fused_add_rms_norm", "final norm",
        cost::fused_add_rms_norm(T, H, dt));
    add("linear", lin, "lm_head", cost::linear(T, V, H, dt));
  }
  if (dt != DType::f32)
    add("cast_to_float", "cast_to_float", "logits to fp32", cost::cast_to_float(T * V, dt));
  add("sample", "sampling", "sampling", cost::sampling(T, V));
  return p;
}

std::vector<int> match_plan(const std::vector<std::string>& names,
                            const std::vector<PlannedLaunch>& plan) {
  std::vector<int> out(names.size(), -1);
  if (plan.empty() || names.empty()) return out;
  // An alignment of the kernels' families with the plan repeated (a profile may hold several
  // steps, or start inside one), in order, like a longest common subsequence that also pays for
  // the planned launches it skips: extra kernels (cuBLAS's own) are free, a missing launch costs.
  std::vector<std::string> fam;
  for (const auto& n : names) fam.push_back(kernel_family(n));
  const size_t N = names.size(), M = plan.size(), L = M * (N / M + 2);
  if (static_cast<double>(N + 1) * static_cast<double>(L + 1) > 6e7) {
    // Too long a profile for the table: greedy, in order, a few launches ahead.
    size_t pos = 0;
    for (size_t k = 0; k < N; ++k)
      for (size_t step = 0; step < 4 && fam[k] != "other"; ++step) {
        const size_t j = (pos + step) % M;
        if (plan[j].family == fam[k]) {
          out[k] = static_cast<int>(j);
          pos = (j + 1) % M;
          break;
        }
      }
    return out;
  }
  // Score: +2 per matched kernel, -1 per planned launch skipped between two matches (a missing
  // launch, or a kernel matched a step too late); skipping before the first match and after the
  // last is free, and so is an extra kernel.
  constexpr int32_t kMatch = 2, kSkipPlan = 1;
  std::vector<int32_t> dp((N + 1) * (L + 1), 0);  // dp[i][j]: best score of kernels i.., plan j..
  auto at = [&](size_t i, size_t j) -> int32_t& { return dp[i * (L + 1) + j]; };
  for (size_t i = N; i-- > 0;)
    for (size_t j = L; j-- > 0;) {
      int32_t best = at(i + 1, j);                                      // extra kernel
      if (j + 1 <= L) best = std::max(best, at(i, j + 1) - kSkipPlan);  // missing launch
      if (fam[i] == plan[j % M].family) best = std::max(best, kMatch + at(i + 1, j + 1));
      at(i, j) = best;
    }
  size_t j = 0;
  for (size_t j0 = 1; j0 < M; ++j0)  // the profile may start inside a step: a free start
    if (at(0, j0) > at(0, j)) j = j0;
  for (size_t i = 0; i < N && j < L;) {
    if (at(i, j) == 0) break;  // nothing more to match: the rest is free
    if (fam[i] == plan[j % M].family && at(i, j) == kMatch + at(i + 1, j + 1)) {
      out[i] = static_cast<int>(j % M);
      ++i;
      ++j;
    } else if (at(i, j) == at(i + 1, j)) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

}  // namespace day18
