// PagedAttention: the CPU oracle on a hand-computed case, the CUDA kernels (v1, v2, auto) against
// the oracle over randomized shapes and every dtype, the auto plan, and bad inputs.
#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "engine/core/device.h"
#include "engine/cpu/paged_attention.h"
#include "engine/kernels/paged_attention.h"
#include "engine/kernels/paged_attention_mma.h"
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

// ---------------------------------------------------------------- CPU oracle, by hand

TEST(PagedAttentionOracle, TwoKeysHeadSize4MatchesHandComputedSoftmax) {
  // One KV head, head_size 4, block_size 1; the sequence's key 0 lives in physical block 1 and
  // key 1 in physical block 0 (a shuffled block table).
  //   q = [1, 1, 0, 0], k0 = [1, 0, 0, 0] -> logit 1, k1 = [1, 1, 0, 0] -> logit 2 (scale 1)
  //   p1 = e^2 / (e^1 + e^2) = e / (1 + e) = 0.7310585786300049, p0 = 1 - p1
  //   out = p0 * v0 + p1 * v1 = v0 + p1 * (v1 - v0) = [1,2,3,4] + 4 * p1
  // Token 1 attends key 0 only (context_len 1): out = v0. Token 2 is padding (context_len 0).
  float q[3 * 4] = {1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0};
  float k[2 * 4] = {/*block 0 = key 1*/ 1, 1, 0, 0,
                    /*block 1 = key 0*/ 1, 0, 0, 0};
  float v[2 * 4] = {/*key 1*/ 5, 6, 7, 8, /*key 0*/ 1, 2, 3, 4};
  int32_t bt[2] = {1, 0}, si[3] = {0, 0, 0}, cl[3] = {2, 1, 0};
  float out[3 * 4];
  std::fill(std::begin(out), std::end(out), std::nanf(""));
  cpu::paged_attention(
      Tensor(out, DType::f32, {3, 1, 4}, Device::cpu),
      Tensor(q, DType::f32, {3, 1, 4}, Device::cpu),
      Tensor(k, DType::f32, {2, 1, 1, 4}, Device::cpu),
      Tensor(v, DType::f32, {2, 1, 1, 4}, Device::cpu), Tensor(bt, DType::i32, {1, 2}, Device::cpu),
      Tensor(si, DType::i32, {3}, Device::cpu), Tensor(cl, DType::i32, {3}, Device::cpu), 1.0f);
  const double p1 = 0.7310585786300049;
  for (int d = 0; d < 4; ++d) {
    EXPECT_NEAR(out[d], (d + 1) + 4 * p1, 1e-6) << "token 0, d " << d;
    EXPECT_FLOAT_EQ(out[4 + d], static_cast<float>(d + 1)) << "token 1 attends key 0 only";
    EXPECT_EQ(out[8 + d], 0.0f) << "padding token (context_len 0) gives zeros";
  }
}

TEST(PagedAttentionOracle, GqaQueryHeadsReadTheirKvHead) {
  // 4 query heads, 2 KV heads: heads 0,1 read KV head 0 and heads 2,3 read KV head 1. With one
  // key the output is that key's value row, whatever the query.
  Rng rng(7);
  Shape s{4, 2, 64, 8};
  Problem p = make_problem(rng, DType::f32, s, {1});
  OwnedTensor out = oracle(p);
  const int32_t blk = p.block_tables.ptr<int32_t>()[0];
  for (int h = 0; h < 4; ++h)
    for (int d = 0; d < 64; ++d) {
      const float want = p.value_cache.ptr<float>()[((blk * 2 + h / 2) * 8 + 0) * 64 + d];
      ASSERT_EQ(out.ptr<float>()[h * 64 + d], want) << "head " << h << " d " << d;
    }
}

TEST(PagedAttentionOracle, HeadSizes32And192PassValidationAndReturnTheOneKeysValueRow) {
  // Through the public call on the CPU backend (validation included): with one key per
  // sequence, each query head's output is its KV head's value row (GQA 4 and MHA).
  Rng rng(8);
  for (int64_t hs : {32, 192})
    for (auto [h, kvh] : {std::pair<int64_t, int64_t>{8, 2}, {4, 4}}) {
      const Shape s{h, kvh, hs, 16};
      Problem p = make_problem(rng, DType::f32, s, {1, 1});
      OwnedTensor out(p.query.sizes(), DType::f32, Storage::host);
      poison(out);
      paged_attention_v1(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx,
                         p.context_lens, p.scale, p.max_context_len);
      const int64_t max_blocks = p.block_tables.sizes()[1];
      for (int64_t t = 0; t < 2; ++t) {
        const int32_t blk = p.block_tables.ptr<int32_t>()[t * max_blocks];
        for (int64_t q = 0; q < h; ++q)
          for (int64_t d = 0; d < hs; ++d) {
            const float want =
                p.value_cache.ptr<float>()[((blk * kvh + q / (h / kvh)) * 16 + 0) * hs + d];
            ASSERT_EQ(out.ptr<float>()[(t * h + q) * hs + d], want)
                << label(DType::f32, s, "") << " token " << t << " head " << q << " d " << d;
          }
      }
    }
}

