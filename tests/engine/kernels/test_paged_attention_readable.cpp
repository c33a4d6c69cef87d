// PagedAttention, the readable kernel (engine/kernels/paged_attention_readable.h): against the CPU
// oracle over randomized shapes and every dtype, the edge cases of the course text (one test
// each), against the optimized kernels on the same inputs, its shared-memory limit; then the ops
// layer's `readable` version and the process-wide default version, CPU backend included.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/device.h"
#include "engine/kernels/paged_attention.h"
#include "engine/kernels/paged_attention_readable.h"
#include "engine/ops/attention.h"
#include "tests/support/paged_attention_problem.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

using V = PagedAttentionVersion;
constexpr auto& kDtypes = testing::kAllFloatDtypes;

using testing::label;
using testing::make_problem;
using testing::oracle;
using testing::Problem;
using testing::run_gpu;
using testing::Shape;

// Runs cuda::paged_attention_readable itself (no ops-layer validation) on device copies of the
// problem; out poisoned (NaN) first, so an element the kernel does not write shows up.
OwnedTensor run_readable(const Problem& p) {
  const OwnedTensor q = p.query.to(Storage::device), kc = p.key_cache.to(Storage::device),
                    vc = p.value_cache.to(Storage::device), bt = p.block_tables.to(Storage::device),
                    si = p.seq_idx.to(Storage::device), cl = p.context_lens.to(Storage::device);
  OwnedTensor out(p.query.sizes(), p.query.dtype(), Storage::device);
  poison(out);
  cuda::paged_attention_readable(out, q, kc, vc, bt, si, cl, static_cast<float>(p.scale),
                                 p.max_context_len, nullptr);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  return testing::to_host(out);
}

// The readable kernel against the oracle on fresh random inputs of each dtype.
void expect_matches_oracle_for_every_dtype(Rng& rng, const Shape& s,
                                           const std::vector<int32_t>& seq_lens,
                                           bool prefill = false) {
  for (DType dt : kDtypes) {
    const Problem p = make_problem(rng, dt, s, seq_lens, prefill);
    SCOPED_TRACE(label(dt, s, prefill ? "prefill" : "decode"));
    EXPECT_CLOSE(run_readable(p), oracle(p), default_tolerance(dt));
  }
}

// Restores the process-wide default version when the test ends, pass or fail: the whole binary
// runs in one process, and the tests after this one must see the engine's rule.
struct DefaultVersionGuard {
  PagedAttentionVersion saved = default_paged_attention_version();
  ~DefaultVersionGuard() { set_default_paged_attention_version(saved); }
};

// ---------------------------------------------------------------- readable kernel vs oracle

TEST(PagedAttentionReadable, MatchesOracleOnRandomShapesForEveryDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(1800);
  const std::pair<int64_t, int64_t> heads[] = {{8, 8}, {8, 2}, {32, 8}, {6, 3}, {4, 1}};
  const int64_t last_head = std::size(heads) - 1;
  const int64_t last_hs = std::size(cuda::kPagedAttentionHeadSizes) - 1;
  const int64_t last_bs = std::size(cuda::kPagedAttentionBlockSizes) - 1;
  for (DType dt : kDtypes)
    for (int i = 0; i < 8; ++i) {
      const auto [h, kvh] = heads[rng.randint(0, last_head)];
      const Shape s{h, kvh, cuda::kPagedAttentionHeadSizes[rng.randint(0, last_hs)],
                    cuda::kPagedAttentionBlockSizes[rng.randint(0, last_bs)]};
      std::vector<int32_t> lens;
      for (int j = 0, n = static_cast<int>(rng.randint(1, 5)); j < n; ++j)
        lens.push_back(static_cast<int32_t>(rng.randint(1, 1200)));
      const Problem p = make_problem(rng, dt, s, lens);
      SCOPED_TRACE(label(dt, s, detail::concat("case ", i).c_str()));
      EXPECT_CLOSE(run_readable(p), oracle(p), default_tolerance(dt));
    }
}

