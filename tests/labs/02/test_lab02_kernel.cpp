// Lab 02, tasks 2-4: the readable PagedAttention kernel
// (engine/kernels/paged_attention_readable.cu), phase 1 (QK), phase 2 (softmax), phase 3 (PV).
//
// The three phases are one kernel and only phase 3 writes the output, so every test here runs
// the whole kernel, and all of them report "not implemented yet" until the three regions are
// written. Each task's suite is aimed at what its phase gets wrong, so that once they run, a
// failing suite points at the phase to reread:
//   Task 2 (QK)       two keys of known logits (the scale), a context crossing blocks of a
//                     shuffled block table (17 with block 16, block sizes 8/16/32), GQA 4:1 and
//                     MQA (the KV head of each query head), prefill's per-token contexts
//   Task 3 (softmax)  logits above 80 and below -200 (a naive exp overflows, or gives 0 / 0), one
//                     dominant key, the largest logit in the last warp, contexts far longer than
//                     the 128 threads (every warp's part of the max and of the sum)
//   Task 4 (PV)       context 1 (the output IS the value row), each output dim from its own
//                     column of V, head 256 (two dims per thread), every head size, padding,
//                     the PyTorch goldens and random shapes; then the timing
// References: hand-made problems (lab02::crafted, the answer is a formula), the PyTorch goldens,
// and the engine's optimized kernel (v2) on the same random inputs: never your task 1.
#include <iterator>

#include "engine/kernels/paged_attention.h"
#include "engine/kernels/paged_attention_readable.h"
#include "tests/labs/02/lab02.h"

namespace day18 {
namespace {

using namespace lab02;  // NOLINT: the lab's helpers

// ============================================================ Task 2: phase 1, QK

TEST(Lab02_Task2_Qk, TwoKeysWithKnownLogitsWeighOneToThree) {
  // scale * q . k = 0 and ln 3 (head 128, scale 1/sqrt(128)): softmax (1/4, 3/4), out[d] =
  // (1/4 v_0 + 3/4 v_1)[d]. A missing scale makes the second logit 11.3 * ln 3: weights ~(0, 1).
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 128, 16}, {0.0, std::log(3.0)}, value_of);
    LAB_EXPECT_CLOSE(run_kernel(p), expected(p), default_tolerance(dt));
  }
}

TEST(Lab02_Task2_Qk, Context17WithBlock16ReadsTheKeyInTheSecondBlock) {
  // Hand-made first: 16 keys of logit 0 in the sequence's first block, key 16 of logit ln 16
  // alone in its second one (weights 1/32 and 1/2); the blocks are physical 3 and 2 of a cache
  // whose other blocks hold traps. Then random inputs, with shuffled block tables, vs the
  // optimized kernel: contexts 17, 33 (two blocks and one key), 15 (less than a block).
  DAY18_REQUIRE_GPU();
  std::vector<double> logits(17, 0.0);
  logits[16] = std::log(16.0);
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 128, 16}, logits, value_of);
    LAB_EXPECT_CLOSE(run_kernel(p), expected(p), default_tolerance(dt));
  }
  Rng rng(211);
  expect_kernel_matches_optimized_every_dtype(rng, Shape{8, 2, 128, 16}, {17, 33, 15});
}

TEST(Lab02_Task2_Qk, EveryBlockSizeWithContextsEndingMidBlock) {
  // Block sizes 8, 16, 32: key t is slot t % block_size of logical block t / block_size.
  DAY18_REQUIRE_GPU();
  Rng rng(212);
  for (int32_t bs : {8, 16, 32})
    expect_kernel_matches_optimized_every_dtype(rng, Shape{8, 2, 64, bs},
                                                {bs + 1, 3 * bs - 1, 1, bs, 200});
}

TEST(Lab02_Task2_Qk, GqaFourToOneAndMqaReadTheKvHeadOfEachQueryHead) {
  // Query head h reads KV head h / (num_heads / num_kv_heads): Llama-3-8B's 32/8 and 8/2 (4:1),
  // MQA (8/1, 16/1), 6/3 (2:1) and MHA (4/4) for contrast.
  DAY18_REQUIRE_GPU();
  Rng rng(213);
  for (auto [h, kvh] :
       {std::pair<int64_t, int64_t>{32, 8}, {8, 2}, {8, 1}, {16, 1}, {6, 3}, {4, 4}})
    expect_kernel_matches_optimized_every_dtype(rng, Shape{h, kvh, 128, 16}, {300, 77, 1});
}