// ---------------------------------------------------------------- kernels compiled (no GPU)

TEST(PagedAttentionKernels, EveryListedHeadSizeHasAKernelForEveryDtype) {
  // The dispatch instantiates one kernel per entry of kPagedAttentionHeadSizes; the occupancy
  // query hands out its address (no CUDA call below 48 KB of shared memory), so this runs
  // without a GPU. Sizes off the list have none.
  for (DType dt : kDtypes) {
    for (int hs : cuda::kPagedAttentionHeadSizes) {
      EXPECT_TRUE(cuda::paged_attention_v1_has_threads(dt, hs, 128)) << dtype_name(dt) << " " << hs;
      EXPECT_NE(cuda::paged_attention_kernel_function(dt, hs, 128, 0), nullptr)
          << dtype_name(dt) << " head_size " << hs;
    }
    for (int hs : {16, 48, 72, 120, 160}) {
      EXPECT_FALSE(cuda::paged_attention_v1_has_threads(dt, hs, 128)) << hs;
      EXPECT_EQ(cuda::paged_attention_kernel_function(dt, hs, 128, 0), nullptr) << hs;
    }
  }
  EXPECT_EQ(cuda::paged_attention_head_sizes_text(), "32, 64, 80, 96, 112, 128, 192, 256");
}

// ---------------------------------------------------------------- plan (no GPU needed)

TEST(PagedAttentionPlan, SmallBatchLongContextUsesV2WithEnoughPartitions) {
  if (cuda_available() && cuda::sm_count() != 132) GTEST_SKIP() << "rule checked for 132 SMs";
  // Heads per block: the GQA group, except one head for a batch whose KV groups cannot fill the
  // SMs, while the context is short.
  EXPECT_EQ(cuda::paged_attention_heads_per_block(32, 8, 1, 256, 132), 1);
  EXPECT_EQ(cuda::paged_attention_heads_per_block(32, 8, 1, 1024, 132), 1);
  EXPECT_EQ(cuda::paged_attention_heads_per_block(32, 8, 1, 1025, 132), 4);
  EXPECT_EQ(cuda::paged_attention_heads_per_block(32, 8, 17, 256, 132), 4);
  EXPECT_EQ(cuda::paged_attention_heads_per_block(24, 8, 64, 256, 132), 3);
  // The FMA kernels' rule (version fma). B=1, ctx 4096, 32/8 heads: 8 blocks for v1 -> v2;
  // partitions shrink to 64 tokens (512 blocks).
  PagedAttentionOptions fma;
  fma.version = V::fma;
  PagedAttentionPlan p = plan_paged_attention(1, 32, 8, 128, 4096, fma);
  EXPECT_EQ(p.version, V::v2);
  EXPECT_EQ(p.partition_size, 64);
  EXPECT_EQ(p.max_num_partitions, 64);
  EXPECT_EQ(p.tmp_out_shape, (std::vector<int64_t>{1, 32, 64, 128}));
  // B=1, ctx 1000: one head per block, 32 blocks -> v2 with 64-token partitions (512 blocks).
  p = plan_paged_attention(1, 32, 8, 64, 1000, fma);
  EXPECT_EQ(p.version, V::v2);
  EXPECT_EQ(p.partition_size, 64);
  // B=64: 512 v1 blocks -> v2 with the default 512-token partitions.
  p = plan_paged_attention(64, 32, 8, 128, 4096, fma);
  EXPECT_EQ(p.version, V::v2);
  EXPECT_EQ(p.partition_size, 512);
  // The context fits one partition and the v1 grid fills the GPU -> v1, no workspace.
  p = plan_paged_attention(256, 32, 8, 128, 512, fma);
  EXPECT_EQ(p.version, V::v1);
  EXPECT_EQ(p.workspace_bytes, 0u);
}