TEST(PagedAttentionReadable, ContextOfOneKeyReturnsThatKeysValueRow) {
  // softmax over one logit is exactly 1, so every head's output is its KV head's value row.
  DAY18_REQUIRE_GPU();
  Rng rng(1801);
  const Shape s{8, 2, 128, 16};
  for (DType dt : kDtypes) {
    const Problem p = make_problem(rng, dt, s, {1});
    SCOPED_TRACE(dtype_name(dt));
    const OwnedTensor got = run_readable(p);
    EXPECT_CLOSE(got, oracle(p), default_tolerance(dt));
    const int64_t blk = p.block_tables.ptr<int32_t>()[0];
    for (int64_t h = 0; h < s.num_heads; ++h)
      for (int64_t d = 0; d < s.head_size; ++d) {
        const int64_t kvh = h / (s.num_heads / s.num_kv_heads);
        const double want = host_get(
            p.value_cache, ((blk * s.num_kv_heads + kvh) * s.block_size) * s.head_size + d);
        ASSERT_EQ(host_get(got, h * s.head_size + d), want) << "head " << h << " d " << d;
      }
  }
}

TEST(PagedAttentionReadable, Context17WithBlock16ReadsOneKeyOfTheSecondBlock) {
  DAY18_REQUIRE_GPU();
  Rng rng(1802);
  expect_matches_oracle_for_every_dtype(rng, Shape{8, 2, 128, 16}, {17, 33, 15});
}

TEST(PagedAttentionReadable, ContextOfExactlyOneBlockForEveryBlockSize) {
  DAY18_REQUIRE_GPU();
  Rng rng(1803);
  for (int bs : cuda::kPagedAttentionBlockSizes)
    expect_matches_oracle_for_every_dtype(rng, Shape{8, 2, 64, bs}, {bs, bs});
}

TEST(PagedAttentionReadable, GqaFourQueryHeadsPerKvHeadAndMqa) {
  DAY18_REQUIRE_GPU();
  Rng rng(1804);
  // 4:1 (Llama-3-8B's 32/8 and a small 8/2), MQA (one KV head for all), and MHA for contrast.
  for (auto [h, kvh] : {std::pair<int64_t, int64_t>{32, 8}, {8, 2}, {8, 1}, {16, 1}, {4, 4}})
    expect_matches_oracle_for_every_dtype(rng, Shape{h, kvh, 128, 16}, {300, 77, 1000});
}

TEST(PagedAttentionReadable, HeadSize256GivesEachThreadTwoOutputDims) {
  // 128 threads and 256 dims: phase 3's loop d = tid, tid + 128 runs twice per thread. 192 runs
  // it twice for threads 0-63 and once for the rest; the other supported sizes leave threads idle
  // (32: three of the four warps; 80, 96, 112: not a multiple of the warp).
  DAY18_REQUIRE_GPU();
  Rng rng(1805);
  expect_matches_oracle_for_every_dtype(rng, Shape{8, 2, 256, 16}, {1, 200, 700});
  for (int hs : cuda::kPagedAttentionHeadSizes)
    expect_matches_oracle_for_every_dtype(rng, Shape{4, 2, hs, 16}, {5, 130});
}

TEST(PagedAttentionReadable, PaddingTokenGivesZeros) {
  DAY18_REQUIRE_GPU();
  Rng rng(1806);
  const Shape s{4, 4, 64, 8};
  for (DType dt : kDtypes) {
    Problem p = make_problem(rng, dt, s, {40, 9, 3});
    p.context_lens.ptr<int32_t>()[1] = 0;  // token 1 is padding (e.g. a CUDA graph's pad slot)
    SCOPED_TRACE(dtype_name(dt));
    const OwnedTensor got = run_readable(p);
    EXPECT_CLOSE(got, oracle(p), default_tolerance(dt));
    for (int64_t i = 0; i < s.num_heads * s.head_size; ++i)
      ASSERT_EQ(host_get(got, s.num_heads * s.head_size + i), 0.0) << "token 1, element " << i;
  }
}

TEST(PagedAttentionReadable, BadSeqIdxOrContextLenGivesNaNLikeTheOptimizedKernel) {
  // Device metadata is not read by the host: out-of-range values must give NaN, not a crash.
  DAY18_REQUIRE_GPU();
  Rng rng(1807);
  const Shape s{4, 4, 64, 8};
  const int64_t row = s.num_heads * s.head_size;  // elements of one token's output
  for (DType dt : kDtypes) {
    Problem p = make_problem(rng, dt, s, {40, 9, 3, 20});
    p.seq_idx.ptr<int32_t>()[1] = 4;                           // num_seqs = 4
    p.seq_idx.ptr<int32_t>()[2] = -1;                          // negative row
    p.context_lens.ptr<int32_t>()[3] = p.max_context_len + 1;  // beyond max_context_len
    SCOPED_TRACE(dtype_name(dt));
    const OwnedTensor got = run_readable(p);
    for (int64_t i = 0; i < row; ++i) {
      ASSERT_FALSE(std::isnan(host_get(got, i))) << "token 0 is valid, element " << i;
      for (int64_t tok = 1; tok <= 3; ++tok)
        ASSERT_TRUE(std::isnan(host_get(got, tok * row + i))) << "token " << tok << " elem " << i;
    }
    // The optimized kernels follow the same rule (compare_tensors passes NaN against NaN only).
    EXPECT_CLOSE(got, run_gpu(p, {V::v1}), default_tolerance(dt));
    EXPECT_CLOSE(got, run_gpu(p, {V::v2, 16}), default_tolerance(dt));
  }
}

