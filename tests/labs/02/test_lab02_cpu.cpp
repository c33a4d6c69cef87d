// Lab 02, task 1: the CPU reference of PagedAttention (engine/cpu/paged_attention.cpp), the
// oracle every GPU version is checked against and the engine's CPU backend.
//
// What each test catches:
//   goldens          everything at once, against PyTorch (GQA 4:1 and 2:1, prefill, head 256)
//   context 1        the softmax of one logit is 1: the output IS the value row (GQA mapping,
//                    block table, normalization), bit for bit
//   two keys         logits 0 and ln 3 weigh the values 1 : 3 (the scale, the sum)
//   context 17       the 17th key sits alone in the second block (the block table walk, the
//                    last key of the context)
//   +-1000 logits    exp() overflows (or underflows to 0/0) unless the max is subtracted: the
//                    oracle works in double, where exp overflows past 709
//   rearranged       moving the blocks, or repeating the KV heads, must not change one bit
#include "tests/labs/02/lab02.h"

namespace day18 {
namespace {

using namespace lab02;  // NOLINT: the lab's helpers

TEST(Lab02_Task1_CpuReference, MatchesPyTorchGoldensEveryDtype) {
  for (DType dt : kDtypes)
    for (const char* g : kGoldens) expect_golden(g, dt, Device::cpu);
}

TEST(Lab02_Task1_CpuReference, ContextOfOneKeyReturnsThatKeysValueRow) {
  // 8 query heads on 2 KV heads (GQA 4:1): heads 0-3 must return KV head 0's value row, heads
  // 4-7 KV head 1's. The key sits in physical block 2, not 0.
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{8, 2, 64, 16}, {0.7}, value_of);
    LAB_EXPECT_CLOSE(run_cpu(p), expected(p), Tolerance{});
  }
}

TEST(Lab02_Task1_CpuReference, TwoKeysWithLogitsZeroAndLn3WeighOneToThree) {
  // scale * q . k = 0 and ln 3: softmax = (1/4, 3/4). v_0 = +(d+1)/64, v_1 = -(d+1)/64, so
  // out[d] = (1/4 - 3/4)(d+1)/64 = -(d+1)/128 (up to the rounding of k in fp16/bf16). Without
  // the scale (1/8 here) the logits are 0 and 8 ln 3: out[d] = -(d+1)/64 almost exactly.
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p =
        crafted(dt, Shape{4, 1, 64, 16}, {0.0, std::log(3.0)}, [](int64_t, int64_t t, int64_t d) {
          return (t == 0 ? 1.0 : -1.0) * static_cast<double>(d + 1) / 64.0;
        });
    const OwnedTensor want = expected(p);
    if (dt == DType::f32) {
      EXPECT_NEAR(host_get(want, 63), -0.5, 1e-6);  // d = 63: -64/128
    }
    LAB_EXPECT_CLOSE(run_cpu(p), want, default_tolerance(dt));
  }
}

TEST(Lab02_Task1_CpuReference, Context17WithBlock16ReadsTheKeyInTheSecondBlock) {
  // Keys 0..15 (block 0 of the sequence) have logit 0, key 16 (alone in block 1) logit ln 16:
  // weights 1/32 each and 1/2. With v_t[d] = t + 1 + d/64 + kvh/2: out[d] = 136/32 + 17/2 +
  // d/64 + kvh/2 = 12.75 + d/64 + kvh/2. Dropping key 16 gives 8.5 + ..., a key read from the
  // wrong block reads a trap (logit 40, value 1000).
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<double> logits(17, 0.0);
    logits[16] = std::log(16.0);
    const Problem p =
        crafted(dt, Shape{8, 2, 64, 16}, logits, [](int64_t kvh, int64_t t, int64_t d) {
          return static_cast<double>(t + 1) + static_cast<double>(d) / 64 + 0.5 * kvh;
        });
    const OwnedTensor want = expected(p);
    if (dt == DType::f32) {
      EXPECT_NEAR(host_get(want, 0), 12.75, 1e-5);
    }
    LAB_EXPECT_CLOSE(run_cpu(p), want, default_tolerance(dt));
  }
}