TEST(PagedAttentionPlan, AutoIsTheTensorCoreKernelSplitToFillOneWave) {
  if (cuda_available() && (cuda::sm_count() != 132 || cuda::max_shared_bytes_per_block() < 200000))
    GTEST_SKIP() << "rule checked for 132 SMs with 227 KB of shared memory per block";
  // head 128: 108 KB of shared memory per block -> 2 blocks per SM, 264 in one wave.
  EXPECT_EQ(cuda::paged_attention_mma_blocks_per_sm(128, 228 * 1024), 2);
  EXPECT_EQ(cuda::paged_attention_mma_blocks_per_sm(64, 228 * 1024), 3);
  EXPECT_EQ(cuda::paged_attention_mma_blocks_per_sm(256, 228 * 1024), 1);
  // B=1, ctx 4096, 32/8 heads: 8 KV groups; 2048 -> 1024 -> 512 -> 256 (16 x 8 = 128 blocks
  // <= half a wave), not 128 (256 blocks).
  PagedAttentionPlan p = plan_paged_attention(1, 32, 8, 128, 4096);
  EXPECT_EQ(p.version, V::mma);
  EXPECT_EQ(p.partition_size, 256);
  EXPECT_EQ(p.max_num_partitions, 16);
  EXPECT_EQ(p.tmp_out_shape, (std::vector<int64_t>{1, 32, 16, 128}));
  // B=1, ctx 32768: partitions longer than 512 spread to a whole wave: 1024 (256 blocks).
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 128, 32768).partition_size, 1024);
  // B=64: 512 groups x 2 partitions of 2048 = 1024 blocks; halving would exceed a wave.
  p = plan_paged_attention(64, 32, 8, 128, 4096);
  EXPECT_EQ(p.version, V::mma);
  EXPECT_EQ(p.partition_size, 2048);
  EXPECT_EQ(p.max_num_partitions, 2);
  // B=256 ctx 8192: 8192 blocks, more than 4 waves: the longest partition.
  EXPECT_EQ(plan_paged_attention(256, 32, 8, 128, 8192).partition_size, 2048);
  // The context fits one partition: the kernel writes the output, no workspace.
  p = plan_paged_attention(256, 32, 8, 128, 512);
  EXPECT_EQ(p.version, V::mma);
  EXPECT_EQ(p.max_num_partitions, 1);
  EXPECT_EQ(p.workspace_bytes, 0u);
  // Groups of more than 16 query heads take several blocks: 32 heads on 1 KV head = 2 blocks
  // per token; 2 x 64 = 128 blocks at partition 64 (half a wave).
  p = plan_paged_attention(1, 32, 1, 128, 4096);
  EXPECT_EQ(p.partition_size, 64);
  EXPECT_EQ(p.max_num_partitions, 64);
  // ctx 48 fits the smallest partition: direct.
  EXPECT_EQ(plan_paged_attention(1, 32, 8, 64, 48).max_num_partitions, 1);
  PagedAttentionOptions forced;
  forced.version = V::mma;
  forced.partition_size = 4096;
  EXPECT_THROW(plan_paged_attention(1, 32, 8, 128, 8192, forced), InvalidArgument);
}

TEST(PagedAttentionPlan, WorkspaceBoundCoversEveryBatchAndContext) {
  // Exhaustive over a model's limits: no plan asks for more than the bound. Includes a long
  // prefill (many tokens, context > one partition: v2 with 512-token partitions), which a
  // decode-only bound would miss.
  for (auto [H, KV, D] : {std::tuple<int64_t, int64_t, int64_t>{32, 8, 64}, {8, 2, 128}}) {
    const int64_t max_tokens = 600;
    const int max_len = 1500;
    const size_t bound = paged_attention_workspace_bound(max_tokens, H, KV, D, max_len);
    size_t worst = 0;
    for (int64_t t = 1; t <= max_tokens; t += (t < 200 ? 1 : 37))
      for (int ctx = 1; ctx <= max_len; ctx += 7)
        worst = std::max(worst, plan_paged_attention(t, H, KV, D, ctx).workspace_bytes);
    worst = std::max(worst, plan_paged_attention(max_tokens, H, KV, D, max_len).workspace_bytes);
    EXPECT_GE(bound, worst) << "H=" << H;
    EXPECT_GT(worst, 0u);
    EXPECT_GE(bound, plan_paged_attention(max_tokens, H, KV, D, max_len).workspace_bytes);
  }
}

TEST(PagedAttentionPlan, ForcedVersionAndPartitionAreHonoured) {
  PagedAttentionOptions o;
  o.version = V::v2;
  o.partition_size = 512;
  PagedAttentionPlan p = plan_paged_attention(3, 8, 2, 64, 1025, o);
  EXPECT_EQ(p.version, V::v2);
  EXPECT_EQ(p.max_num_partitions, 3);
  EXPECT_EQ(p.exp_sums_shape, (std::vector<int64_t>{3, 8, 3}));
  EXPECT_GE(p.workspace_bytes, size_t{3 * 8 * 3 * 4 * 2 + 3 * 8 * 3 * 64 * 4});
  o.version = V::v1;
  EXPECT_EQ(plan_paged_attention(3, 8, 2, 64, 100000, o).version, V::v1);
}

// ---------------------------------------------------------------- GPU vs oracle

TEST(PagedAttentionCuda, DecodeMatchesOracleForEveryDtypeAndHeadSize) {
  DAY18_REQUIRE_GPU();
  Rng rng(18);
  for (DType dt : kDtypes)
    for (int64_t hs : cuda::kPagedAttentionHeadSizes) {
      Shape s{8, 2, hs, 16};
      std::vector<int32_t> lens;
      for (int i = 0, n = static_cast<int>(rng.randint(1, 5)); i < n; ++i)
        lens.push_back(static_cast<int32_t>(rng.randint(1, 700)));
      Problem p = make_problem(rng, dt, s, lens);
      OwnedTensor want = oracle(p);
      for (V v : {V::automatic, V::mma, V::fma, V::v1, V::v2}) {
        SCOPED_TRACE(label(dt, s, paged_attention_version_name(v).data()));
        EXPECT_CLOSE(run_gpu(p, {v, v == V::v2 || v == V::mma ? 256 : 0}), want,
                     default_tolerance(dt));
      }
    }
}

