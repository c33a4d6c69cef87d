#include "engine/ops/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/core/device.h"
#include "engine/core/memory.h"
#include "engine/cpu/paged_attention.h"
#include "engine/kernels/paged_attention.h"
#include "engine/kernels/paged_attention_mma.h"
#include "engine/kernels/paged_attention_readable.h"
#include "engine/kernels/prefill_attention.h"

namespace day18 {
namespace {

constexpr size_t kWorkspaceAlign = 256;

std::atomic<PagedAttentionVersion> g_default_version{PagedAttentionVersion::automatic};
constexpr int kMinAutoPartition = 64;
// Auto partitions shrink until the v2 grid has this many blocks per SM.
constexpr int kAutoBlocksPerSm = 4;
// mma: a grid of this many waves or more keeps the longest partition.
constexpr int kAutoWaves = 4;

size_t align_up(size_t x) {
  return (x + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

bool supported_head_size(int64_t h) {
  for (int s : cuda::kPagedAttentionHeadSizes)
    if (s == h) return true;
  return false;
}
bool supported_block_size(int64_t b) {
  for (int s : cuda::kPagedAttentionBlockSizes)
    if (s == b) return true;
  return false;
}

// The current GPU's limits, or a nominal H100's without one (plans are made on any machine).
int sms() {
  return device_limits_or_nominal().sm_count;
}
size_t smem_limit() {
  return device_limits_or_nominal().max_dynamic_shared_bytes();
}
// Shared memory of one SM: the per-block opt-in limit plus the 1 KB the SM reserves per block
// (sm_90: 227 + 1 = 228 KB; sm_80: 163 + 1 = 164 KB).
size_t smem_per_sm() {
  return device_limits_or_nominal().shared_bytes_per_block_optin + 1024;
}

struct Dims {
  int64_t num_tokens, num_heads, head_size, num_blocks, num_kv_heads, block_size, num_seqs,
      max_blocks_per_seq;
};

// Everything common to v1, v2 and the auto call. Returns the dimensions.
Dims check_common(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                  const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                  const Tensor& context_lens, double scale, int max_context_len) {
  const std::pair<const Tensor*, const char*> all[] = {{&out, "out"},
                                                       {&query, "query"},
                                                       {&key_cache, "key_cache"},
                                                       {&value_cache, "value_cache"},
                                                       {&block_tables, "block_tables"},
                                                       {&seq_idx, "seq_idx"},
                                                       {&context_lens, "context_lens"}};
  for (auto& [t, name] : all) {
    expect_defined(*t, name);
    expect_device(*t, name, query.device());
    expect_contiguous(*t, name);
  }
  expect_dtype_in(query, "query", {DType::f32, DType::f16, DType::bf16});
  expect_same_dtype(out, "out", query, "query");
  expect_same_dtype(key_cache, "key_cache", query, "query");
  expect_same_dtype(value_cache, "value_cache", query, "query");
  expect_dtype(block_tables, "block_tables", DType::i32);
  expect_dtype(seq_idx, "seq_idx", DType::i32);
  expect_dtype(context_lens, "context_lens", DType::i32);

  expect_dim(query, "query", 3);
  Dims d{};
  d.num_tokens = query.size(0);
  d.num_heads = query.size(1);
  d.head_size = query.size(2);
  DAY18_REQUIRE(supported_head_size(d.head_size), "query: head_size ", d.head_size,
                " not supported (supported head_size: ", cuda::paged_attention_head_sizes_text(),
                ")");
  expect_shape(out, "out", {d.num_tokens, d.num_heads, d.head_size});
  expect_dim(key_cache, "key_cache", 4);
  d.num_blocks = key_cache.size(0);
  d.num_kv_heads = key_cache.size(1);
  d.block_size = key_cache.size(2);
  expect_shape(key_cache, "key_cache", {kAnyDim, kAnyDim, kAnyDim, d.head_size});
  expect_shape(value_cache, "value_cache",
               {d.num_blocks, d.num_kv_heads, d.block_size, d.head_size});
  DAY18_REQUIRE(supported_block_size(d.block_size), "key_cache: block_size ", d.block_size,
                " not supported (supported block_size: 8, 16, 32)");
  DAY18_REQUIRE(
      d.num_kv_heads > 0 && d.num_heads > 0 && d.num_heads % d.num_kv_heads == 0,
      "num_heads (query dim 1) = ", d.num_heads,
      " must be a positive multiple of num_kv_heads (key_cache dim 1) = ", d.num_kv_heads);
  expect_dim(block_tables, "block_tables", 2);
  d.num_seqs = block_tables.size(0);
  d.max_blocks_per_seq = block_tables.size(1);
  expect_shape(seq_idx, "seq_idx", {d.num_tokens});
  expect_shape(context_lens, "context_lens", {d.num_tokens});
  DAY18_REQUIRE(std::isfinite(scale), "scale must be finite, got ", scale);
  const int64_t capacity = d.max_blocks_per_seq * d.block_size;
  DAY18_REQUIRE(max_context_len >= 0 && max_context_len <= capacity, "max_context_len ",
                max_context_len,
                " must be in [0, max_blocks_per_seq * block_size = ", d.max_blocks_per_seq, " * ",
                d.block_size, " = ", capacity, "]");

  if (query.is_cuda()) {
    // The kernels load query, out and the caches in 16-byte vectors and the int32 metadata one
    // element at a time (so a token range of seq_idx / context_lens, as the varlen call passes
    // to the decode kernel, may start at any element).
    for (auto& [t, name] : all) {
      const size_t align = t->dtype() == DType::i32 ? 4 : 16;
      DAY18_REQUIRE(reinterpret_cast<uintptr_t>(t->data()) % align == 0, name, ": data must be ",
                    align, "-byte aligned", align == 16 ? " for the vector loads" : "", " (",
                    t->describe(), ")");
    }
  } else {
    // Host tensors: the metadata values are cheap to check.
    const int32_t* si = seq_idx.ptr<int32_t>();
    const int32_t* cl = context_lens.ptr<int32_t>();
    const int32_t* bt = block_tables.ptr<int32_t>();
    for (int64_t i = 0; i < d.num_tokens; ++i) {
      DAY18_REQUIRE(si[i] >= 0 && si[i] < d.num_seqs, "seq_idx[", i, "] = ", si[i],
                    " out of range [0, num_seqs = ", d.num_seqs, ")");
      DAY18_REQUIRE(cl[i] >= 0, "context_lens[", i, "] = ", cl[i],
                    " is negative (0 marks a padding token)");
      DAY18_REQUIRE(cl[i] <= capacity, "context_lens[", i, "] = ", cl[i],
                    " exceeds max_blocks_per_seq * block_size = ", capacity);
      DAY18_REQUIRE(cl[i] <= max_context_len, "context_lens[", i, "] = ", cl[i],
                    " exceeds max_context_len = ", max_context_len);
      const int64_t used = (cl[i] + d.block_size - 1) / d.block_size;
      for (int64_t b = 0; b < used; ++b) {
        const int32_t pb = bt[si[i] * d.max_blocks_per_seq + b];
        DAY18_REQUIRE(pb >= 0 && pb < d.num_blocks, "block_tables[", si[i], "][", b, "] = ", pb,
                      " out of range [0, num_blocks = ", d.num_blocks, ")");
      }
    }
  }
  return d;
}

void check_v1_fits(const Dims& d, int max_context_len, int num_threads, DType dtype, bool cuda) {
  DAY18_REQUIRE(
      cuda::paged_attention_v1_has_threads(dtype, static_cast<int>(d.head_size), num_threads),
      "num_threads ", num_threads, " not available for ", dtype_name(dtype), " head_size ",
      d.head_size, " (128 always; 64/256/512 only for float16 with head_size 128)");
  if (!cuda) return;  // the CPU backend has no shared-memory limit
  const int hpb = cuda::paged_attention_heads_per_block(static_cast<int>(d.num_heads),
                                                        static_cast<int>(d.num_kv_heads),
                                                        d.num_tokens, max_context_len, sms());
  const size_t need = cuda::paged_attention_shared_bytes(hpb, static_cast<int>(d.head_size),
                                                         num_threads, max_context_len);
  DAY18_REQUIRE(need <= smem_limit(), "paged_attention_v1: max_context_len ", max_context_len,
                " needs ", need, " bytes of shared memory for the logits (limit ", smem_limit(),
                "); use paged_attention_v2 (version v2 or auto)");
}

void check_partitions(const Dims& d, int partition_size) {
  DAY18_REQUIRE(partition_size > 0 && partition_size % d.block_size == 0, "partition_size ",
                partition_size, " must be a positive multiple of block_size ", d.block_size);
}

int64_t parts_of(int max_context_len, int partition_size) {
  return std::max<int64_t>(1, (max_context_len + partition_size - 1) / partition_size);
}

// The split over partition_size-token partitions of a plan: the partition count, and the fp32
// workspace of v2 and mma (exp_sums, max_logits, tmp_out packed, each 256-byte aligned) when
// `with_workspace`.
void set_partitions(PagedAttentionPlan& p, int64_t num_tokens, int64_t num_heads,
                    int64_t head_size, int max_context_len, int partition_size,
                    bool with_workspace) {
  p.partition_size = partition_size;
  p.max_num_partitions = static_cast<int>(parts_of(max_context_len, partition_size));
  if (!with_workspace) return;
  p.exp_sums_shape = {num_tokens, num_heads, p.max_num_partitions};
  p.max_logits_shape = p.exp_sums_shape;
  p.tmp_out_shape = {num_tokens, num_heads, p.max_num_partitions, head_size};
  const size_t stats = static_cast<size_t>(num_tokens * num_heads * p.max_num_partitions) * 4;
  p.workspace_bytes = 2 * align_up(stats) + align_up(stats * head_size);
}


// The fp32 workspace of a split over `parts` partitions (v2, mma).
void check_split_workspace(const Dims& d, const Tensor& query, const Tensor& exp_sums,
                           const Tensor& max_logits, const Tensor& tmp_out, int64_t parts) {
  const std::pair<const Tensor*, const char*> ws[] = {
      {&exp_sums, "exp_sums"}, {&max_logits, "max_logits"}, {&tmp_out, "tmp_out"}};
  for (auto& [t, name] : ws) {
    expect_defined(*t, name);
    expect_device(*t, name, query.device());
    expect_contiguous(*t, name);
    expect_dtype(*t, name, DType::f32);
    if (query.is_cuda())
      DAY18_REQUIRE(reinterpret_cast<uintptr_t>(t->data()) % 16 == 0, name,
                    ": data must be 16-byte aligned for the vector loads (", t->describe(), ")");
  }
  expect_shape(exp_sums, "exp_sums", {d.num_tokens, d.num_heads, parts});
  expect_shape(max_logits, "max_logits", {d.num_tokens, d.num_heads, parts});
  expect_shape(tmp_out, "tmp_out", {d.num_tokens, d.num_heads, parts, d.head_size});
}

// query_start_loc: entries within [0, num_tokens], non-decreasing; with host metadata, every row
// of a segment has its first row's seq_idx (the prefill kernel reads one block table per segment).
void check_query_start_loc(std::span<const int32_t> qsl, int64_t num_tokens,
                           const Tensor& seq_idx) {
  for (size_t i = 0; i < qsl.size(); ++i) {
    DAY18_REQUIRE(qsl[i] >= 0 && qsl[i] <= num_tokens, "query_start_loc[", i, "] = ", qsl[i],
                  " outside [0, num_tokens = ", num_tokens, "]");
    DAY18_REQUIRE(i == 0 || qsl[i] >= qsl[i - 1], "query_start_loc[", i, "] = ", qsl[i],
                  " is smaller than query_start_loc[", i - 1, "] = ", qsl[i - 1],
                  " (segments must be in token order)");
  }
  if (seq_idx.is_cuda()) return;  // device metadata: the kernel turns a mismatch into NaN rows
  const int32_t* si = seq_idx.ptr<int32_t>();
  for (size_t i = 0; i + 1 < qsl.size(); ++i)
    for (int32_t t = qsl[i] + 1; t < qsl[i + 1]; ++t)
      DAY18_REQUIRE(si[t] == si[qsl[i]], "seq_idx[", t, "] = ", si[t], " differs from seq_idx[",
                    qsl[i], "] = ", si[qsl[i]], ": segment ", i, " of query_start_loc (rows [",
                    qsl[i], ", ", qsl[i + 1], ")) must be one sequence");
}

// The segments of query_start_loc with more than min_tokens rows.
std::vector<cuda::PrefillSegment> segments_longer_than(std::span<const int32_t> qsl,
                                                       int min_tokens) {
  std::vector<cuda::PrefillSegment> out;
  for (size_t i = 0; i + 1 < qsl.size(); ++i)
    if (qsl[i + 1] - qsl[i] > min_tokens) out.push_back({qsl[i], qsl[i + 1] - qsl[i]});
  return out;
}

}  // namespace

PagedAttentionVersion parse_paged_attention_version(std::string_view s) {
  if (s == "auto") return PagedAttentionVersion::automatic;
  if (s == "v1") return PagedAttentionVersion::v1;
  if (s == "v2") return PagedAttentionVersion::v2;
  if (s == "readable") return PagedAttentionVersion::readable;
  if (s == "mma") return PagedAttentionVersion::mma;
  if (s == "fma") return PagedAttentionVersion::fma;
  DAY18_REQUIRE(false, "version: expected auto, mma, fma, v1, v2 or readable, got '", s, "'");
}

std::string_view paged_attention_version_name(PagedAttentionVersion v) {
  switch (v) {
    case PagedAttentionVersion::automatic:
      return "auto";
    case PagedAttentionVersion::v1:
      return "v1";
    case PagedAttentionVersion::v2:
      return "v2";
    case PagedAttentionVersion::readable:
      return "readable";
    case PagedAttentionVersion::mma:
      return "mma";
    case PagedAttentionVersion::fma:
      return "fma";
  }
  return "?";
}

void set_default_paged_attention_version(PagedAttentionVersion v) {
  g_default_version.store(v);
}
PagedAttentionVersion default_paged_attention_version() {
  return g_default_version.load();
}

PagedAttentionPlan plan_paged_attention(int64_t num_tokens, int64_t num_heads, int64_t num_kv_heads,
                                        int64_t head_size, int max_context_len,
                                        const PagedAttentionOptions& o) {
  DAY18_REQUIRE(num_kv_heads > 0 && num_heads % num_kv_heads == 0, "num_heads ", num_heads,
                " must be a multiple of num_kv_heads ", num_kv_heads);
  DAY18_REQUIRE(o.partition_size >= 0, "partition_size must be >= 0 (0 = auto), got ",
                o.partition_size);
  DAY18_REQUIRE(max_context_len >= 0, "max_context_len must be >= 0, got ", max_context_len);
  PagedAttentionPlan p;
  PagedAttentionVersion v = o.version;
  if (v == PagedAttentionVersion::automatic) v = default_paged_attention_version();
  if (v == PagedAttentionVersion::readable) {  // 128 threads, whole context, no workspace
    p.version = v;
    p.num_threads = cuda::kPagedAttentionReadableThreads;
    return p;
  }
  if (v == PagedAttentionVersion::automatic || v == PagedAttentionVersion::mma) {
    DAY18_REQUIRE(o.partition_size <= cuda::kPagedAttentionMmaMaxPartition, "partition_size ",
                  o.partition_size, " exceeds the mma kernel's ",
                  cuda::kPagedAttentionMmaMaxPartition, " (0 = auto)");
    p.version = PagedAttentionVersion::mma;
    p.num_threads = cuda::kPagedAttentionMmaThreads;
    const int64_t group_blocks =
        num_tokens * num_kv_heads *
        ((num_heads / num_kv_heads + cuda::kPagedAttentionMmaMaxRows - 1) /
         cuda::kPagedAttentionMmaMaxRows);
    const int64_t slots = static_cast<int64_t>(sms()) *
                          cuda::paged_attention_mma_blocks_per_sm(static_cast<int>(head_size),
                                                                  smem_per_sm());
    int ps = o.partition_size;
    if (ps == 0) {
      // Long partitions amortize a block's start-up (block table, pipeline fill, the merge of
      // its warps) and keep the reduce small; short ones fill the GPU. From the longest, halve
      // while the grid has fewer than kAutoWaves waves and the halved grid stays within half a
      // wave (within a whole wave while partitions are longer than 512 keys, whose blocks are
      // long enough to be worth spreading): see attention.h for the measurements.
      ps = cuda::kPagedAttentionMmaMaxPartition;
      auto blocks = [&](int q) { return group_blocks * parts_of(max_context_len, q); };
      while (ps > kMinAutoPartition && blocks(ps) < kAutoWaves * slots &&
             (2 * blocks(ps / 2) <= slots || (ps > 512 && blocks(ps / 2) <= slots)))
        ps /= 2;
    }
    // One partition writes the output directly: no workspace.
    set_partitions(p, num_tokens, num_heads, head_size, max_context_len, ps,
                   parts_of(max_context_len, ps) > 1);
    return p;
  }
  p.num_threads = o.num_threads;
  const int hpb = cuda::paged_attention_heads_per_block(static_cast<int>(num_heads),
                                                        static_cast<int>(num_kv_heads), num_tokens,
                                                        max_context_len, sms());
  const int64_t v1_blocks = num_tokens * (num_heads / hpb);
  const int64_t n_sms = sms();
  int ps = o.partition_size;
  if (ps == 0) {
    ps = kDefaultPartitionSize;
    while (ps > kMinAutoPartition &&
           v1_blocks * parts_of(max_context_len, ps) < kAutoBlocksPerSm * n_sms)
      ps /= 2;
  }
  if (v == PagedAttentionVersion::fma) {
    const size_t v1_smem = cuda::paged_attention_shared_bytes(hpb, static_cast<int>(head_size),
                                                              o.num_threads, max_context_len);
    // v1 when its grid fills the GPU and the context fits one partition anyway; and for short
    // contexts whatever the grid: splitting <= 256 keys gains little parallelism and costs a
    // reduce launch (H100, head 64, ctx 48 planned for 256: B=1 9.5 vs 11.7 us, B=64 15.0 vs
    // 18.9 us; ctx 200: B=64 26.4 vs 36.7 us).
    const bool short_context = max_context_len <= kV1MaxShortContext;
    if (v1_smem <= smem_limit() && (short_context || (max_context_len <= ps && v1_blocks >= n_sms)))
      v = PagedAttentionVersion::v1;
    else
      v = PagedAttentionVersion::v2;
  }
  p.version = v;
  if (v == PagedAttentionVersion::v2)
    set_partitions(p, num_tokens, num_heads, head_size, max_context_len, ps, true);
  return p;
}

size_t paged_attention_workspace_bound(int64_t max_num_tokens, int64_t num_heads,
                                       int64_t num_kv_heads, int64_t head_size, int max_model_len,
                                       const PagedAttentionOptions& options) {
  // Every rule of the planner switches at a multiple of 64 tokens of context (partition sizes,
  // the short-context and one-head-per-block bounds), and within such a step the workspace only
  // grows with the context: the contexts 64, 128, ... and max_model_len cover every maximum.
  // In num_tokens the workspace grows too, except where the automatic partition shrinks (small
  // batches, fewer than kAutoBlocksPerSm blocks per SM): every T up to that point is planned,
  // then only the largest.
  std::vector<int64_t> contexts;
  for (int64_t c = kMinAutoPartition; c < max_model_len; c += kMinAutoPartition)
    contexts.push_back(c);
  contexts.push_back(std::max(max_model_len, 0));
  // (mma: the partition shrinks while the grid fits one wave, so never beyond as many tokens as
  // the wave has blocks).
  const int64_t shrink_tokens = std::max<int64_t>(
      (kAutoBlocksPerSm * sms() * cuda::kMaxHeadsPerBlock + num_heads - 1) / num_heads + 1,
      static_cast<int64_t>(sms()) * cuda::paged_attention_mma_blocks_per_sm(
                                        static_cast<int>(head_size), smem_per_sm()) +
          1);
  std::vector<int64_t> tokens;
  for (int64_t t = 1; t <= std::min(max_num_tokens, shrink_tokens); ++t) tokens.push_back(t);
  tokens.push_back(std::max<int64_t>(max_num_tokens, 1));
  size_t worst = 0;
  for (int64_t t : tokens)
    for (int64_t ctx : contexts)
      worst = std::max(worst, plan_paged_attention(t, num_heads, num_kv_heads, head_size,
                                                   static_cast<int>(ctx), options)
                                  .workspace_bytes);
  return worst;
}

PagedAttentionWorkspace split_paged_attention_workspace(const PagedAttentionPlan& plan,
                                                        const Tensor& workspace) {
  PagedAttentionWorkspace w;
  if (plan.workspace_bytes == 0) return w;  // v1, readable, mma over one partition
  expect_dtype(workspace, "workspace", DType::u8);
  expect_contiguous(workspace, "workspace");
  DAY18_REQUIRE(workspace.nbytes() >= plan.workspace_bytes, "workspace: ", workspace.nbytes(),
                " bytes, the ", paged_attention_version_name(plan.version), " plan needs ", plan.workspace_bytes, " (see plan_paged_attention)");
  auto* base = static_cast<uint8_t*>(workspace.data());
  const size_t stats = static_cast<size_t>(plan.exp_sums_shape[0] * plan.exp_sums_shape[1] *
                                           plan.exp_sums_shape[2]) *
                       4;
  w.exp_sums = Tensor(base, DType::f32, plan.exp_sums_shape, workspace.device());
  w.max_logits =
      Tensor(base + align_up(stats), DType::f32, plan.max_logits_shape, workspace.device());
  w.tmp_out =
      Tensor(base + 2 * align_up(stats), DType::f32, plan.tmp_out_shape, workspace.device());
  return w;
}

void paged_attention_v1(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                        const Tensor& value_cache, const Tensor& block_tables,
                        const Tensor& seq_idx, const Tensor& context_lens, double scale,
                        int max_context_len, int num_threads, cudaStream_t stream) {
  const Dims d = check_common(out, query, key_cache, value_cache, block_tables, seq_idx,
                              context_lens, scale, max_context_len);
  check_v1_fits(d, max_context_len, num_threads, query.dtype(), query.is_cuda());
  if (query.is_cuda())
    cuda::paged_attention_v1(out, query, key_cache, value_cache, block_tables, seq_idx,
                             context_lens, static_cast<float>(scale), max_context_len, num_threads,
                             stream);
  else
    cpu::paged_attention(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                         static_cast<float>(scale));
}

void paged_attention_v2(const Tensor& out, const Tensor& exp_sums, const Tensor& max_logits,
                        const Tensor& tmp_out, const Tensor& query, const Tensor& key_cache,
                        const Tensor& value_cache, const Tensor& block_tables,
                        const Tensor& seq_idx, const Tensor& context_lens, double scale,
                        int max_context_len, int partition_size, cudaStream_t stream) {
  const Dims d = check_common(out, query, key_cache, value_cache, block_tables, seq_idx,
                              context_lens, scale, max_context_len);
  check_partitions(d, partition_size);
  check_split_workspace(d, query, exp_sums, max_logits, tmp_out, parts_of(max_context_len,
                                                                          partition_size));
  if (query.is_cuda())
    cuda::paged_attention_v2(out, exp_sums, max_logits, tmp_out, query, key_cache, value_cache,
                             block_tables, seq_idx, context_lens, static_cast<float>(scale),
                             max_context_len, partition_size, stream);
  else
    cpu::paged_attention(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                         static_cast<float>(scale));
}

void paged_attention_mma(const Tensor& out, const Tensor& exp_sums, const Tensor& max_logits,
                         const Tensor& tmp_out, const Tensor& query, const Tensor& key_cache,
                         const Tensor& value_cache, const Tensor& block_tables,
                         const Tensor& seq_idx, const Tensor& context_lens, double scale,
                         int max_context_len, int partition_size, cudaStream_t stream) {
  const Dims d = check_common(out, query, key_cache, value_cache, block_tables, seq_idx,
                              context_lens, scale, max_context_len);
  check_partitions(d, partition_size);
  DAY18_REQUIRE(partition_size <= cuda::kPagedAttentionMmaMaxPartition, "partition_size ",
                partition_size, " exceeds the mma kernel's largest partition, ",
                cuda::kPagedAttentionMmaMaxPartition);
  const int64_t parts = parts_of(max_context_len, partition_size);
  if (parts > 1 && query.is_cuda())  // the CPU backend does not use the workspace
    check_split_workspace(d, query, exp_sums, max_logits, tmp_out, parts);
  if (!query.is_cuda()) {
    cpu::paged_attention(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                         static_cast<float>(scale));
    return;
  }
  if (!cuda::paged_attention_mma_supported(query.dtype(), static_cast<int>(d.head_size))) {
    // float32: the FMA kernels on the same partitions (v1's logits fit: <= 2048 keys).
    if (parts == 1)
      cuda::paged_attention_v1(out, query, key_cache, value_cache, block_tables, seq_idx,
                               context_lens, static_cast<float>(scale), max_context_len,
                               cuda::kPagedAttentionDefaultThreads, stream);
    else
      cuda::paged_attention_v2(out, exp_sums, max_logits, tmp_out, query, key_cache, value_cache,
                               block_tables, seq_idx, context_lens, static_cast<float>(scale),
                               max_context_len, partition_size, stream);
    return;
  }
  cuda::paged_attention_mma(out, exp_sums, max_logits, tmp_out, query, key_cache, value_cache,
                            block_tables, seq_idx, context_lens, static_cast<float>(scale),
                            max_context_len, partition_size, static_cast<int>(parts), stream);
}

void paged_attention_readable(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                              const Tensor& value_cache, const Tensor& block_tables,
                              const Tensor& seq_idx, const Tensor& context_lens, double scale,
                              int max_context_len, cudaStream_t stream) {
  check_common(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens, scale,
               max_context_len);
  // The shared-memory fit is checked by the launcher against the device, with the kernel's exact
  // static shared memory; the CPU backend has no such limit.
  if (query.is_cuda())
    cuda::paged_attention_readable(out, query, key_cache, value_cache, block_tables, seq_idx,
                                   context_lens, static_cast<float>(scale), max_context_len,
                                   stream);
  else
    cpu::paged_attention(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                         static_cast<float>(scale));
}

void paged_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                     const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                     const Tensor& context_lens, double scale, int max_context_len,
                     const Tensor& workspace, const PagedAttentionOptions& options,
                     cudaStream_t stream) {
  expect_dim(query, "query", 3);
  expect_dim(key_cache, "key_cache", 4);
  const PagedAttentionPlan plan = plan_paged_attention(
      query.size(0), query.size(1), key_cache.size(1), query.size(2), max_context_len, options);
  if (plan.version == PagedAttentionVersion::readable) {
    paged_attention_readable(out, query, key_cache, value_cache, block_tables, seq_idx,
                             context_lens, scale, max_context_len, stream);
    return;
  }
  if (plan.version == PagedAttentionVersion::mma) {
    PagedAttentionWorkspace w;
    if (plan.max_num_partitions > 1 && query.is_cuda()) {  // the CPU backend needs none
      expect_device(workspace, "workspace", query.device());
      w = split_paged_attention_workspace(plan, workspace);
    }
    paged_attention_mma(out, w.exp_sums, w.max_logits, w.tmp_out, query, key_cache, value_cache,
                        block_tables, seq_idx, context_lens, scale, max_context_len,
                        plan.partition_size, stream);
    return;
  }
  if (plan.version == PagedAttentionVersion::v1 || !query.is_cuda()) {
    paged_attention_v1(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                       scale, max_context_len, plan.num_threads, stream);
    return;
  }
  expect_device(workspace, "workspace", query.device());
  const PagedAttentionWorkspace w = split_paged_attention_workspace(plan, workspace);
  paged_attention_v2(out, w.exp_sums, w.max_logits, w.tmp_out, query, key_cache, value_cache,
                     block_tables, seq_idx, context_lens, scale, max_context_len,
                     plan.partition_size, stream);
}

bool prefill_attention_available(DType dtype, int64_t head_size) {
  return cuda::prefill_attention_supported(dtype, static_cast<int>(head_size));
}

void prefill_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                       const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                       const Tensor& context_lens, double scale, int max_context_len,
                       std::span<const int32_t> query_start_loc, cudaStream_t stream) {
  const Dims d = check_common(out, query, key_cache, value_cache, block_tables, seq_idx,
                              context_lens, scale, max_context_len);
  DAY18_REQUIRE(!query_start_loc.empty(),
                "query_start_loc: empty (it needs num_segments + 1 entries, at least one)");
  check_query_start_loc(query_start_loc, d.num_tokens, seq_idx);
  if (query.is_cuda()) {
    DAY18_REQUIRE(prefill_attention_available(query.dtype(), d.head_size),
                  "query: ", dtype_name(query.dtype()),
                  " has no tensor-core prefill kernel (float16 and "
                  "bfloat16 only; float32 runs paged_attention)");
    cuda::prefill_attention(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                            static_cast<float>(scale), segments_longer_than(query_start_loc, 0),
                            stream);
    return;
  }
  for (size_t i = 0; i + 1 < query_start_loc.size(); ++i) {
    const int64_t a = query_start_loc[i], b = query_start_loc[i + 1];
    if (b > a)
      cpu::paged_attention(out.slice0(a, b), query.slice0(a, b), key_cache, value_cache,
                           block_tables, seq_idx.slice0(a, b), context_lens.slice0(a, b),
                           static_cast<float>(scale));
  }
}

void paged_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                     const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                     const Tensor& context_lens, double scale, int max_context_len,
                     const Tensor& workspace, std::span<const int32_t> query_start_loc,
                     const PagedAttentionOptions& options, cudaStream_t stream) {
  expect_dim(query, "query", 3);
  expect_defined(seq_idx, "seq_idx");
  expect_dtype(seq_idx, "seq_idx", DType::i32);
  expect_shape(seq_idx, "seq_idx", {query.size(0)});  // before check_query_start_loc reads it
  if (!query_start_loc.empty()) check_query_start_loc(query_start_loc, query.size(0), seq_idx);
  const PagedAttentionVersion v = options.version == PagedAttentionVersion::automatic
                                      ? default_paged_attention_version()
                                      : options.version;
  std::vector<cuda::PrefillSegment> prefill;
  if (query.is_cuda() && v == PagedAttentionVersion::automatic &&
      prefill_attention_available(query.dtype(), query.size(2)))
    prefill = segments_longer_than(query_start_loc, kPrefillMinQueryTokens);
  if (prefill.empty()) {  // the decode path over every row, as without query_start_loc
    paged_attention(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens, scale,
                    max_context_len, workspace, options, stream);
    return;
  }
  check_common(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens, scale,
               max_context_len);
  cuda::prefill_attention(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                          static_cast<float>(scale), prefill, stream);
  // Every other row: the decode kernels, one call per run of consecutive rows between segments.
  auto decode = [&](int64_t a, int64_t b) {
    if (b <= a) return;
    paged_attention(out.slice0(a, b), query.slice0(a, b), key_cache, value_cache, block_tables,
                    seq_idx.slice0(a, b), context_lens.slice0(a, b), scale, max_context_len,
                    workspace, options, stream);
  };
  int64_t at = 0;
  for (const cuda::PrefillSegment& s : prefill) {
    decode(at, s.token_start);
    at = s.token_start + s.num_tokens;
  }
  decode(at, query.size(0));
}

}  // namespace day18
