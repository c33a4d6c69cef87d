// BlockManager: on-demand allocation, slot numbers, free, swap mappings and its error messages.
#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "engine/core/error.h"
#include "engine/runtime/block_manager.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

Sequence make_seq(int64_t id, int64_t prompt_len) {
  Sequence s;
  s.id = id;
  s.prompt.resize(static_cast<size_t>(prompt_len));
  std::iota(s.prompt.begin(), s.prompt.end(), 100);
  s.status = SeqStatus::running;
  return s;
}

// What a step does to a sequence after its blocks are allocated: the tokens are computed.
void compute(BlockManager& bm, Sequence& s, int64_t n) {
  bm.allocate(s, n);
  s.num_computed_tokens += n;
}

TEST(BlockManager, FreshPoolHandsOutBlocksZeroOneTwo) {
  BlockManager bm(8, 4, 16, 8);
  EXPECT_EQ(bm.num_free_gpu_blocks(), 8);
  EXPECT_EQ(bm.num_free_cpu_blocks(), 4);
  EXPECT_EQ(bm.block_size(), 16);
  Sequence s = make_seq(0, 40);
  bm.allocate(s, 40);  // ceil(40 / 16) = 3 blocks
  EXPECT_EQ(s.block_table, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(bm.num_free_gpu_blocks(), 5);
  for (int b = 0; b < 3; ++b) EXPECT_EQ(bm.gpu_block_owner(b), 0);
  EXPECT_EQ(bm.gpu_block_owner(3), -1);
}

TEST(BlockManager, AllocatesOnlyWhenATokenCrossesABlockBoundary) {
  BlockManager bm(8, 0, 4, 8);
  Sequence s = make_seq(7, 5);
  EXPECT_EQ(bm.num_required_blocks(s, 5), 2);
  compute(bm, s, 5);  // positions 0..4: blocks for 0-3 and 4-7
  EXPECT_EQ(s.block_table.size(), 2u);
  // Decode positions 5, 6, 7 fit in the second block: no new block.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(bm.num_required_blocks(s, 1), 0);
    compute(bm, s, 1);
    EXPECT_EQ(s.block_table.size(), 2u);
  }
  // Position 8 starts block 3.
  EXPECT_EQ(bm.num_required_blocks(s, 1), 1);
  compute(bm, s, 1);
  EXPECT_EQ(s.block_table.size(), 3u);
  EXPECT_EQ(bm.num_free_gpu_blocks(), 5);
  // A zero-token allocation changes nothing.
  bm.allocate(s, 0);
  EXPECT_EQ(s.block_table.size(), 3u);
}

TEST(BlockManager, SlotIsBlockTimesBlockSizePlusOffset) {
  BlockManager bm(8, 0, 4, 8);
  Sequence a = make_seq(0, 4), b = make_seq(1, 4), c = make_seq(2, 10);
  compute(bm, a, 4);   // block 0
  compute(bm, b, 4);   // block 1
  bm.free(a);          // block 0 back on top of the free stack
  compute(bm, c, 10);  // blocks 0, 2, 3: a non-contiguous table
  ASSERT_EQ(c.block_table, (std::vector<int32_t>{0, 2, 3}));
  const int64_t expected[10] = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13};
  for (int64_t p = 0; p < 10; ++p) EXPECT_EQ(bm.slot(c, p), expected[p]) << "position " << p;
  EXPECT_EQ(bm.slot(b, 2), 6);
  // Slots beyond the table (even inside the pool) are refused, naming the sequence.
  EXPECT_THROW_WITH(bm.slot(c, 12), InvalidArgument, "position 12", "sequence 2");
  EXPECT_THROW_WITH(bm.slot(c, -1), InvalidArgument, "position -1");
}