TEST(PagedAttentionCuda, ContextLengthsAtBlockAndPartitionBoundaries) {
  DAY18_REQUIRE_GPU();
  Rng rng(19);
  // 1 key; not a multiple of the block; one block exactly; around the 512-token partition.
  const std::vector<int32_t> lens = {1, 15, 16, 17, 511, 512, 513, 1025};
  for (DType dt : kDtypes) {
    Shape s{8, 2, 128, 16};
    Problem p = make_problem(rng, dt, s, lens);
    OwnedTensor want = oracle(p);
    SCOPED_TRACE(dtype_name(dt));
    EXPECT_CLOSE(run_gpu(p, {V::v1}), want, default_tolerance(dt));
    EXPECT_CLOSE(run_gpu(p, {V::v2, 512}), want, default_tolerance(dt));
    EXPECT_CLOSE(run_gpu(p, {V::automatic}), want, default_tolerance(dt));
    for (int ps : {16, 64, 512, 2048}) {
      SCOPED_TRACE(detail::concat("mma partition ", ps));
      EXPECT_CLOSE(run_gpu(p, {V::mma, ps}), want, default_tolerance(dt));
    }
  }
}

// The tensor-core kernel: query heads of a KV group are the rows of one MMA (up to 16 per block;
// larger groups take several blocks, the last one partly filled); MHA is a group of 1.
TEST(PagedAttentionCuda, MmaGroupsOf1To32QueryHeads) {
  DAY18_REQUIRE_GPU();
  Rng rng(27);
  for (DType dt : {DType::f16, DType::bf16})
    for (auto [h, kvh] : {std::pair<int64_t, int64_t>{8, 8}, {32, 8}, {32, 4}, {6, 2}, {16, 1},
                          {32, 1}, {48, 2}, {12, 1}}) {
      Shape s{h, kvh, 64, 16};
      Problem p = make_problem(rng, dt, s, {300, 77, 1000, 1});
      OwnedTensor want = oracle(p);
      for (int ps : {0, 64, 2048}) {
        SCOPED_TRACE(label(dt, s, detail::concat("mma partition ", ps).c_str()));
        EXPECT_CLOSE(run_gpu(p, {V::mma, ps}), want, default_tolerance(dt));
      }
    }
}

// Keys at every position of a 64-key tile and of a partition, for every head size, and logits
// far above exp's range (a query scaled by 40: the online softmax must rescale, not overflow).
TEST(PagedAttentionCuda, MmaTileEdgesEveryHeadSizeAndLargeLogits) {
  DAY18_REQUIRE_GPU();
  Rng rng(28);
  for (DType dt : {DType::f16, DType::bf16})
    for (int64_t hs : cuda::kPagedAttentionHeadSizes) {
      Shape s{8, 2, hs, hs == 256 ? 32 : 8};
      Problem p = make_problem(rng, dt, s, {1, 2, 63, 64, 65, 127, 128, 129, 700});
      if (hs == 128) {
        for (int64_t i = 0; i < p.query.numel(); ++i)
          host_set(p.query, i, 40.0 * host_get(p.query, i) / std::sqrt(128.0));
      }
      OwnedTensor want = oracle(p);
      for (int ps : {0, 64, 128, 2048}) {
        SCOPED_TRACE(label(dt, s, detail::concat("mma partition ", ps).c_str()));
        EXPECT_CLOSE(run_gpu(p, {V::mma, ps}), want, default_tolerance(dt));
      }
    }
}

TEST(PagedAttentionCuda, HeadSizes32And192GqaAndMhaEveryBlockSizeAndDtype) {
  // The two sizes with the extreme thread mappings: 32 (fp16: 4 threads per key, 8 keys per
  // warp load) and 192 (a warp per key, 8 of its lanes idle; fp32: 2 vectors, the second on 16
  // lanes). GQA 4, MQA 8 and MHA; contexts of 1 key, 17 (one 16-token block + 1) and across 64-
  // and 512-token partitions; decode (4 tokens, but a context past kOneHeadPerBlockMaxContext:
  // 4 query heads per block for GQA and MQA) and a causal prefill (88 tokens: 4 heads per block
  // for GQA 8/2, one for MQA 8/1); v1, v2 at both partition sizes, and the automatic plan.
  DAY18_REQUIRE_GPU();
  Rng rng(27);
  for (DType dt : kDtypes)
    for (int64_t hs : {32, 192})
      for (auto [h, kvh] : {std::pair<int64_t, int64_t>{8, 2}, {8, 1}, {4, 4}})
        for (int64_t bs : cuda::kPagedAttentionBlockSizes) {
          const Shape s{h, kvh, hs, bs};
          for (bool prefill : {false, true}) {
            const std::vector<int32_t> lens =
                prefill ? std::vector<int32_t>{17, 1, 70} : std::vector<int32_t>{1, 17, 1100, 64};
            Problem p = make_problem(rng, dt, s, lens, prefill);
            OwnedTensor want = oracle(p);
            SCOPED_TRACE(label(dt, s, prefill ? "prefill" : "decode"));
            EXPECT_CLOSE(run_gpu(p, {V::v1}), want, default_tolerance(dt));
            EXPECT_CLOSE(run_gpu(p, {V::v2, 64}), want, default_tolerance(dt));
            EXPECT_CLOSE(run_gpu(p, {V::v2, 512}), want, default_tolerance(dt));
            EXPECT_CLOSE(run_gpu(p, {V::mma, 64}), want, default_tolerance(dt));
            EXPECT_CLOSE(run_gpu(p, {V::automatic}), want, default_tolerance(dt));
          }
        }
}