TEST(Lab02_Task2_Qk, PrefillTokensAttendOnlyToTheirOwnPrefix) {
  // One query token per prompt position p with context_len p + 1 (per token, not per sequence):
  // token p reads keys 0..p of its sequence only.
  DAY18_REQUIRE_GPU();
  Rng rng(214);
  expect_kernel_matches_optimized_every_dtype(rng, Shape{8, 2, 64, 16}, {37, 20, 130}, true);
}

// ============================================================ Task 3: phase 2, softmax

TEST(Lab02_Task3_Softmax, StableForLogitsAbove80) {
  // Query head 0's logits are 80..98: expf(88.8) is already inf in fp32, so without the max
  // subtracted head 0 gets inf / inf = NaN (the other heads see the logits / 16). Head 64
  // (scale 1/8, a power of two) keeps these logits exact in every dtype.
  DAY18_REQUIRE_GPU();
  std::vector<double> logits(200);
  for (size_t t = 0; t < logits.size(); ++t) logits[t] = 80.0 + static_cast<double>(t % 7) * 3;
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 64, 16}, logits, value_of, /*damped=*/true);
    const OwnedTensor got = run_kernel(p);
    LAB_EXPECT_CLOSE(got, expected(p), default_tolerance(dt));
    LAB_EXPECT_CLOSE(got, run_optimized(p), default_tolerance(dt));
  }
}

TEST(Lab02_Task3_Softmax, StableForLogitsBelowMinus200) {
  // expf(-200) is 0 in fp32: without the max subtracted head 0's weights are 0 / 0 = NaN.
  DAY18_REQUIRE_GPU();
  std::vector<double> logits(150);
  for (size_t t = 0; t < logits.size(); ++t) logits[t] = -200.0 - static_cast<double>(t % 5);
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 64, 16}, logits, value_of, /*damped=*/true);
    LAB_EXPECT_CLOSE(run_kernel(p), expected(p), default_tolerance(dt));
  }
}

TEST(Lab02_Task3_Softmax, OneDominantKeyGivesItsValueRow) {
  // Key 250 of 1000 has logit 30, the others 0: its weight is 1 - 999 e^-30 (1 - 1e-10), so
  // every head returns that key's value row of its KV head.
  DAY18_REQUIRE_GPU();
  std::vector<double> logits(1000, 0.0);
  logits[250] = 30.0;
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 128, 16}, logits, value_of);
    const OwnedTensor got = run_kernel(p);
    OwnedTensor row({1, 8, 128}, DType::f32, Storage::host);
    for (int64_t h = 0; h < 8; ++h)
      for (int64_t d = 0; d < 128; ++d) host_set(row, h * 128 + d, value_of(h / 4, 250, d));
    LAB_EXPECT_CLOSE(got, row, default_tolerance(dt));
    LAB_EXPECT_CLOSE(got, expected(p), default_tolerance(dt));
  }
}

TEST(Lab02_Task3_Softmax, LargestLogitInTheLastWarpStillSetsTheMax) {
  // 300 keys of logit 0 but key 100 (thread 100: warp 3 of 4) with logit 100. A max taken over
  // one warp only (0) leaves expf(100) = inf in the sum, and head 0 gets NaN.
  DAY18_REQUIRE_GPU();
  std::vector<double> logits(300, 0.0);
  logits[100] = 100.0;
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 64, 16}, logits, value_of, /*damped=*/true);
    LAB_EXPECT_CLOSE(run_kernel(p), expected(p), default_tolerance(dt));
  }
}

TEST(Lab02_Task3_Softmax, LongContextsSumOverEveryThreadAndWarp) {
  // 128 threads: contexts of 129 (one thread takes two keys), 1000 and 3000 keys (each thread
  // ~24) need every thread's part of the max and of the sum, from all 4 warps.
  DAY18_REQUIRE_GPU();
  Rng rng(231);
  expect_kernel_matches_optimized_every_dtype(rng, Shape{8, 2, 128, 16}, {129, 1000, 3000});
  expect_kernel_matches_optimized_every_dtype(rng, Shape{4, 1, 64, 32}, {33, 5000});
}

// ============================================================ Task 4: phase 3, PV

TEST(Lab02_Task4_Pv, ContextOfOneKeyReturnsThatKeysValueRow) {
  // The softmax of one logit is exactly 1, so out = 1 * v / 1 = v: bit for bit the value row
  // of KV head h / 4 (8 query heads on 2 KV heads), in every dtype.
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 128, 16}, {0.7}, value_of);
    LAB_EXPECT_CLOSE(run_kernel(p), expected(p), Tolerance{});
  }
}

