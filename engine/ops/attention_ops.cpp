// Registry entry of the attention family: paged_attention (decode, per-token prefill, and the
// tensor-core prefill kernel for runs of tokens of one sequence).
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <numeric>

#include "engine/kernels/paged_attention.h"
#include "engine/ops/attention.h"
#include "engine/ops/registry.h"
#include "engine/profiling/cost_model.h"

namespace day18 {
namespace {

// The registry path allocates the v2 workspace once per device and keeps it (grown on demand,
// never freed: a cudaFree in a static destructor can run after the CUDA runtime is gone), so
// timing `run` in the tour does not time cudaMalloc. A new one is poisoned (NaN floats) and the
// memset finished before any stream uses it: a partition the reduce reads that no kernel wrote
// shows up as NaN in the output instead of as old bytes.
Tensor cached_device_workspace(size_t bytes) {
  static std::mutex mu;
  static Buffer* buf = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (!buf || buf->size() < bytes) {
    delete buf;  // cudaFree synchronizes the device: no launch still uses the old buffer
    buf = new Buffer(std::max<size_t>(bytes, 1), Storage::device);
    DAY18_CUDA_CHECK(cudaMemset(buf->data(), 0xFF, buf->size()));
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  }
  return Tensor(buf->data(), DType::u8, {static_cast<int64_t>(buf->size())}, Device::cuda);
}

int max_context_len_of(const Tensor& context_lens, const Attrs& attrs) {
  const std::string a = attrs.str_or("max_context_len", "auto");
  if (a != "auto") return attrs.int32("max_context_len");
  OwnedTensor host(context_lens.sizes(), context_lens.dtype(), Storage::host);
  copy_tensor(host.view(), context_lens);
  const int32_t* c = host.ptr<int32_t>();
  return context_lens.numel() ? std::max(0, *std::max_element(c, c + context_lens.numel())) : 0;
}

PagedAttentionOptions options_of(const Attrs& attrs) {
  PagedAttentionOptions o;
  o.version = parse_paged_attention_version(attrs.str_or("version", "auto"));
  const std::string ps = attrs.str_or("partition_size", "auto");
  o.partition_size = ps == "auto" ? 0 : attrs.int32("partition_size");
  o.num_threads = attrs.int32_or("num_threads", 128);
  return o;
}

// query_start_loc = auto: the boundaries of the runs of consecutive tokens with one seq_idx
// (seq_idx read to the host: a sync), so that runs of more than kPrefillMinQueryTokens take the
// tensor-core prefill kernel; none: no segments, every token through the decode kernels.
std::vector<int32_t> query_start_loc_of(const Tensor& seq_idx, const Attrs& attrs) {
  const std::string a = attrs.str_or("query_start_loc", "auto");
  DAY18_REQUIRE(a == "auto" || a == "none", "query_start_loc: expected auto or none, got '", a,
                "'");
  std::vector<int32_t> qsl;
  if (a == "none" || seq_idx.dtype() != DType::i32 || seq_idx.dim() != 1 ||
      seq_idx.numel() <= kPrefillMinQueryTokens)  // too few tokens for any prefill segment
    return qsl;
  OwnedTensor host(seq_idx.sizes(), DType::i32, Storage::host);
  copy_tensor(host.view(), seq_idx);
  const int32_t* si = host.ptr<int32_t>();
  qsl.push_back(0);
  for (int64_t t = 1; t < seq_idx.numel(); ++t)
    if (si[t] != si[t - 1]) qsl.push_back(static_cast<int32_t>(t));
  qsl.push_back(static_cast<int32_t>(seq_idx.numel()));
  return qsl;
}

void run_paged_attention(OpContext& ctx) {
  const Tensor& query = ctx.io.get("query");
  const Tensor& key_cache = ctx.io.get("key_cache");
  const Tensor& context_lens = ctx.io.get("context_lens");
  const int max_ctx = max_context_len_of(context_lens, ctx.attrs);
  const PagedAttentionOptions o = options_of(ctx.attrs);
  const Tensor& out = ctx.output("out", query.sizes(), query.dtype());
  Tensor workspace;
  if (ctx.device() == Device::cuda && query.dim() == 3 && key_cache.dim() == 4) {
    const PagedAttentionPlan plan = plan_paged_attention(
        query.size(0), query.size(1), key_cache.size(1), query.size(2), max_ctx, o);
    if (plan.workspace_bytes) workspace = cached_device_workspace(plan.workspace_bytes);
  }
  const Tensor& seq_idx = ctx.io.get("seq_idx");
  const std::vector<int32_t> qsl = query_start_loc_of(seq_idx, ctx.attrs);
  paged_attention(out, query, key_cache, ctx.io.get("value_cache"), ctx.io.get("block_tables"),
                  seq_idx, context_lens, ctx.attrs.real("scale"), max_ctx, workspace, qsl, o,
                  ctx.stream);
}

// Tour case: B = 16 decoding sequences of 1000..2000 tokens, Llama-3-8B-like heads (32 query,
// 8 KV, head_size 128), 16-token KV blocks scattered at random over the cache.
void make_paged_attention_case(Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
  const int64_t B = 16, H = 32, KVH = 8, D = 128, BS = 16;
  std::vector<int32_t> lens(B);
  for (auto& l : lens) l = static_cast<int32_t>(rng.randint(1000, 2000));
  const int64_t max_blocks = (2000 + BS - 1) / BS;
  int64_t used = 0;
  for (int32_t l : lens) used += (l + BS - 1) / BS;
  const int64_t num_blocks = used + 8;  // a few blocks nobody uses
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = num_blocks - 1; i > 0; --i) std::swap(perm[i], perm[rng.randint(0, i)]);