TEST(PagedAttentionCuda, GqaRatios1And4And8) {
  DAY18_REQUIRE_GPU();
  Rng rng(20);
  for (DType dt : kDtypes)
    for (auto [h, kvh] : {std::pair<int64_t, int64_t>{8, 8}, {32, 8}, {32, 4}, {6, 2}}) {
      Shape s{h, kvh, 128, 16};
      Problem p = make_problem(rng, dt, s, {300, 77, 1000});
      OwnedTensor want = oracle(p);
      SCOPED_TRACE(label(dt, s, ""));
      EXPECT_CLOSE(run_gpu(p, {V::v1}), want, default_tolerance(dt));
      EXPECT_CLOSE(run_gpu(p, {V::v2, 512}), want, default_tolerance(dt));
    }
}

TEST(PagedAttentionCuda, BlockSizes8And16And32) {
  DAY18_REQUIRE_GPU();
  Rng rng(21);
  for (DType dt : kDtypes)
    for (int64_t bs : {8, 16, 32}) {
      Shape s{4, 1, 96, bs};
      Problem p = make_problem(rng, dt, s, {1, 33, 200, 600});
      OwnedTensor want = oracle(p);
      SCOPED_TRACE(label(dt, s, ""));
      EXPECT_CLOSE(run_gpu(p, {V::v1}), want, default_tolerance(dt));
      EXPECT_CLOSE(run_gpu(p, {V::v2, 64}), want, default_tolerance(dt));
    }
}

TEST(PagedAttentionCuda, V1AndV2ForcedGiveTheSameResult) {
  DAY18_REQUIRE_GPU();
  Rng rng(22);
  for (DType dt : kDtypes) {
    Shape s{16, 4, 256, 32};
    Problem p = make_problem(rng, dt, s, {1500, 2, 513});
    SCOPED_TRACE(dtype_name(dt));
    OwnedTensor a = run_gpu(p, {V::v1}), b = run_gpu(p, {V::v2, 512}), c = run_gpu(p, {V::v2, 96});
    EXPECT_CLOSE(b, a, default_tolerance(dt));
    EXPECT_CLOSE(c, a, default_tolerance(dt));
    EXPECT_CLOSE(a, oracle(p), default_tolerance(dt));
  }
}

TEST(PagedAttentionCuda, PrefillWithPerTokenContextLensIsCausal) {
  DAY18_REQUIRE_GPU();
  Rng rng(23);
  for (DType dt : kDtypes) {
    Shape s{8, 2, 64, 16};
    Problem p = make_problem(rng, dt, s, {37, 20, 130}, /*prefill=*/true);
    ASSERT_EQ(p.query.sizes()[0], 37 + 20 + 130);
    OwnedTensor want = oracle(p);
    SCOPED_TRACE(dtype_name(dt));
    EXPECT_CLOSE(run_gpu(p, {V::v1}), want, default_tolerance(dt));
    EXPECT_CLOSE(run_gpu(p, {V::v2, 32}), want, default_tolerance(dt));
    EXPECT_CLOSE(run_gpu(p), want, default_tolerance(dt));
  }
}

TEST(PagedAttentionCuda, V1ThreadCounts64To512ForFp16HeadSize128) {
  DAY18_REQUIRE_GPU();
  Rng rng(24);
  Shape s{32, 8, 128, 16};
  Problem p = make_problem(rng, DType::f16, s, {1, 100, 1000, 2049});
  OwnedTensor want = oracle(p);
  for (int nt : {64, 128, 256, 512}) {
    SCOPED_TRACE(detail::concat("num_threads ", nt));
    EXPECT_CLOSE(run_gpu(p, {V::v1, 0, nt}), want, default_tolerance(DType::f16));
  }
}