TEST(BlockManager, FreeReturnsEveryBlockAndClearsTheTable) {
  BlockManager bm(6, 0, 2, 6);
  Sequence a = make_seq(0, 7), b = make_seq(1, 3);
  compute(bm, a, 7);
  compute(bm, b, 3);
  EXPECT_EQ(bm.num_free_gpu_blocks(), 0);
  bm.free(a);
  EXPECT_TRUE(a.block_table.empty());
  EXPECT_EQ(bm.num_free_gpu_blocks(), 4);
  for (int blk = 0; blk < 4; ++blk) EXPECT_EQ(bm.gpu_block_owner(blk), -1);
  bm.free(b);
  EXPECT_EQ(bm.num_free_gpu_blocks(), 6);
  bm.free(b);  // an empty table: nothing to free
  EXPECT_EQ(bm.num_free_gpu_blocks(), 6);
}

TEST(BlockManager, FreeingABlockTheSequenceDoesNotOwnIsCaught) {
  BlockManager bm(4, 0, 2, 4);
  Sequence a = make_seq(0, 4), b = make_seq(1, 2);
  compute(bm, a, 4);
  compute(bm, b, 2);
  Sequence stale = a;  // a copy of a's table, as a bug would keep
  bm.free(a);
  EXPECT_THROW_WITH(bm.free(stale), Error, "does not own", "GPU block");
  b.block_table.push_back(0);  // a block that is free
  EXPECT_THROW_WITH(bm.free(b), Error, "sequence 1", "does not own");
  EXPECT_EQ(bm.num_free_gpu_blocks(), 3);  // the failed frees changed nothing
}

TEST(BlockManager, CanAllocateIsFalseWhenThePoolIsExhausted) {
  BlockManager bm(3, 0, 4, 8);
  Sequence a = make_seq(0, 8), b = make_seq(1, 8);
  compute(bm, a, 8);  // 2 blocks
  EXPECT_TRUE(bm.can_allocate(b, 4));
  EXPECT_FALSE(bm.can_allocate(b, 5));
  EXPECT_THROW_WITH(bm.allocate(b, 8), InvalidArgument, "sequence 1", "needs 2", "only 1");
  EXPECT_TRUE(b.block_table.empty());  // nothing taken on failure
  EXPECT_EQ(bm.num_free_gpu_blocks(), 1);
}

TEST(BlockManager, MaxBlocksPerSeqCapsOneSequence) {
  BlockManager bm(16, 0, 4, 2);
  Sequence s = make_seq(3, 8);
  EXPECT_TRUE(bm.can_allocate(s, 8));
  EXPECT_FALSE(bm.can_allocate(s, 9));  // 3 blocks > max_blocks_per_seq 2, pool has 16
  EXPECT_THROW_WITH(bm.allocate(s, 9), InvalidArgument, "sequence 3", "max_blocks_per_seq 2");
  compute(bm, s, 8);
  EXPECT_FALSE(bm.can_allocate(s, 1));
  EXPECT_TRUE(bm.can_ever_fit(8));
  EXPECT_FALSE(bm.can_ever_fit(9));
}

TEST(BlockManager, CanEverFitAccountsForTheReservedBlocks) {
  BlockManager bm(4, 0, 4, 100);
  EXPECT_TRUE(bm.can_ever_fit(16));
  EXPECT_FALSE(bm.can_ever_fit(17));
  EXPECT_FALSE(bm.can_ever_fit(16, 1));
  EXPECT_TRUE(bm.can_ever_fit(12, 1));
  EXPECT_EQ(bm.blocks_for_tokens(0), 0);
  EXPECT_EQ(bm.blocks_for_tokens(1), 1);
  EXPECT_EQ(bm.blocks_for_tokens(4), 1);
  EXPECT_EQ(bm.blocks_for_tokens(5), 2);
}