TEST(PagedAttentionReadable, PrefillWithPerTokenContextLensIsCausal) {
  // One query token per prompt position p with context_len p + 1: token p sees keys 0..p only.
  DAY18_REQUIRE_GPU();
  Rng rng(1808);
  expect_matches_oracle_for_every_dtype(rng, Shape{8, 2, 64, 16}, {37, 20, 130}, true);
}

TEST(PagedAttentionReadable, LongContextAbove48KBOfLogitsOptsInToMoreSharedMemory) {
  // 20000 keys: 80 KB of logits, past the 48 KB a kernel gets without cudaFuncSetAttribute.
  DAY18_REQUIRE_GPU();
  Rng rng(1809);
  expect_matches_oracle_for_every_dtype(rng, Shape{4, 1, 64, 32}, {20000, 3});
}

TEST(PagedAttentionReadable, MatchesTheOptimizedKernelsOnTheSameInputs) {
  DAY18_REQUIRE_GPU();
  Rng rng(1810);
  for (DType dt : kDtypes)
    for (const Shape& s : {Shape{32, 8, 128, 16}, Shape{8, 8, 80, 32}, Shape{16, 2, 256, 8}}) {
      const Problem p = make_problem(rng, dt, s, {1, 17, 512, 1500});
      const OwnedTensor readable = run_readable(p);
      for (auto [run, what] : {std::pair{testing::GpuRun{V::v1}, "v1"},
                               {testing::GpuRun{V::v2, 512}, "v2"},
                               {testing::GpuRun{V::automatic}, "auto"}}) {
        SCOPED_TRACE(label(dt, s, what));
        EXPECT_CLOSE(readable, run_gpu(p, run), default_tolerance(dt));
      }
    }
}

TEST(PagedAttentionReadable, ContextTooLongForSharedMemoryIsAnErrorNamingMaxContextLen) {
  // One float of logits per key: one key more than the device's opt-in shared memory can hold.
  // The launcher checks before launching, so the (small) caches are never read.
  DAY18_REQUIRE_GPU();
  const int ctx =
      static_cast<int>(device_limits().shared_bytes_per_block_optin / sizeof(float)) + 1;
  const int64_t block = 8, blocks_per_seq = (ctx + block - 1) / block;
  OwnedTensor out({1, 1, 64}, DType::f32, Storage::device),
      q({1, 1, 64}, DType::f32, Storage::device),
      kc({1, 1, block, 64}, DType::f32, Storage::device),
      vc({1, 1, block, 64}, DType::f32, Storage::device),
      bt_h({1, blocks_per_seq}, DType::i32, Storage::host), si_h({1}, DType::i32, Storage::host),
      cl_h({1}, DType::i32, Storage::host);
  std::fill(bt_h.ptr<int32_t>(), bt_h.ptr<int32_t>() + blocks_per_seq, 0);
  si_h.ptr<int32_t>()[0] = 0;
  cl_h.ptr<int32_t>()[0] = ctx;
  const OwnedTensor bt = bt_h.to(Storage::device), si = si_h.to(Storage::device),
                    cl = cl_h.to(Storage::device);
  const std::string needle = detail::concat("max_context_len ", ctx);
  EXPECT_INVALID_NAMING(
      cuda::paged_attention_readable(out, q, kc, vc, bt, si, cl, 1.f, ctx, nullptr),
      needle.c_str());
  PagedAttentionOptions o;
  o.version = V::readable;
  EXPECT_INVALID_NAMING(paged_attention(out, q, kc, vc, bt, si, cl, 1.0, ctx, Tensor(), o),
                        needle.c_str());
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());  // nothing was launched, nothing failed
}