TEST(PagedAttentionCuda, PlainLaunchersAreTheConfiguredOnesAtTheirDefaults) {
  // One launch path: cuda::paged_attention_v1/v2 are the _configured launchers with 128 threads
  // (v2) and heads_per_block 0 (automatic), so their outputs are bit-identical; and like them
  // they refuse a block whose shared memory cannot fit, naming the plain call.
  DAY18_REQUIRE_GPU();
  Rng rng(28);
  Problem p = make_problem(rng, DType::f16, Shape{32, 8, 192, 16}, {300, 77, 1000, 1});
  const OwnedTensor q = p.query.to(Storage::device), kc = p.key_cache.to(Storage::device),
                    vc = p.value_cache.to(Storage::device), bt = p.block_tables.to(Storage::device),
                    si = p.seq_idx.to(Storage::device), cl = p.context_lens.to(Storage::device);
  const float scale = static_cast<float>(p.scale);
  const int ctx = p.max_context_len;
  auto out = [&] {
    OwnedTensor o(p.query.sizes(), DType::f16, Storage::device);
    poison(o);
    return o;
  };
  OwnedTensor a = out(), b = out();
  cuda::paged_attention_v1(a, q, kc, vc, bt, si, cl, scale, ctx, 128, nullptr);
  cuda::paged_attention_v1_configured(b, q, kc, vc, bt, si, cl, scale, ctx, 128, 0, nullptr);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(testing::bitwise_equal(a, b)) << "v1";
  EXPECT_CLOSE(a, oracle(p), default_tolerance(DType::f16));

  const int64_t T = p.query.sizes()[0], parts = (ctx + 255) / 256;
  OwnedTensor es({T, 32, parts}, DType::f32, Storage::device),
      ml({T, 32, parts}, DType::f32, Storage::device),
      tmp({T, 32, parts, 192}, DType::f32, Storage::device);
  OwnedTensor c = out(), d = out();
  cuda::paged_attention_v2(c, es, ml, tmp, q, kc, vc, bt, si, cl, scale, ctx, 256, nullptr);
  cuda::paged_attention_v2_configured(d, es, ml, tmp, q, kc, vc, bt, si, cl, scale, ctx, 256, 128,
                                      0, nullptr);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(testing::bitwise_equal(c, d)) << "v2";
  EXPECT_CLOSE(c, a, default_tolerance(DType::f16));

  // Device-tagged views of a small buffer with the shapes of a 600000-token context: the
  // launchers throw before anything is launched or read.
  constexpr int kCtx = 600000;
  OwnedTensor buf({1024}, DType::f32, Storage::device);
  auto view = [&](DType dt, std::vector<int64_t> shape) {
    return Tensor(buf.data(), dt, std::move(shape), Device::cuda);
  };
  const Tensor q1 = view(DType::f32, {1, 1, 64}), kc1 = view(DType::f32, {1, 1, 8, 64}),
               bt1 = view(DType::i32, {1, kCtx / 8}), m1 = view(DType::i32, {1}),
               ws = view(DType::f32, {1, 1, 1}), ws4 = view(DType::f32, {1, 1, 1, 64});
  EXPECT_INVALID_NAMING(
      cuda::paged_attention_v1(q1, q1, kc1, kc1, bt1, m1, m1, 1.f, kCtx, 128, nullptr),
      "paged_attention_v1: ");
  EXPECT_INVALID_NAMING(
      cuda::paged_attention_v1(q1, q1, kc1, kc1, bt1, m1, m1, 1.f, kCtx, 128, nullptr),
      "bytes of shared memory per block exceed");
  EXPECT_INVALID_NAMING(cuda::paged_attention_v2(q1, ws, ws, ws4, q1, kc1, kc1, bt1, m1, m1, 1.f,
                                                 kCtx, kCtx, nullptr),
                        "paged_attention_v2: ");
  EXPECT_INVALID_NAMING(
      cuda::paged_attention_v1(q1, q1, kc1, kc1, bt1, m1, m1, 1.f, 64, 96, nullptr),
      "paged_attention_v1: num_threads 96 is not compiled");
}

TEST(PagedAttentionCuda, LongContextSmallBatchAutoMatchesOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(25);
  Shape s{32, 8, 128, 16};
  Problem p = make_problem(rng, DType::bf16, s, {4096});
  EXPECT_CLOSE(run_gpu(p), oracle(p), default_tolerance(DType::bf16));
}

TEST(PagedAttentionCuda, PaddingTokenGivesZerosAndBadDeviceMetadataGivesNaN) {
  DAY18_REQUIRE_GPU();
  Rng rng(26);
  Shape s{4, 4, 64, 8};
  Problem p = make_problem(rng, DType::f16, s, {40, 9, 3});
  p.context_lens.ptr<int32_t>()[1] = 0;  // padding
  OwnedTensor want = oracle(p);
  const std::pair<V, int> runs[] = {{V::v1, 0}, {V::v2, 16}, {V::mma, 16}, {V::mma, 2048}};
  for (auto [v, ps] : runs) {
    SCOPED_TRACE(detail::concat(paged_attention_version_name(v), " partition ", ps));
    OwnedTensor got = run_gpu(p, {v, ps});
    EXPECT_CLOSE(got, want, default_tolerance(DType::f16));
    EXPECT_EQ(host_get(got, 1 * 4 * 64 + 5), 0.0);
  }
  // Device metadata is not read by the host: a seq_idx out of range yields NaN, not a crash.
  p.context_lens.ptr<int32_t>()[1] = 9;
  p.seq_idx.ptr<int32_t>()[2] = 3;  // num_seqs = 3
  for (auto [v, ps] : runs) {
    OwnedTensor got = run_gpu(p, {v, ps});
    EXPECT_TRUE(std::isnan(host_get(got, 2 * 4 * 64))) << paged_attention_version_name(v) << ps;
    EXPECT_FALSE(std::isnan(host_get(got, 0))) << paged_attention_version_name(v) << ps;
  }
}