TEST(Lab02_Task4_Pv, EachOutputDimSumsItsOwnColumnOfV) {
  // All logits 0 (weights 1/300) and one-hot value rows: v_t[d] = 300 where d = (t + 3 kvh) % D,
  // else 0. Then out[d] = the number of keys t with that d: 3 or 2 for D = 128 (4 or 3 for 80,
  // 2 or 1 for 256), which dims get the larger count depending on the KV head. Head 80 leaves 48
  // of the 128 threads without a dim; head 256 gives each thread two.
  DAY18_REQUIRE_GPU();
  for (int64_t D : {80, 128, 256})
    for (DType dt : kDtypes) {
      SCOPED_TRACE(detail::concat(dtype_name(dt), " head_size ", D));
      const Problem p = crafted(
          dt, Shape{8, 2, D, 16}, std::vector<double>(300, 0.0),
          [D](int64_t kvh, int64_t t, int64_t d) { return d == (t + 3 * kvh) % D ? 300.0 : 0.0; });
      LAB_EXPECT_CLOSE(run_kernel(p), expected(p), default_tolerance(dt));
    }
}

TEST(Lab02_Task4_Pv, HeadSize256GivesEachThreadTwoOutputDims) {
  // Then every supported head size (80, 96, 112 are no multiple of the 32 threads of a warp; 32
  // leaves three warps idle; 192 gives threads 0-63 two dims and the others one).
  DAY18_REQUIRE_GPU();
  Rng rng(241);
  expect_kernel_matches_optimized_every_dtype(rng, Shape{8, 2, 256, 16}, {1, 200, 700});
  for (int hs : cuda::kPagedAttentionHeadSizes)
    expect_kernel_matches_optimized_every_dtype(rng, Shape{4, 2, hs, 16}, {5, 130});
}

TEST(Lab02_Task4_Pv, PaddingTokenGivesZerosBesideRealTokens) {
  // The last token has context_len 0 (a CUDA graph's pad slot): the prologue writes its zeros.
  // The real tokens before it must still be right.
  DAY18_REQUIRE_GPU();
  Rng rng(242);
  const Shape s{4, 4, 64, 8};
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    Problem p = make_problem(rng, dt, s, {40, 9, 3});
    p.context_lens.ptr<int32_t>()[2] = 0;
    const OwnedTensor got = run_kernel(p), want = run_optimized(p);
    LAB_ASSERT_CLOSE(token_rows(got, 0, 2), token_rows(want, 0, 2), default_tolerance(dt));
    for (int64_t i = 0; i < s.num_heads * s.head_size; ++i)
      ASSERT_EQ(host_get(got, 2 * s.num_heads * s.head_size + i), 0.0) << "token 2, element " << i;
  }
}

TEST(Lab02_Task4_Pv, MatchesPyTorchGoldensEveryDtype) {
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes)
    for (const char* g : kGoldens) expect_golden(g, dt, Device::cuda);
}

TEST(Lab02_Task4_Pv, MatchesTheOptimizedKernelOnRandomShapesEveryDtype) {
  // Random heads (MHA, GQA, MQA), head sizes, block sizes and 1-5 sequences of 1..1200 keys.
  DAY18_REQUIRE_GPU();
  Rng rng(243);
  const std::pair<int64_t, int64_t> heads[] = {{8, 8}, {8, 2}, {32, 8}, {6, 3}, {4, 1}};
  const int64_t last_hs = std::size(cuda::kPagedAttentionHeadSizes) - 1;
  const int64_t last_bs = std::size(cuda::kPagedAttentionBlockSizes) - 1;
  for (DType dt : kDtypes)
    for (int i = 0; i < 6; ++i) {
      const auto [h, kvh] = heads[rng.randint(0, std::size(heads) - 1)];
      const Shape s{h, kvh, cuda::kPagedAttentionHeadSizes[rng.randint(0, last_hs)],
                    cuda::kPagedAttentionBlockSizes[rng.randint(0, last_bs)]};
      std::vector<int32_t> lens;
      for (int j = 0, n = static_cast<int>(rng.randint(1, 5)); j < n; ++j)
        lens.push_back(static_cast<int32_t>(rng.randint(1, 1200)));
      expect_kernel_matches_optimized(make_problem(rng, dt, s, lens),
                                      testing::label(dt, s, detail::concat("case ", i).c_str()));
    }
}