TEST(BlockManager, SwapOutMapsEveryGpuBlockToACpuBlock) {
  BlockManager bm(4, 4, 2, 4);
  Sequence a = make_seq(0, 2), b = make_seq(1, 5);
  compute(bm, a, 2);  // block 0
  compute(bm, b, 5);  // blocks 1, 2, 3
  ASSERT_TRUE(bm.can_swap_out(b));
  const auto out = bm.swap_out(b);
  const std::vector<std::pair<int64_t, int64_t>> expected = {{1, 0}, {2, 1}, {3, 2}};
  EXPECT_EQ(out, expected);  // (gpu, cpu) in position order
  EXPECT_EQ(b.status, SeqStatus::swapped);
  EXPECT_EQ(b.block_table, (std::vector<int32_t>{0, 1, 2}));  // now CPU ids
  EXPECT_EQ(b.num_computed_tokens, 5);                        // the KV is kept, in the CPU pool
  EXPECT_EQ(bm.num_free_gpu_blocks(), 3);
  EXPECT_EQ(bm.num_free_cpu_blocks(), 1);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(bm.cpu_block_owner(c), 1);
  EXPECT_FALSE(bm.can_allocate(b, 1));  // a swapped sequence gets no GPU blocks
  EXPECT_THROW_WITH(bm.allocate(b, 1), InvalidArgument, "swapped");
  EXPECT_THROW_WITH(bm.slot(b, 0), InvalidArgument, "swapped");
  EXPECT_THROW_WITH(bm.swap_out(b), InvalidArgument, "already swapped");
}

TEST(BlockManager, SwapInMapsBackToFreeGpuBlocks) {
  BlockManager bm(3, 3, 2, 3);
  Sequence a = make_seq(0, 6);
  compute(bm, a, 6);  // GPU 0, 1, 2
  const auto out = bm.swap_out(a);
  Sequence b = make_seq(1, 2);
  compute(bm, b, 2);  // takes GPU 2 (the last freed, top of the stack)
  EXPECT_EQ(b.block_table, (std::vector<int32_t>{2}));
  EXPECT_FALSE(bm.can_swap_in(a));  // needs 3, 2 free
  bm.free(b);
  ASSERT_TRUE(bm.can_swap_in(a));
  const auto in = bm.swap_in(a);
  ASSERT_EQ(in.size(), 3u);
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(in[i].first, out[i].second) << "swap-in reads the CPU block swap-out wrote";
    EXPECT_EQ(a.block_table[i], in[i].second);
  }
  EXPECT_EQ(a.status, SeqStatus::running);
  EXPECT_EQ(bm.num_free_cpu_blocks(), 3);
  EXPECT_EQ(bm.num_free_gpu_blocks(), 0);
  std::set<int32_t> blocks(a.block_table.begin(), a.block_table.end());
  EXPECT_EQ(blocks.size(), 3u);
  EXPECT_THROW_WITH(bm.swap_in(a), InvalidArgument, "not swapped");
}

TEST(BlockManager, SwapOutIsRefusedWhenTheCpuPoolIsFull) {
  BlockManager bm(4, 1, 2, 4);
  Sequence a = make_seq(0, 4);
  compute(bm, a, 4);
  EXPECT_FALSE(bm.can_swap_out(a));
  EXPECT_THROW_WITH(bm.swap_out(a), InvalidArgument, "sequence 0", "CPU swap pool");
  EXPECT_EQ(a.status, SeqStatus::running);
  EXPECT_EQ(bm.num_free_cpu_blocks(), 1);
}

TEST(BlockManager, FreeingASwappedSequenceReturnsCpuBlocks) {
  BlockManager bm(2, 2, 2, 2);
  Sequence a = make_seq(0, 3);
  compute(bm, a, 3);
  bm.swap_out(a);
  EXPECT_EQ(bm.num_free_cpu_blocks(), 0);
  bm.free(a);
  EXPECT_EQ(bm.num_free_cpu_blocks(), 2);
  EXPECT_EQ(bm.num_free_gpu_blocks(), 2);
}

TEST(BlockManager, ConstructorRejectsBadSizesNamingThem) {
  EXPECT_THROW_WITH(BlockManager(0, 0, 16, 8), InvalidArgument, "num_gpu_blocks", "0");
  EXPECT_THROW_WITH(BlockManager(4, -1, 16, 8), InvalidArgument, "num_cpu_blocks", "-1");
  EXPECT_THROW_WITH(BlockManager(4, 0, 0, 8), InvalidArgument, "block_size", "0");
  EXPECT_THROW_WITH(BlockManager(4, 0, 16, 0), InvalidArgument, "max_blocks_per_seq", "0");
}

}  // namespace
}  // namespace day18