// ---------------------------------------------------------------- bad inputs

// Runs the public call on host tensors (or device-tagged views of them: validation throws before
// any memory is touched) and expects InvalidArgument mentioning `needle`.
template <typename F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected InvalidArgument mentioning '" << needle << "'";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message does not name '" << needle << "': " << e.what();
  }
}

struct PagedAttentionBadInputs : ::testing::Test {
  Rng rng{30};
  Shape s{8, 2, 64, 16};
  Problem p = make_problem(rng, DType::f16, s, {20, 40});
  OwnedTensor out{p.query.sizes(), DType::f16, Storage::host};
  void call(const Tensor& o, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bt,
            const Tensor& si, const Tensor& cl, int max_ctx = -1) {
    paged_attention_v1(o, q, k, v, bt, si, cl, p.scale, max_ctx < 0 ? p.max_context_len : max_ctx);
  }
};

TEST_F(PagedAttentionBadInputs, WrongDtypeMixNamesTheTensor) {
  OwnedTensor k32(p.key_cache.sizes(), DType::f32, Storage::host);
  expect_invalid(
      [&] { call(out, p.query, k32, p.value_cache, p.block_tables, p.seq_idx, p.context_lens); },
      "key_cache");
  OwnedTensor bt64(p.block_tables.sizes(), DType::i64, Storage::host);
  expect_invalid(
      [&] { call(out, p.query, p.key_cache, p.value_cache, bt64, p.seq_idx, p.context_lens); },
      "block_tables");
}

TEST_F(PagedAttentionBadInputs, HeadSize72IsRejectedListingTheSupportedSizes) {
  Shape s72{8, 2, 72, 16};
  Problem q = make_problem(rng, DType::f16, s72, {5});
  OwnedTensor o(q.query.sizes(), DType::f16, Storage::host);
  expect_invalid(
      [&] {
        paged_attention_v1(o, q.query, q.key_cache, q.value_cache, q.block_tables, q.seq_idx,
                           q.context_lens, 1.0, 5);
      },
      "head_size 72 not supported (supported head_size: 32, 64, 80, 96, 112, 128, 192, 256)");
}

TEST_F(PagedAttentionBadInputs, BlockSize12IsRejected) {
  Shape s12{8, 2, 64, 12};
  Problem q = make_problem(rng, DType::f16, s12, {5});
  OwnedTensor o(q.query.sizes(), DType::f16, Storage::host);
  expect_invalid(
      [&] {
        paged_attention_v1(o, q.query, q.key_cache, q.value_cache, q.block_tables, q.seq_idx,
                           q.context_lens, 1.0, 5);
      },
      "block_size 12");
}

TEST_F(PagedAttentionBadInputs, NumHeadsNotMultipleOfNumKvHeads) {
  Shape s3{8, 3, 64, 16};
  Problem q = make_problem(rng, DType::f16, s3, {5});
  OwnedTensor o(q.query.sizes(), DType::f16, Storage::host);
  expect_invalid(
      [&] {
        paged_attention_v1(o, q.query, q.key_cache, q.value_cache, q.block_tables, q.seq_idx,
                           q.context_lens, 1.0, 5);
      },
      "num_kv_heads");
}

TEST_F(PagedAttentionBadInputs, ContextLenBeyondTheBlockTableOrMaxContextLen) {
  const int cap = static_cast<int>(p.block_tables.sizes()[1] * 16);
  p.context_lens.ptr<int32_t>()[0] = cap + 1;
  expect_invalid(
      [&] {
        call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, p.context_lens,
             cap);
      },
      "context_lens[0]");
  expect_invalid(
      [&] {
        call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, p.context_lens,
             cap + 1);
      },
      "max_context_len");
  p.context_lens.ptr<int32_t>()[0] = 30;  // <= capacity but > max_context_len passed
  expect_invalid(
      [&] {
        call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, p.context_lens,
             25);
      },
      "exceeds max_context_len");
}

TEST_F(PagedAttentionBadInputs, NegativeContextLenIsRejectedZeroIsPadding) {
  p.context_lens.ptr<int32_t>()[1] = -1;
  expect_invalid(
      [&] {
        call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, p.context_lens);
      },
      "context_lens[1] = -1");
  p.context_lens.ptr<int32_t>()[1] = 0;
  EXPECT_NO_THROW(
      call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, p.context_lens));
}

TEST_F(PagedAttentionBadInputs, SeqIdxOutOfRange) {
  p.seq_idx.ptr<int32_t>()[1] = 2;
  expect_invalid(
      [&] {
        call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, p.context_lens);
      },
      "seq_idx[1] = 2");
}

TEST_F(PagedAttentionBadInputs, PhysicalBlockIdOutOfRange) {
  p.block_tables.ptr<int32_t>()[0] = static_cast<int32_t>(p.key_cache.sizes()[0]);
  expect_invalid(
      [&] {
        call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, p.context_lens);
      },
      "block_tables[0][0]");
}