TEST(PagedAttentionReadable, SharedMemoryIsTheLogitsRoundedUpToWhole16ByteVectors) {
  // One float per key, padded so that the compiler's vector loads of the last logits stay inside.
  EXPECT_EQ(cuda::paged_attention_readable_shared_bytes(0), 0u);
  EXPECT_EQ(cuda::paged_attention_readable_shared_bytes(1), 16u);
  EXPECT_EQ(cuda::paged_attention_readable_shared_bytes(4), 16u);
  EXPECT_EQ(cuda::paged_attention_readable_shared_bytes(17), 80u);
  EXPECT_EQ(cuda::paged_attention_readable_shared_bytes(4096), 16384u);
}

// ---------------------------------------------------------------- ops layer: version readable

TEST(PagedAttentionReadableOps, VersionNamesParseAndPrint) {
  EXPECT_EQ(parse_paged_attention_version("readable"), V::readable);
  EXPECT_EQ(paged_attention_version_name(V::readable), "readable");
  for (V v : {V::automatic, V::v1, V::v2, V::readable})
    EXPECT_EQ(parse_paged_attention_version(paged_attention_version_name(v)), v);
  EXPECT_INVALID_NAMING(parse_paged_attention_version("v3"), "readable");  // lists the choices
}

TEST(PagedAttentionReadableOps, PlanForReadableHas128ThreadsAndNoWorkspace) {
  PagedAttentionOptions o;
  o.version = V::readable;
  for (auto [tokens, ctx] : {std::pair<int64_t, int>{1, 4096}, {64, 48}, {256, 8192}}) {
    const PagedAttentionPlan p = plan_paged_attention(tokens, 32, 8, 128, ctx, o);
    EXPECT_EQ(p.version, V::readable) << "tokens " << tokens << " ctx " << ctx;
    EXPECT_EQ(p.num_threads, cuda::kPagedAttentionReadableThreads);
    EXPECT_EQ(p.workspace_bytes, 0u);
    EXPECT_EQ(p.partition_size, 0);
  }
  EXPECT_EQ(paged_attention_workspace_bound(256, 32, 8, 128, 8192, o), 0u);
}

TEST(PagedAttentionReadableOps, CpuBackendRunsTheOracle) {
  Rng rng(1820);
  for (DType dt : kDtypes) {
    const Problem p = make_problem(rng, dt, Shape{8, 2, 64, 16}, {30, 1, 17});
    const OwnedTensor want = oracle(p);
    OwnedTensor out(p.query.sizes(), dt, Storage::host);
    poison(out);
    PagedAttentionOptions o;
    o.version = V::readable;
    paged_attention(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx,
                    p.context_lens, p.scale, p.max_context_len, Tensor(), o);
    EXPECT_TRUE(testing::bitwise_equal(out, want)) << dtype_name(dt);
    poison(out);
    paged_attention_readable(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx,
                             p.context_lens, p.scale, p.max_context_len);
    EXPECT_TRUE(testing::bitwise_equal(out, want)) << dtype_name(dt);
  }
}

TEST(PagedAttentionReadableOps, ValidatesLikeV1) {
  Rng rng(1821);
  Problem p = make_problem(rng, DType::f16, Shape{8, 2, 64, 16}, {20, 40});
  OwnedTensor out(p.query.sizes(), DType::f16, Storage::host);
  auto call = [&](const Problem& q, const Tensor& o) {
    paged_attention_readable(o, q.query, q.key_cache, q.value_cache, q.block_tables, q.seq_idx,
                             q.context_lens, q.scale, q.max_context_len);
  };
  p.seq_idx.ptr<int32_t>()[1] = 2;
  EXPECT_INVALID_NAMING(call(p, out), "seq_idx[1] = 2");
  p.seq_idx.ptr<int32_t>()[1] = 1;
  p.context_lens.ptr<int32_t>()[0] = -1;
  EXPECT_INVALID_NAMING(call(p, out), "context_lens[0] = -1");
  const Problem p72 = make_problem(rng, DType::f16, Shape{8, 2, 72, 16}, {5});
  OwnedTensor out72(p72.query.sizes(), DType::f16, Storage::host);
  EXPECT_INVALID_NAMING(call(p72, out72), "head_size 72 not supported");
  const Problem p12 = make_problem(rng, DType::f16, Shape{8, 2, 64, 12}, {5});
  OwnedTensor out12(p12.query.sizes(), DType::f16, Storage::host);
  EXPECT_INVALID_NAMING(call(p12, out12), "block_size 12");
}