// ------------------------------------------------------------ timing (scripts/lab check, GPU)

// Decode shapes of Llama-3-8B's attention (32 query heads on 8 KV heads, head 128, fp16, block
// 16): B sequences of C tokens each. Bytes: every K and V row of the batch read once, q read and
// out written: 2 * B * C * 8 * 128 * 2 + 2 * B * 32 * 128 * 2. Keys "b<B>_ctx<C>_f16" (your
// kernel, scripts/lab plot 02 draws them) and "optimized_b<B>_ctx<C>_f16" (the engine's
// optimized kernel, the stretch goal: both builds time it, so its ratio is ~1).
constexpr int64_t kHeads = 32, kKvHeads = 8, kHeadSize = 128, kBlock = 16;
constexpr int64_t kBatches[] = {1, 8, 64};
constexpr int64_t kContexts[] = {256, 1024, 4096};

void time_decode_shapes(bool optimized) {
  const int64_t total_blocks = 64 * 4096 / kBlock;  // the largest shape's cache, shared
  const std::vector<int64_t> cache_shape = {total_blocks, kKvHeads, kBlock, kHeadSize};
  OwnedTensor kc(cache_shape, DType::f16, Storage::device),
      vc(cache_shape, DType::f16, Storage::device);
  {  // random values, tiled: the time does not depend on them, filling 0.5 G of them would
    Rng rng(251);
    const OwnedTensor chunk = rng.normal_tensor({1 << 20}, DType::f16, 0, 1);
    for (const OwnedTensor* c : {&kc, &vc})
      for (int64_t i = 0; i < c->numel(); i += chunk.numel())
        copy_tensor(Tensor(static_cast<char*>(c->data()) + i * 2, DType::f16, {chunk.numel()},
                           Device::cuda),
                    chunk);
  }
  Rng rng(252);
  std::vector<int32_t> perm(total_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = total_blocks - 1; i > 0; --i) std::swap(perm[i], perm[rng.randint(0, i)]);
  Stream stream;
  for (int64_t B : kBatches)
    for (int64_t C : kContexts) {
      const int64_t nb = C / kBlock;
      OwnedTensor bt({B, nb}, DType::i32, Storage::host), si({B}, DType::i32, Storage::host),
          cl({B}, DType::i32, Storage::host);
      for (int64_t i = 0; i < B * nb; ++i) bt.ptr<int32_t>()[i] = perm[i];  // scattered blocks
      for (int64_t b = 0; b < B; ++b) {
        si.ptr<int32_t>()[b] = static_cast<int32_t>(b);
        cl.ptr<int32_t>()[b] = static_cast<int32_t>(C);
      }
      const OwnedTensor bt_d = bt.to(Storage::device), si_d = si.to(Storage::device),
                        cl_d = cl.to(Storage::device);
      const OwnedTensor q =
          rng.normal_tensor({B, kHeads, kHeadSize}, DType::f16, 0, 1, Storage::device);
      OwnedTensor out({B, kHeads, kHeadSize}, DType::f16, Storage::device);
      const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadSize));
      const double bytes = 2.0 * B * C * kKvHeads * kHeadSize * 2 + 2.0 * q.nbytes();
      const std::string key =
          detail::concat(optimized ? "optimized_" : "", "b", B, "_ctx", C, "_f16");
      if (optimized) {
        const PagedAttentionPlan plan =
            plan_paged_attention(B, kHeads, kKvHeads, kHeadSize, static_cast<int>(C));
        OwnedTensor ws({static_cast<int64_t>(std::max<size_t>(plan.workspace_bytes, 1))}, DType::u8,
                       Storage::device);
        lab::time_and_record(
            key, bytes,
            [&](cudaStream_t st) {
              paged_attention(out, q, kc, vc, bt_d, si_d, cl_d, scale, static_cast<int>(C), ws, {},
                              st);
            },
            stream);
      } else {
        lab::time_and_record(
            key, bytes,
            [&](cudaStream_t st) {
              cuda::paged_attention_readable(out, q, kc, vc, bt_d, si_d, cl_d,
                                             static_cast<float>(scale), static_cast<int>(C), st);
            },
            stream);
      }
    }
}

TEST(Lab02_Task4_Pv, TimingOfYourKernelOnDecodeShapes) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  time_decode_shapes(/*optimized=*/false);
}

TEST(Lab02_Task4_Pv, TimingOfTheOptimizedKernelOnTheSameShapes) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  time_decode_shapes(/*optimized=*/true);
}

}  // namespace
}  // namespace day18