TEST_F(PagedAttentionBadInputs, MismatchedDeviceNamesTheTensor) {
  // A device-tagged view of host memory: the check fires before anything is read.
  Tensor kdev(p.key_cache.data(), DType::f16, p.key_cache.sizes(), Device::cuda);
  expect_invalid(
      [&] { call(out, p.query, kdev, p.value_cache, p.block_tables, p.seq_idx, p.context_lens); },
      "key_cache: expected a cpu tensor");
}

TEST_F(PagedAttentionBadInputs, ShapeMismatchNamesTheTensor) {
  OwnedTensor cl({3}, DType::i32, Storage::host);
  expect_invalid(
      [&] { call(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx, cl); },
      "context_lens");
  OwnedTensor vc({1, 2, 16, 64}, DType::f16, Storage::host);
  expect_invalid(
      [&] { call(out, p.query, p.key_cache, vc, p.block_tables, p.seq_idx, p.context_lens); },
      "value_cache");
}

TEST_F(PagedAttentionBadInputs, ThreadCountsOnlyWhereCompiled) {
  expect_invalid(
      [&] {
        paged_attention_v1(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx,
                           p.context_lens, p.scale, p.max_context_len, 256);
      },
      "num_threads 256");
}

TEST_F(PagedAttentionBadInputs, V1ContextTooLongForSharedMemoryPointsToV2) {
  // v1 keeps the block ids of the whole context in shared memory: 600000 tokens do not fit.
  // Device-tagged views of a small host buffer with the shapes of that problem; the check fires
  // before any launch or memory access.
  constexpr int kCtx = 600000;
  OwnedTensor buf({1024}, DType::f32, Storage::host);
  auto view = [&](DType dt, std::vector<int64_t> shape) {
    return Tensor(buf.data(), dt, std::move(shape), Device::cuda);
  };
  expect_invalid(
      [&] {
        paged_attention_v1(view(DType::f32, {1, 1, 64}), view(DType::f32, {1, 1, 64}),
                           view(DType::f32, {1, 1, 8, 64}), view(DType::f32, {1, 1, 8, 64}),
                           view(DType::i32, {1, kCtx / 8}), view(DType::i32, {1}),
                           view(DType::i32, {1}), 1.0, kCtx);
      },
      "use paged_attention_v2");
}

TEST_F(PagedAttentionBadInputs, V2WorkspaceShapesAndPartitionSize) {
  OwnedTensor es({2, 8, 1}, DType::f32, Storage::host), ml({2, 8, 1}, DType::f32, Storage::host),
      tmp({2, 8, 1, 64}, DType::f32, Storage::host);
  auto v2 = [&](int ps, const Tensor& e) {
    paged_attention_v2(out, e, ml, tmp, p.query, p.key_cache, p.value_cache, p.block_tables,
                       p.seq_idx, p.context_lens, p.scale, p.max_context_len, ps);
  };
  EXPECT_NO_THROW(v2(64, es));
  expect_invalid([&] { v2(24, es); }, "partition_size 24");
  OwnedTensor es_bad({2, 8, 2}, DType::f32, Storage::host);
  expect_invalid([&] { v2(64, es_bad); }, "exp_sums");
}

TEST_F(PagedAttentionBadInputs, MmaPartitionSizeIsAMultipleOfTheBlockAndAtMost2048) {
  auto mma = [&](int ps) {
    paged_attention_mma(out, Tensor(), Tensor(), Tensor(), p.query, p.key_cache, p.value_cache,
                        p.block_tables, p.seq_idx, p.context_lens, p.scale, p.max_context_len, ps);
  };
  EXPECT_NO_THROW(mma(64));  // one partition: no workspace needed
  expect_invalid([&] { mma(24); }, "partition_size 24");
  expect_invalid([&] { mma(0); }, "partition_size 0");
  expect_invalid([&] { mma(4096); }, "partition_size 4096");
  PagedAttentionOptions o;
  o.version = V::mma;
  o.partition_size = 4096;
  expect_invalid([&] { plan_paged_attention(2, 8, 2, 64, 40, o); }, "partition_size 4096");
}

TEST_F(PagedAttentionBadInputs, WorkspaceTooSmallIsRejected) {
  auto dev = [](const Tensor& t) { return Tensor(t.data(), t.dtype(), t.sizes(), Device::cuda); };
  PagedAttentionOptions o;
  o.version = V::v2;
  o.partition_size = 16;
  OwnedTensor ws({8}, DType::u8, Storage::host);
  expect_invalid(
      [&] {
        paged_attention(dev(out), dev(p.query), dev(p.key_cache), dev(p.value_cache),
                        dev(p.block_tables), dev(p.seq_idx), dev(p.context_lens), p.scale,
                        p.max_context_len, dev(ws), o);
      },
      "workspace");
}

TEST_F(PagedAttentionBadInputs, UnknownVersionString) {
  expect_invalid([] { parse_paged_attention_version("v3"); }, "version");
}

}  // namespace
}  // namespace day18