  const Tensor& bt = io.emplace("block_tables", {B, max_blocks}, DType::i32);
  const Tensor& si = io.emplace("seq_idx", {B}, DType::i32);
  const Tensor& cl = io.emplace("context_lens", {B}, DType::i32);
  int64_t next = 0;
  for (int64_t b = 0; b < B; ++b) {
    si.ptr<int32_t>()[b] = static_cast<int32_t>(b);
    cl.ptr<int32_t>()[b] = lens[b];
    for (int64_t j = 0; j < max_blocks; ++j)
      bt.ptr<int32_t>()[b * max_blocks + j] =
          j < (lens[b] + BS - 1) / BS ? perm[next++]
                                      : static_cast<int32_t>(rng.randint(0, num_blocks - 1));
  }
  io.put_owned("query", rng.normal_tensor({B, H, D}, dt, 0, 1));
  io.put_owned("key_cache", rng.normal_tensor({num_blocks, KVH, BS, D}, dt, 0, 1));
  io.put_owned("value_cache", rng.normal_tensor({num_blocks, KVH, BS, D}, dt, 0, 1));
  attrs.set("scale", 1.0 / std::sqrt(static_cast<double>(D)));
  attrs.set("max_context_len", static_cast<int64_t>(2000));
  attrs.set("query_start_loc", std::string("none"));  // decode: no host read in the timed run
}

// K/V bytes the attention must read (each sequence's rows once, up to the longest context of
// its tokens, for every KV head) + query + out.
double paged_attention_bytes(const TensorStore& io, const Attrs&) {
  const Tensor& q = io.get("query");
  const Tensor& kc = io.get("key_cache");
  const Tensor& si = io.get("seq_idx");
  const Tensor& cl = io.get("context_lens");
  std::vector<int64_t> longest(io.get("block_tables").size(0), 0);
  for (int64_t i = 0; i < cl.numel(); ++i) {
    const int32_t s = si.ptr<int32_t>()[i];
    if (s >= 0 && s < static_cast<int32_t>(longest.size()))
      longest[s] = std::max<int64_t>(longest[s], cl.ptr<int32_t>()[i]);
  }
  int64_t kv_rows = 0;
  for (int64_t l : longest) kv_rows += l;
  return cost::paged_attention(q.size(0), q.size(1), kc.size(1), kc.size(3), kv_rows, q.dtype())
      .bytes;
}

// q.k and p.v for every query token over its own context (cost::paged_attention with the
// attended rows = the sum of context_lens).
double paged_attention_flops(const TensorStore& io, const Attrs&) {
  const Tensor& q = io.get("query");
  const Tensor& kc = io.get("key_cache");
  const Tensor& cl = io.get("context_lens");
  int64_t attended = 0;
  for (int64_t i = 0; i < cl.numel(); ++i) attended += std::max<int32_t>(cl.ptr<int32_t>()[i], 0);
  return cost::paged_attention(q.size(0), q.size(1), kc.size(1), kc.size(3), attended, q.dtype())
      .flops;
}

}  // namespace

void register_attention_ops(OpRegistry& r) {
  OpDef op;
  op.name = "paged_attention";
  op.family = "attention";
  op.summary =
      "out = softmax(scale * q K^T) V over a paged KV cache; per-token seq_idx/context_lens "
      "(decode and causal prefill), GQA; v1, split-K v2 or the readable v1 per token, and the "
      "tensor-core prefill kernel for runs of more than 8 tokens of one sequence (f16/bf16)";
  op.inputs = {
      {"query", "[num_tokens, num_heads, head_size] f32/f16/bf16; head_size " +
                    cuda::paged_attention_head_sizes_text()},
      {"key_cache", "[num_blocks, num_kv_heads, block_size, head_size] same dtype"},
      {"value_cache", "[num_blocks, num_kv_heads, block_size, head_size] same dtype"},
      {"block_tables", "[num_seqs, max_blocks_per_seq] i32"},
      {"seq_idx", "[num_tokens] i32 (row of block_tables)"},
      {"context_lens", "[num_tokens] i32 (keys attended, 0 = padding)"},
  };
  op.outputs = {{"out", "[num_tokens, num_heads, head_size] same dtype as query"}};
  op.attrs = {
      {"scale", "softmax scale, usually 1/sqrt(head_size)", ""},
      {"version",
       "auto, mma, fma, v1, v2 or readable (auto: see plan_paged_attention, the tensor-core "
       "kernel mma; fma: v1 or v2 by their rule; readable: vLLM's v1 as the course draws it, a "
       "block per (token, head))",
       "auto"},
      {"partition_size", "v2/mma tokens per partition (multiple of block_size) or auto", "auto"},
      {"num_threads", "v1 threads per block: 128 (64/256/512 for fp16 head_size 128)", "128"},
      {"max_context_len", "upper bound of context_lens, or auto (read context_lens)", "auto"},
      {"query_start_loc",
       "auto (runs of consecutive tokens with one seq_idx are segments: more than 8 tokens take "
       "the prefill kernel unless a version is forced) or none (every token per token)",
       "auto"},
  };
  op.run = run_paged_attention;
  op.make_case = make_paged_attention_case;
  op.bytes_moved = paged_attention_bytes;
  op.flops = paged_attention_flops;
  op.tour_dtypes = {DType::f16, DType::bf16, DType::f32};
  op.tolerance_scale = 1.0;
  r.add(std::move(op));
}

}  // namespace day18
