// Lab 01, task 1 (CPU): where each token goes. InputBatch::prepare writes, for token t of the
// step, its position, its KV-cache slot (block_table[pos / block_size] * block_size +
// pos % block_size), the row of its sequence and its context length.
//   Hand-built steps with block tables we chose (not 0, 1, 2, ...): a chunked prefill that starts
//   in the middle of a block and crosses two boundaries, decodes that sit exactly on a boundary,
//   async scheduling (num_computed_tokens already advanced), CUDA-graph padding, a slot past
//   2^31. Then the CPU engine end to end against the model run on contiguous blocks
//   (contiguous_batch.h builds its own slot_mapping: none of your code is in the reference).
#include <vector>

#include "tests/labs/01/lab01.h"

namespace day18 {
namespace {

// Block size 4, so that four tokens already cross a block; every block table has at least four
// entries, so that a block index taken from pos % block_size still names a real block.
struct HandStep {
  RuntimeLimits lim;
  BlockManager bm{64, 0, 4, 16};
  Sequence a, b, c;
  SchedulerOutput out;

  explicit HandStep(bool advanced) {
    lim.max_num_tokens = 32;
    lim.max_num_seqs = 4;
    lim.max_model_len = 64;
    lim.kv.block_size = 4;
    lim.kv.num_blocks = 64;
    // a: a prefill chunk of positions 3..8 of a 10-token prompt (3 already computed): starts in
    // block 0 at offset 3, crosses into block 1 at position 4 and block 2 at position 8.
    a.id = 0;
    a.prompt = {100, 101, 102, 103, 104, 105, 106, 107, 108, 109};
    a.block_table = {7, 2, 5, 12};
    a.num_computed_tokens = 3;
    // b: decodes position 7 (the last of block 1).
    b.id = 1;
    b.prompt = {1, 2, 3, 4, 5};
    b.output = {6, 7, 8};
    b.block_table = {3, 9, 14, 1};
    b.num_computed_tokens = 7;
    // c: decodes position 4 (the first of block 1).
    c.id = 2;
    c.prompt = {40, 41};
    c.output = {42, 43, 44};
    c.block_table = {0, 11, 6, 13};
    c.num_computed_tokens = 4;
    for (Sequence* s : {&a, &b, &c}) s->status = SeqStatus::running;
    out.seqs = {{&a, 6, true, false}, {&b, 1, false, true}, {&c, 1, false, true}};
    out.num_prefills = 1;
    out.num_batched_tokens = 8;
    if (advanced)  // async scheduling: the scheduler counted this step's tokens already
      for (const ScheduledSeq& s : out.seqs) s.seq->num_computed_tokens += s.num_tokens;
  }
};

// The per-token arrays of a prepared step.
struct Tokens {
  std::vector<int64_t> pos, slot;
  std::vector<int32_t> sidx, ctx;
};

Tokens read_tokens(const PreparedStep& p, const InputBatch& ib) {
  const StepTensors v = StepTensors::view(p.layout, ib.staging(p.parity), Device::cpu, 0);
  const int64_t T = p.layout.num_tokens;
  const int64_t* pos = v.batch.positions.ptr<int64_t>();
  const int64_t* slot = v.batch.slot_mapping.ptr<int64_t>();
  const int32_t* sidx = v.batch.seq_idx.ptr<int32_t>();
  const int32_t* ctx = v.batch.context_lens.ptr<int32_t>();
  return {{pos, pos + T}, {slot, slot + T}, {sidx, sidx + T}, {ctx, ctx + T}};
}

using I64 = std::vector<int64_t>;
using I32 = std::vector<int32_t>;

TEST(Lab01_Task1_Slots, PositionsContinueFromTheTokensAlreadyInTheCache) {
  HandStep h(/*advanced=*/false);
  InputBatch ib(h.lim, Device::cpu);
  const PreparedStep p = ib.prepare(h.out, h.bm, 0, false, nullptr);
  ASSERT_EQ(p.layout.num_tokens, 8);
  // a: positions 3..8 (its chunk); b: 7; c: 4.
  EXPECT_EQ(read_tokens(p, ib).pos, (I64{3, 4, 5, 6, 7, 8, 7, 4}));
}

TEST(Lab01_Task1_Slots, SlotIsTheBlockTableEntryTimesBlockSizePlusTheOffset) {
  HandStep h(false);
  InputBatch ib(h.lim, Device::cpu);
  const PreparedStep p = ib.prepare(h.out, h.bm, 1, false, nullptr);
  // a: pos 3 -> block 7 offset 3 = 31; pos 4..7 -> block 2 = 8..11; pos 8 -> block 5 = 20.
  // b: pos 7 -> block 9 offset 3 = 39.   c: pos 4 -> block 11 offset 0 = 44.
  EXPECT_EQ(read_tokens(p, ib).slot, (I64{31, 8, 9, 10, 11, 20, 39, 44}))
      << "slot = block_table[pos / block_size] * block_size + pos % block_size, with the block "
         "size 4 and the block tables of this step (a: 7 2 5 12, b: 3 9 14 1, c: 0 11 6 13)";
}

TEST(Lab01_Task1_Slots, ContextLengthCountsTheTokenItselfAndSeqIdxNamesItsEntry) {
  HandStep h(false);
  InputBatch ib(h.lim, Device::cpu);
  const PreparedStep p = ib.prepare(h.out, h.bm, 0, false, nullptr);
  const Tokens t = read_tokens(p, ib);
  EXPECT_EQ(t.ctx, (I32{4, 5, 6, 7, 8, 9, 8, 5})) << "context_len = position + 1 (keys 0..pos)";
  EXPECT_EQ(t.sidx, (I32{0, 0, 0, 0, 0, 0, 1, 2})) << "seq_idx = the entry's index in out.seqs";
  EXPECT_EQ(p.max_context_len, 9);
}

TEST(Lab01_Task1_Slots, AsyncStepsStartAtComputedMinusScheduledTokens) {
  // The same step with num_computed_tokens already advanced (async scheduling): same answer.
  HandStep h(/*advanced=*/true);
  InputBatch ib(h.lim, Device::cpu);
  const PreparedStep p = ib.prepare(h.out, h.bm, 1, /*advanced=*/true, nullptr);
  const Tokens t = read_tokens(p, ib);
  EXPECT_EQ(t.pos, (I64{3, 4, 5, 6, 7, 8, 7, 4}));
  EXPECT_EQ(t.slot, (I64{31, 8, 9, 10, 11, 20, 39, 44}));
  EXPECT_EQ(t.ctx, (I32{4, 5, 6, 7, 8, 9, 8, 5}));
}

TEST(Lab01_Task1_Slots, GraphPaddingTokensKeepSlotMinusOneAndContextZero) {
  HandStep h(false);
  SchedulerOutput dec;  // b and c only: decode-only, padded to a bucket of 4
  dec.seqs = {h.out.seqs[1], h.out.seqs[2]};
  dec.num_batched_tokens = 2;
  InputBatch ib(h.lim, Device::cpu);
  const PreparedStep p = ib.prepare(dec, h.bm, 0, false, nullptr, /*pad_to=*/4, /*ctx=*/16);
  const Tokens t = read_tokens(p, ib);
  EXPECT_EQ(t.slot, (I64{39, 44, -1, -1}))
      << "padding tokens: slot -1 (reshape_and_cache skips it)";
  EXPECT_EQ(t.ctx, (I32{8, 5, 0, 0}));
  EXPECT_EQ(t.pos, (I64{7, 4, 0, 0}));
}

TEST(Lab01_Task1_Slots, ASlotPastTwoToThe31IsNotTruncatedToInt32) {
  // Block ids are i32, slots i64: 150,000,000 * 16 + 5 = 2,400,000,005 > 2^31 - 1.
  RuntimeLimits lim;
  lim.max_num_tokens = 8;
  lim.max_num_seqs = 2;
  lim.max_model_len = 64;
  lim.kv.block_size = 16;
  lim.kv.num_blocks = 4;
  BlockManager bm(4, 0, 16, lim.max_blocks_per_seq());
  Sequence s;
  s.id = 0;
  s.prompt = {1, 2, 3, 4, 5};
  s.output = {6};
  s.num_computed_tokens = 5;
  s.block_table = {150'000'000, 1, 2, 3};
  s.status = SeqStatus::running;
  SchedulerOutput out;
  out.seqs = {{&s, 1, false, true}};
  out.num_batched_tokens = 1;
  InputBatch ib(lim, Device::cpu);
  const PreparedStep p = ib.prepare(out, bm, 0, false, nullptr);
  EXPECT_EQ(read_tokens(p, ib).slot, (I64{2'400'000'005}))
      << "compute the slot in 64 bits: int64_t{block} * block_size + offset";
}

TEST(Lab01_Task1_Slots, CpuEngineTokensEqualTheModelRunOnContiguousBlocks) {
  // The whole CPU engine (scheduler, block manager, your prepare(), the CPU executor) on several
  // requests at once, so their blocks interleave; the reference runs each request alone with
  // contiguous blocks and its own slot_mapping. A token sent to the wrong slot changes the
  // attention of every later token of its sequence.
  LlamaModel ref = lab01::reference_model();
  for (bool async : {false, true}) {
    EngineConfig c = lab01::tiny_config(Device::cpu);
    c.async_scheduling = async;
    LLMEngine engine(c);
    const auto prompts = lab01::random_prompts(5, engine.model().config().vocab_size, 11);
    const std::vector<SamplingParams> ps(prompts.size(), lab01::greedy(12));
    const auto outs = lab01::run_engine(engine, prompts, ps);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<int32_t> want = lab01::reference_greedy(ref, prompts[i], 12);
      EXPECT_EQ(outs[i], want) << "request " << i << ", async scheduling " << async;
    }
  }
}

}  // namespace
}  // namespace day18