TEST(PagedAttentionReadableOps, CudaBackendRunsTheReadableKernel) {
  // Through paged_attention() the result is bit for bit the readable launcher's: the version
  // selects that kernel, after the ops layer's validation.
  DAY18_REQUIRE_GPU();
  Rng rng(1822);
  for (DType dt : kDtypes) {
    const Problem p = make_problem(rng, dt, Shape{32, 8, 128, 16}, {300, 1, 700});
    SCOPED_TRACE(dtype_name(dt));
    const OwnedTensor via_ops = run_gpu(p, {V::readable});
    EXPECT_CLOSE(via_ops, oracle(p), default_tolerance(dt));
    EXPECT_TRUE(testing::bitwise_equal(via_ops, run_readable(p)));
  }
}

// ---------------------------------------------------------------- process-wide default

TEST(PagedAttentionDefaultVersion, AutomaticResolvesToTheDefaultAndForcedVersionsStay) {
  DefaultVersionGuard guard;
  set_default_paged_attention_version(V::automatic);
  // The engine's rule: the tensor-core kernel, split over partitions (B=1, ctx 4096) or not
  // (B=64, ctx 48).
  const PagedAttentionPlan rule_long = plan_paged_attention(1, 32, 8, 128, 4096);
  const PagedAttentionPlan rule_short = plan_paged_attention(64, 32, 8, 128, 48);
  EXPECT_EQ(rule_long.version, V::mma);
  EXPECT_GT(rule_long.max_num_partitions, 1);
  EXPECT_EQ(rule_short.version, V::mma);
  EXPECT_EQ(rule_short.max_num_partitions, 1);

  set_default_paged_attention_version(V::readable);
  EXPECT_EQ(default_paged_attention_version(), V::readable);
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 128, 4096).version, V::readable);
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 128, 4096).workspace_bytes, 0u);
  EXPECT_EQ(paged_attention_workspace_bound(256, 32, 8, 128, 4096), 0u);
  PagedAttentionOptions forced;
  forced.version = V::v1;
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 128, 4096, forced).version, V::v1);
  forced.version = V::v2;
  EXPECT_EQ(plan_paged_attention(64, 32, 8, 128, 48, forced).version, V::v2);

  set_default_paged_attention_version(V::v1);
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 128, 4096).version, V::v1);

  set_default_paged_attention_version(V::automatic);  // back to the engine's rule
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 128, 4096).version, rule_long.version);
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 128, 4096).partition_size, rule_long.partition_size);
  EXPECT_EQ(plan_paged_attention(64, 32, 8, 128, 48).version, rule_short.version);
}

TEST(PagedAttentionDefaultVersion, CpuBackendHonoursTheDefault) {
  DefaultVersionGuard guard;
  Rng rng(1830);
  const Problem p = make_problem(rng, DType::f32, Shape{8, 2, 64, 16}, {30, 9});
  const OwnedTensor want = oracle(p);
  set_default_paged_attention_version(V::readable);
  OwnedTensor out(p.query.sizes(), DType::f32, Storage::host);
  poison(out);
  paged_attention(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx,
                  p.context_lens, p.scale, p.max_context_len, Tensor());
  EXPECT_TRUE(testing::bitwise_equal(out, want));
  // The readable path validates host metadata like every version.
  Problem bad = make_problem(rng, DType::f32, Shape{8, 2, 64, 16}, {30, 9});
  bad.seq_idx.ptr<int32_t>()[0] = 5;
  EXPECT_INVALID_NAMING(
      paged_attention(out, bad.query, bad.key_cache, bad.value_cache, bad.block_tables, bad.seq_idx,
                      bad.context_lens, bad.scale, bad.max_context_len, Tensor()),
      "seq_idx[0] = 5");
}

TEST(PagedAttentionDefaultVersion, CudaBackendRunsTheReadableKernelWhenItIsTheDefault) {
  DAY18_REQUIRE_GPU();
  DefaultVersionGuard guard;
  Rng rng(1831);
  const Problem p = make_problem(rng, DType::f16, Shape{32, 8, 128, 16}, {4096, 100});
  const OwnedTensor readable = run_readable(p);
  set_default_paged_attention_version(V::readable);
  const OwnedTensor via_default = run_gpu(p);  // version automatic
  EXPECT_TRUE(testing::bitwise_equal(via_default, readable));
  EXPECT_CLOSE(via_default, oracle(p), default_tolerance(DType::f16));
}

}  // namespace
}  // namespace day18