TEST(Lab02_Task1_CpuReference, StableForLogitsAbove1000) {
  // Query head 0's logits are 1000, 1000 + ln 3 and 990 (weights ~1/4, ~3/4, 1e-5; the other
  // heads see them / 16). exp(1000) is inf even in double: without the max subtracted head 0
  // gets inf / inf = NaN.
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{4, 2, 64, 16}, {1000.0, 1000.0 + std::log(3.0), 990.0},
                              value_of, /*damped=*/true);
    LAB_EXPECT_CLOSE(run_cpu(p), expected(p), default_tolerance(dt));
  }
}

TEST(Lab02_Task1_CpuReference, StableForLogitsBelowMinus1000) {
  // The same below zero: exp(-1000) is 0 in double, so without the max subtracted head 0's
  // weights are 0 / 0 = NaN. With it they are the same as above: softmax ignores a shift.
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Problem p = crafted(dt, Shape{4, 2, 64, 16}, {-1000.0, -1000.0 + std::log(3.0), -1010.0},
                              value_of, /*damped=*/true);
    LAB_EXPECT_CLOSE(run_cpu(p), expected(p), default_tolerance(dt));
  }
}

TEST(Lab02_Task1_CpuReference, GqaQueryHeadsReadTheirGroupsKvHead) {
  // The same problem with every KV head repeated for its query heads (MHA) must give the same
  // output, bit for bit: query head h reads KV head h / (num_heads / num_kv_heads).
  Rng rng(201);
  for (auto [h, kvh] : {std::pair<int64_t, int64_t>{32, 8}, {8, 2}, {8, 1}, {6, 3}})
    for (DType dt : kDtypes) {
      const Shape s{h, kvh, 64, 16};
      const Problem p = make_problem(rng, dt, s, {40, 1, 17});
      SCOPED_TRACE(testing::label(dt, s, "decode contexts 40,1,17"));
      LAB_EXPECT_CLOSE(run_cpu(p), run_cpu(repeat_kv_heads(p)), Tolerance{});
    }
}

TEST(Lab02_Task1_CpuReference, BlockTableDecidesWhereKeysLiveNotTheBlockOrder) {
  // Moving every physical block elsewhere in the cache (and the block tables with them) must
  // not change a bit of the output, for every block size and a prefill batch.
  Rng rng(202);
  for (int64_t bs : {8, 16, 32})
    for (DType dt : kDtypes) {
      const Shape s{8, 2, 64, bs};
      const Problem p = make_problem(rng, dt, s, {3 * static_cast<int32_t>(bs) + 1, 5, 70});
      SCOPED_TRACE(testing::label(dt, s, "decode"));
      LAB_EXPECT_CLOSE(run_cpu(p), run_cpu(relocate_blocks(p, rng)), Tolerance{});
    }
  const Problem pre = make_problem(rng, DType::f32, Shape{4, 2, 64, 8}, {20, 9}, true);
  SCOPED_TRACE("prefill");
  LAB_EXPECT_CLOSE(run_cpu(pre), run_cpu(relocate_blocks(pre, rng)), Tolerance{});
}

TEST(Lab02_Task1_CpuReference, PaddingTokenGivesZerosAndLeavesTheOthersAlone) {
  // context_len 0 marks a padding token (a CUDA graph's pad slot): zeros. The tokens around it
  // must not change.
  Rng rng(203);
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    Problem p = make_problem(rng, dt, Shape{8, 2, 64, 16}, {30, 9, 50});
    const OwnedTensor before = run_cpu(p);
    p.context_lens.ptr<int32_t>()[1] = 0;
    const OwnedTensor got = run_cpu(p);
    LAB_EXPECT_CLOSE(token_rows(got, 0, 1), token_rows(before, 0, 1), Tolerance{});
    LAB_EXPECT_CLOSE(token_rows(got, 2, 1), token_rows(before, 2, 1), Tolerance{});
    for (int64_t i = 0; i < 8 * 64; ++i)
      ASSERT_EQ(host_get(got, 8 * 64 + i), 0.0) << "token 1 (padding), element " << i;
  }
}

}  // namespace
}  // namespace day18
