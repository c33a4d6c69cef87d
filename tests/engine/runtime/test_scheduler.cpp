// Scheduler: admission (FCFS, token budget, sequence limit), chunked prefill, decode, stopping,
// preemption by swap and by recompute, its error messages, and end-to-end simulations that check
// the block pools and a fake KV cache after every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <string>

#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/runtime/scheduler.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

std::vector<int32_t> prompt_of(int64_t n, int32_t first = 1) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), first);
  return p;
}

SamplingParams max_tokens(int32_t n, int32_t eos = -1, bool ignore_eos = false) {
  SamplingParams p;
  p.max_tokens = n;
  p.eos_token_id = eos;
  p.ignore_eos = ignore_eos;
  return p;
}

SchedulerConfig config(int64_t budget, int64_t max_seqs, int64_t max_model_len = 1024) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.max_model_len = max_model_len;
  c.watermark = 0;
  return c;
}

std::vector<int64_t> ids_of(const SchedulerOutput& out) {
  std::vector<int64_t> ids;
  for (const ScheduledSeq& s : out.seqs) ids.push_back(s.seq->id);
  return ids;
}

std::vector<int64_t> ids_of(const std::deque<Sequence*>& q) {
  std::vector<int64_t> ids;
  for (const Sequence* s : q) ids.push_back(s->id);
  return ids;
}

std::vector<int64_t> tokens_of(const SchedulerOutput& out) {
  std::vector<int64_t> n;
  for (const ScheduledSeq& s : out.seqs) n.push_back(s.num_tokens);
  return n;
}

// One token per scheduled sequence, all equal.
std::vector<int32_t> all(const SchedulerOutput& out, int32_t token) {
  return std::vector<int32_t>(out.seqs.size(), token);
}

// Runs schedule + process_outputs with `token` sampled everywhere; returns the output.
SchedulerOutput step(Scheduler& s, int32_t token = 9) {
  SchedulerOutput out = s.schedule();
  s.process_outputs(out, all(out, token));
  return out;
}

// ---------------------------------------------------------------------------------------------
// add_request and configuration

TEST(Scheduler, AddRequestReturnsIdsInArrivalOrderAndQueuesThem) {
  BlockManager bm(64, 0, 16, 64);
  Scheduler s(config(256, 8), bm);
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_EQ(s.add_request(prompt_of(3), max_tokens(4)), 0);
  EXPECT_EQ(s.add_request(prompt_of(5), max_tokens(4)), 1);
  EXPECT_EQ(s.add_request(prompt_of(2), max_tokens(4)), 2);
  EXPECT_TRUE(s.has_unfinished());
  EXPECT_EQ(ids_of(s.waiting()), (std::vector<int64_t>{0, 1, 2}));
  const Sequence& seq = s.sequence(1);
  EXPECT_EQ(seq.status, SeqStatus::waiting);
  EXPECT_EQ(seq.len(), 5);
  EXPECT_EQ(seq.num_computed_tokens, 0);
  EXPECT_TRUE(seq.block_table.empty());
  EXPECT_THROW_WITH(s.sequence(3), InvalidArgument, "unknown request id 3");
}

TEST(Scheduler, AddRequestRejectsBadInputNamingTheRequest) {
  BlockManager bm(64, 0, 16, 64);
  Scheduler s(config(256, 8, 32), bm);
  EXPECT_THROW_WITH(s.add_request({}, max_tokens(4)), InvalidArgument, "request 0",
                    "prompt is empty");
  EXPECT_THROW_WITH(s.add_request(prompt_of(33), max_tokens(4)), InvalidArgument, "request 0",
                    "33 tokens", "max_model_len 32");
  EXPECT_THROW_WITH(s.add_request({1, -5, 2}, max_tokens(4)), InvalidArgument, "request 0",
                    "token 1", "-5");
  SamplingParams p;
  p.temperature = -1.f;
  EXPECT_THROW_WITH(s.add_request(prompt_of(3), p), InvalidArgument, "request 0", "temperature");
  p = SamplingParams{};
  p.top_p = 0.f;
  EXPECT_THROW_WITH(s.add_request(prompt_of(3), p), InvalidArgument, "top_p", "0");
  p = SamplingParams{};
  p.top_k = -1;
  EXPECT_THROW_WITH(s.add_request(prompt_of(3), p), InvalidArgument, "top_k", "-1");
  EXPECT_THROW_WITH(s.add_request(prompt_of(3), max_tokens(0)), InvalidArgument, "max_tokens", "0");
  // Rejected requests consume no id and leave no trace.
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_EQ(s.add_request(prompt_of(32), max_tokens(4)), 0);  // exactly max_model_len is fine
}

TEST(Scheduler, RequestThatCanNeverFitInTheGpuPoolIsRejectedNamingIt) {
  BlockManager bm(4, 100, 4, 100);  // 16 token slots on the GPU; the CPU pool does not help
  Scheduler s(config(256, 8), bm);
  // prompt 10 + max_tokens 10 - 1 = 19 positions = 5 blocks > 4.
  EXPECT_THROW_WITH(s.add_request(prompt_of(10), max_tokens(10)), InvalidArgument, "request 0",
                    "can never fit", "19 KV positions", "5 blocks", "GPU pool has 4 blocks");
  // 10 + 7 - 1 = 16 positions = 4 blocks: fits exactly.
  EXPECT_EQ(s.add_request(prompt_of(10), max_tokens(7)), 0);
  EXPECT_THROW_WITH(s.add_request(prompt_of(17), max_tokens(1)), InvalidArgument, "request 1",
                    "can never fit");
}

TEST(Scheduler, RequestLongerThanMaxBlocksPerSeqIsRejected) {
  BlockManager bm(100, 0, 4, 2);  // a sequence may hold 8 positions
  Scheduler s(config(256, 8), bm);
  EXPECT_THROW_WITH(s.add_request(prompt_of(8), max_tokens(2)), InvalidArgument, "request 0",
                    "can never fit", "max_blocks_per_seq 2");
  EXPECT_EQ(s.add_request(prompt_of(8), max_tokens(1)), 0);
}

TEST(Scheduler, NeverFitCountsTheMaxModelLenCap) {
  BlockManager bm(3, 0, 4, 100);  // 12 positions
  Scheduler s(config(256, 8, 13), bm);
  // max_tokens is huge, but max_model_len 13 stops the sequence at 13 tokens: 12 KV positions.
  EXPECT_EQ(s.add_request(prompt_of(10), max_tokens(1000)), 0);
}

TEST(Scheduler, WatermarkBlocksAreNeverCountedAsAvailable) {
  BlockManager bm(10, 0, 4, 100);
  SchedulerConfig c = config(256, 8);
  c.watermark = 0.2;  // 2 of 10 blocks
  Scheduler s(c, bm);
  EXPECT_EQ(s.watermark_blocks(), 2);
  EXPECT_THROW_WITH(s.add_request(prompt_of(33), max_tokens(1)), InvalidArgument, "can never fit",
                    "2 kept free by the watermark");
  EXPECT_EQ(s.add_request(prompt_of(32), max_tokens(1)), 0);
}

TEST(Scheduler, ConfigIsValidated) {
  BlockManager bm(8, 0, 4, 8);
  EXPECT_THROW_WITH(Scheduler(config(4, 8), bm), InvalidArgument, "max_num_batched_tokens (4)",
                    "max_num_seqs (8)");
  EXPECT_THROW_WITH(Scheduler(config(8, 0), bm), InvalidArgument, "max_num_seqs", "0");
  EXPECT_THROW_WITH(Scheduler(config(8, 8, 0), bm), InvalidArgument, "max_model_len", "0");
  SchedulerConfig c = config(8, 8);
  c.watermark = 1.0;
  EXPECT_THROW_WITH(Scheduler(c, bm), InvalidArgument, "watermark");
}

// ---------------------------------------------------------------------------------------------
// Admission, budget, chunked prefill, decode

TEST(Scheduler, PrefillsAreAdmittedFirstComeFirstServed) {
  BlockManager bm(64, 0, 4, 64);
  Scheduler s(config(256, 8), bm);
  s.add_request(prompt_of(3), max_tokens(4));
  s.add_request(prompt_of(5), max_tokens(4));
  s.add_request(prompt_of(2), max_tokens(4));
  const SchedulerOutput out = s.schedule();
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(tokens_of(out), (std::vector<int64_t>{3, 5, 2}));
  EXPECT_EQ(out.num_prefills, 3);
  EXPECT_EQ(out.num_decodes(), 0);
  EXPECT_EQ(out.num_batched_tokens, 10);
  for (const ScheduledSeq& q : out.seqs) {
    EXPECT_TRUE(q.is_prefill);
    EXPECT_TRUE(q.do_sample);
    EXPECT_EQ(q.seq->status, SeqStatus::running);
    EXPECT_EQ(q.seq->num_computed_tokens, 0);  // advanced by process_outputs, after the step
  }
  // Blocks for exactly the scheduled tokens: 1 + 2 + 1.
  EXPECT_EQ(bm.num_free_gpu_blocks(), 60);
  EXPECT_EQ(ids_of(s.running()), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_TRUE(s.waiting().empty());
}

TEST(Scheduler, TokenBudgetIsRespectedAndTheLastPromptIsChunked) {
  BlockManager bm(64, 0, 4, 64);
  Scheduler s(config(16, 4), bm);
  s.add_request(prompt_of(8), max_tokens(4));
  s.add_request(prompt_of(6), max_tokens(4));
  s.add_request(prompt_of(8), max_tokens(4));
  s.add_request(prompt_of(1), max_tokens(4));
  SchedulerOutput out = s.schedule();
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(tokens_of(out), (std::vector<int64_t>{8, 6, 2}));  // 2 = what the budget leaves
  EXPECT_EQ(out.num_batched_tokens, 16);
  EXPECT_TRUE(out.seqs[0].do_sample);
  EXPECT_FALSE(out.seqs[2].do_sample);  // the chunk stops short of the prompt's end
  EXPECT_EQ(ids_of(s.waiting()), (std::vector<int64_t>{3}));  // no budget left for it
  s.process_outputs(out, all(out, 9));
  EXPECT_EQ(s.sequence(2).num_computed_tokens, 2);
  EXPECT_TRUE(s.sequence(2).output.empty());  // its sample was discarded

  // Step 2: prefills first (the rest of 2, then the newly admitted 3), then the decodes 0, 1.
  out = s.schedule();
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{2, 3, 0, 1}));
  EXPECT_EQ(tokens_of(out), (std::vector<int64_t>{6, 1, 1, 1}));
  EXPECT_EQ(out.num_prefills, 2);
  EXPECT_EQ(out.num_batched_tokens, 9);
  s.process_outputs(out, all(out, 9));
}

TEST(Scheduler, SequenceLimitIsRespected) {
  BlockManager bm(64, 0, 4, 64);
  Scheduler s(config(64, 2), bm);
  for (int i = 0; i < 3; ++i) s.add_request(prompt_of(3), max_tokens(2));
  SchedulerOutput out = step(s);
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(ids_of(s.waiting()), (std::vector<int64_t>{2}));
  out = s.schedule();  // two decodes; 2 still waits although budget and blocks are plenty
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0, 1}));
  const auto finished = s.process_outputs(out, all(out, 9));
  EXPECT_EQ(finished.size(), 2u);  // max_tokens 2 reached
  out = step(s);
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{2}));
}

TEST(Scheduler, ChunkedPrefillSpansStepsAndDiscardsPartialSamples) {
  BlockManager bm(64, 0, 4, 64);
  Scheduler s(config(8, 2), bm);
  const int64_t id = s.add_request(prompt_of(20), max_tokens(4));
  const Sequence& seq = s.sequence(id);
  const int64_t chunks[3] = {8, 8, 4};
  for (int i = 0; i < 3; ++i) {
    const SchedulerOutput out = s.schedule();
    ASSERT_EQ(out.seqs.size(), 1u);
    EXPECT_EQ(out.seqs[0].num_tokens, chunks[i]);
    EXPECT_TRUE(out.seqs[0].is_prefill);
    EXPECT_EQ(out.seqs[0].do_sample, i == 2);
    EXPECT_EQ(seq.block_table.size(), static_cast<size_t>((8 * i + chunks[i] + 3) / 4));
    s.process_outputs(out, {50 + i});
  }
  EXPECT_EQ(seq.num_computed_tokens, 20);
  EXPECT_EQ(seq.output, (std::vector<int32_t>{52}));  // only the last chunk's sample is kept
  EXPECT_EQ(s.stats().num_partial_prefills, 2);
  EXPECT_EQ(s.stats().num_prefill_tokens, 20);
  const SchedulerOutput out = s.schedule();  // now a decode of token 52 at position 20
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_FALSE(out.seqs[0].is_prefill);
  EXPECT_EQ(out.seqs[0].num_tokens, 1);
  EXPECT_EQ(seq.token(seq.num_computed_tokens), 52);
  EXPECT_EQ(out.num_prefills, 0);
}

TEST(Scheduler, DecodeAndAChunkedPrefillShareAStepPrefillFirst) {
  BlockManager bm(64, 0, 4, 64);
  Scheduler s(config(8, 4), bm);
  s.add_request(prompt_of(2), max_tokens(8));
  step(s);
  s.add_request(prompt_of(20), max_tokens(8));
  const SchedulerOutput out = s.schedule();
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(tokens_of(out), (std::vector<int64_t>{7, 1}));  // decode 1 + chunk of 7 = budget 8
  EXPECT_EQ(out.num_prefills, 1);
  EXPECT_TRUE(out.seqs[0].is_prefill);
  EXPECT_FALSE(out.seqs[1].is_prefill);
  s.process_outputs(out, all(out, 9));
}

TEST(Scheduler, DecodeComputesTheLastSampledTokenInItsNextSlot) {
  BlockManager bm(64, 0, 4, 64);
  Scheduler s(config(64, 4), bm);
  const int64_t id = s.add_request(prompt_of(3), max_tokens(8));
  step(s, 42);
  const Sequence& seq = s.sequence(id);
  EXPECT_EQ(seq.output, (std::vector<int32_t>{42}));
  EXPECT_EQ(seq.num_computed_tokens, 3);
  EXPECT_EQ(seq.num_uncomputed_tokens(), 1);
  SchedulerOutput out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_FALSE(out.seqs[0].is_prefill);
  EXPECT_EQ(out.seqs[0].num_tokens, 1);
  EXPECT_TRUE(out.seqs[0].do_sample);
  // What the input batch feeds: token 42 at position 3, slot 3 of the first block.
  EXPECT_EQ(seq.token(3), 42);
  EXPECT_EQ(bm.slot(seq, 3), seq.block_table[0] * 4 + 3);
  s.process_outputs(out, {43});
  // Position 4 crosses into a second block.
  out = s.schedule();
  EXPECT_EQ(seq.block_table.size(), 2u);
  EXPECT_EQ(bm.slot(seq, 4), seq.block_table[1] * 4);
  s.process_outputs(out, {44});
  EXPECT_EQ(seq.output, (std::vector<int32_t>{42, 43, 44}));
}

// ---------------------------------------------------------------------------------------------
// Stopping

TEST(Scheduler, StopsAtMaxTokensAndFreesTheBlocks) {
  BlockManager bm(8, 0, 4, 8);
  Scheduler s(config(64, 4), bm);
  const int64_t id = s.add_request(prompt_of(5), max_tokens(3));
  std::vector<Sequence*> finished;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(finished.empty()) << "finished early, at step " << i;
    const SchedulerOutput out = s.schedule();
    finished = s.process_outputs(out, {7});
  }
  ASSERT_EQ(finished.size(), 1u);
  const Sequence& seq = *finished[0];
  EXPECT_EQ(seq.id, id);
  EXPECT_EQ(seq.status, SeqStatus::finished);
  EXPECT_EQ(seq.finish_reason, FinishReason::length);
  EXPECT_EQ(seq.output.size(), 3u);
  EXPECT_TRUE(seq.block_table.empty());
  EXPECT_EQ(bm.num_free_gpu_blocks(), 8);
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_TRUE(s.running().empty());
  EXPECT_TRUE(s.schedule().empty());
  EXPECT_GE(seq.finish_time, seq.first_token_time);
  EXPECT_GE(seq.first_token_time, seq.first_scheduled_time);
  EXPECT_GE(seq.first_scheduled_time, seq.arrival_time);
  s.release(id);
  EXPECT_THROW_WITH(s.sequence(id), InvalidArgument, "unknown request id");
}

TEST(Scheduler, StopsAtEos) {
  BlockManager bm(8, 0, 4, 8);
  Scheduler s(config(64, 4), bm);
  const int64_t id = s.add_request(prompt_of(2), max_tokens(10, /*eos=*/7));
  const int32_t samples[3] = {5, 6, 7};
  std::vector<Sequence*> finished;
  for (int32_t t : samples) {
    EXPECT_TRUE(finished.empty());
    const SchedulerOutput out = s.schedule();
    finished = s.process_outputs(out, {t});
  }
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0]->finish_reason, FinishReason::stop);
  EXPECT_EQ(s.sequence(id).output, (std::vector<int32_t>{5, 6, 7}));  // EOS is kept in output
  EXPECT_FALSE(s.has_unfinished());
}

TEST(Scheduler, IgnoreEosRunsToMaxTokens) {
  BlockManager bm(8, 0, 4, 8);
  Scheduler s(config(64, 4), bm);
  const int64_t id = s.add_request(prompt_of(2), max_tokens(4, /*eos=*/7, /*ignore_eos=*/true));
  int steps = 0;
  while (s.has_unfinished()) {
    step(s, 7);
    ++steps;
  }
  EXPECT_EQ(steps, 4);
  EXPECT_EQ(s.sequence(id).output, (std::vector<int32_t>{7, 7, 7, 7}));
  EXPECT_EQ(s.sequence(id).finish_reason, FinishReason::length);
}

TEST(Scheduler, StopsAtMaxModelLen) {
  BlockManager bm(8, 0, 4, 8);
  Scheduler s(config(64, 4, /*max_model_len=*/6), bm);
  const int64_t a = s.add_request(prompt_of(4), max_tokens(100));
  const int64_t b = s.add_request(prompt_of(6), max_tokens(100));  // prompt = max_model_len
  while (s.has_unfinished()) step(s);
  EXPECT_EQ(s.sequence(a).output.size(), 2u);
  EXPECT_EQ(s.sequence(a).finish_reason, FinishReason::model_len);
  EXPECT_EQ(s.sequence(b).output.size(), 1u);
  EXPECT_EQ(s.sequence(b).finish_reason, FinishReason::model_len);
}

// ---------------------------------------------------------------------------------------------
// Preemption

// A pool of 4 blocks of 2 tokens; two requests of 3 prompt tokens and 4 output tokens need 3
// blocks each at the end: they cannot both grow.
struct TinyPool {
  static constexpr int64_t kGpuBlocks = 4, kBlockSize = 2;
  BlockManager bm;
  Scheduler s;
  explicit TinyPool(int64_t cpu_blocks)
      : bm(kGpuBlocks, cpu_blocks, kBlockSize, 8), s(config(64, 8), bm) {
    s.add_request(prompt_of(3), max_tokens(4));  // A = 0
    s.add_request(prompt_of(3), max_tokens(4));  // B = 1
  }
};

TEST(Scheduler, PreemptsTheNewestBySwapWhenBlocksRunOutAndSwapsItBackIn) {
  TinyPool t(/*cpu_blocks=*/8);
  Scheduler& s = t.s;
  step(s);  // both prefill 3 tokens: 2 blocks each, pool full
  step(s);  // both decode position 3: still inside their second blocks
  EXPECT_EQ(t.bm.num_free_gpu_blocks(), 0);
  const std::vector<int32_t> b_gpu_blocks = s.sequence(1).block_table;

  // Position 4 needs a third block: the oldest (A) keeps running, the newest (B) is swapped out.
  SchedulerOutput out = s.schedule();
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0}));
  ASSERT_EQ(out.preempted.size(), 1u);
  const Sequence& b = s.sequence(1);
  EXPECT_EQ(out.preempted[0], &b);
  EXPECT_EQ(b.status, SeqStatus::swapped);
  EXPECT_EQ(b.num_computed_tokens, 4);  // its KV is kept, in the CPU pool
  EXPECT_EQ(b.num_preemptions, 1);
  ASSERT_EQ(out.swap_out.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out.swap_out[i].first, b_gpu_blocks[i]);
    EXPECT_EQ(out.swap_out[i].second, b.block_table[i]);  // CPU ids now
  }
  EXPECT_TRUE(out.swap_in.empty());
  EXPECT_EQ(ids_of(s.swapped()), (std::vector<int64_t>{1}));
  EXPECT_EQ(ids_of(s.running()), (std::vector<int64_t>{0}));
  const std::vector<int32_t> b_cpu_blocks = b.block_table;
  s.process_outputs(out, all(out, 9));

  // A decodes position 5; B needs 3 blocks back but only 1 is free: stays swapped.
  out = step(s);
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0}));
  EXPECT_TRUE(out.swap_in.empty());
  EXPECT_EQ(s.sequence(0).status, SeqStatus::finished);  // its 4th token

  // A's blocks are back: B is swapped in (its 2 blocks) and decodes position 4 (a new block).
  out = s.schedule();
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{1}));
  EXPECT_FALSE(out.seqs[0].is_prefill);
  ASSERT_EQ(out.swap_in.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out.swap_in[i].first, b_cpu_blocks[i]);
    EXPECT_EQ(out.swap_in[i].second, b.block_table[i]);
  }
  EXPECT_EQ(b.block_table.size(), 3u);
  EXPECT_EQ(b.status, SeqStatus::running);
  EXPECT_EQ(t.bm.num_free_cpu_blocks(), 8);
  s.process_outputs(out, all(out, 9));
  while (s.has_unfinished()) step(s);
  EXPECT_EQ(b.output.size(), 4u);
  EXPECT_EQ(s.stats().num_preemptions, 1);
  EXPECT_EQ(s.stats().num_swap_outs, 1);
  EXPECT_EQ(s.stats().num_swap_ins, 1);
  EXPECT_EQ(s.stats().num_blocks_swapped_out, 2);
  EXPECT_EQ(s.stats().num_blocks_swapped_in, 2);
  EXPECT_EQ(s.stats().num_recomputes, 0);
  EXPECT_EQ(t.bm.num_free_gpu_blocks(), TinyPool::kGpuBlocks);
}

TEST(Scheduler, PreemptsByRecomputeWhenTheCpuPoolIsFull) {
  TinyPool t(/*cpu_blocks=*/0);
  Scheduler& s = t.s;
  step(s, 11);
  step(s, 12);
  SchedulerOutput out = s.schedule();
  ASSERT_EQ(out.preempted.size(), 1u);
  const Sequence& b = s.sequence(1);
  EXPECT_EQ(b.status, SeqStatus::waiting);  // back in the queue, KV dropped ...
  EXPECT_EQ(b.num_computed_tokens, 0);
  EXPECT_TRUE(b.block_table.empty());
  EXPECT_EQ(b.output, (std::vector<int32_t>{11, 12}));  // ... output kept
  EXPECT_TRUE(out.swap_out.empty());
  EXPECT_EQ(ids_of(s.waiting()), (std::vector<int64_t>{1}));
  s.process_outputs(out, all(out, 13));
  out = step(s, 14);  // A's last token; B (5 tokens = 3 blocks) does not fit in the 1 free block
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0}));
  // B recomputes prompt + output as one prefill; its sample continues the output.
  out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].seq, &b);
  EXPECT_TRUE(out.seqs[0].is_prefill);
  EXPECT_EQ(out.seqs[0].num_tokens, 5);
  EXPECT_TRUE(out.seqs[0].do_sample);
  s.process_outputs(out, {21});
  EXPECT_EQ(b.output, (std::vector<int32_t>{11, 12, 21}));
  while (s.has_unfinished()) step(s, 22);
  EXPECT_EQ(b.output, (std::vector<int32_t>{11, 12, 21, 22}));
  EXPECT_EQ(s.stats().num_recomputes, 1);
  EXPECT_EQ(s.stats().num_swap_outs, 0);
}

TEST(Scheduler, SwappedSequencesResumeBeforeNewPrefills) {
  TinyPool t(/*cpu_blocks=*/8);
  Scheduler& s = t.s;
  step(s);
  step(s);
  step(s);  // B swapped out
  ASSERT_EQ(ids_of(s.swapped()), (std::vector<int64_t>{1}));
  s.add_request(prompt_of(1), max_tokens(1));  // C = 2 would fit in the free block ...
  SchedulerOutput out = step(s);
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0}));  // ... but waits behind the swapped B
  EXPECT_EQ(ids_of(s.waiting()), (std::vector<int64_t>{2}));
  out = s.schedule();  // A finished: B swapped in, then C admitted; prefill C listed first
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(out.num_prefills, 1);
  EXPECT_EQ(out.swap_in.size(), 2u);
  s.process_outputs(out, all(out, 9));
  while (s.has_unfinished()) step(s);
}

TEST(Scheduler, NewestRunningSequenceIsTheVictimTheOldestNever) {
  // Three sequences in 6 blocks of 1 token: every decode needs a new block.
  BlockManager bm(6, 64, 1, 16);
  Scheduler s(config(64, 8), bm);
  for (int i = 0; i < 3; ++i) s.add_request(prompt_of(2), max_tokens(4));
  step(s);  // 2 blocks each: the pool is full
  auto preempted_ids = [](const SchedulerOutput& out) {
    std::vector<int64_t> ids;
    for (const Sequence* p : out.preempted) ids.push_back(p->id);
    return ids;
  };
  // 0 needs a block: the newest (2) goes, which frees enough for 0 and 1.
  SchedulerOutput out = s.schedule();
  EXPECT_EQ(preempted_ids(out), (std::vector<int64_t>{2}));
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0, 1}));
  s.process_outputs(out, all(out, 9));
  // 0 needs a block again: now 1 is the newest running sequence.
  out = s.schedule();
  EXPECT_EQ(preempted_ids(out), (std::vector<int64_t>{1}));
  EXPECT_EQ(ids_of(out), (std::vector<int64_t>{0}));
  EXPECT_EQ(ids_of(s.swapped()), (std::vector<int64_t>{1, 2}));
  s.process_outputs(out, all(out, 9));
  while (s.has_unfinished()) step(s);
  for (int64_t id = 0; id < 3; ++id) EXPECT_EQ(s.sequence(id).output.size(), 4u);
  EXPECT_EQ(s.sequence(0).num_preemptions, 0);
}

// ---------------------------------------------------------------------------------------------
// Contract checks

TEST(Scheduler, ProcessOutputsChecksTheSampleCountAndTheStep) {
  BlockManager bm(64, 0, 4, 64);
  Scheduler s(config(8, 4), bm);
  s.add_request(prompt_of(2), max_tokens(4));
  s.add_request(prompt_of(20), max_tokens(4));
  SchedulerOutput out = s.schedule();  // 0: full prompt; 1: partial chunk (no sample)
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_THROW_WITH(s.process_outputs(out, {1, 2, 3}), InvalidArgument, "3 sampled tokens",
                    "2 scheduled");
  EXPECT_THROW_WITH(s.schedule(), Error, "not processed yet");
  s.process_outputs(out, {5});  // one per sampling sequence is accepted too
  EXPECT_EQ(s.sequence(0).output, (std::vector<int32_t>{5}));
  EXPECT_TRUE(s.sequence(1).output.empty());
  EXPECT_THROW_WITH(s.process_outputs(out, {5}), InvalidArgument, "step 0");
  const SchedulerOutput next = s.schedule();
  EXPECT_THROW_WITH(s.process_outputs(out, {5, 6}), InvalidArgument, "step 0", "is 1");
  // next = [1: chunk of 7 (no sample), 0: decode]; a bad token changes nothing.
  ASSERT_EQ(ids_of(next), (std::vector<int64_t>{1, 0}));
  EXPECT_THROW_WITH(s.process_outputs(next, {6, -1}), InvalidArgument, "sequence 0", "negative");
  EXPECT_EQ(s.sequence(1).num_computed_tokens, 6);
  s.process_outputs(next, {6, 7});
  EXPECT_EQ(s.sequence(0).output, (std::vector<int32_t>{5, 7}));
  EXPECT_EQ(s.sequence(1).num_computed_tokens, 13);
  EXPECT_THROW_WITH(s.release(0), InvalidArgument, "not finished");
}

// ---------------------------------------------------------------------------------------------
// End-to-end simulations: random requests, fake samples, small pools. After every step the pools
// are checked, and a fake KV cache (each slot remembers which sequence, position and token wrote
// it; swaps copy it) proves that every scheduled sequence finds all of its earlier tokens where
// its block table says, so no swap mapping, slot or freed block is wrong.

struct SimSpec {
  std::string name;
  uint64_t seed;
  int64_t num_requests, gpu_blocks, cpu_blocks, block_size, max_blocks_per_seq;
  int64_t budget, max_seqs, max_model_len;
  int64_t max_prompt, max_new_tokens;
  double watermark = 0;
  int64_t initial_requests = -1;  // arriving before step 0 (-1 = all); the rest arrive over time
};

struct KvEntry {
  int64_t seq = -1, pos = -1;
  int32_t token = -1;
  bool operator==(const KvEntry&) const = default;
};

constexpr int32_t kVocab = 37;
constexpr int32_t kDiscarded = 1000;  // sampled for partial prefills: must never show up

// The token a sequence samples as its k-th output: a fixed function, so the test knows the
// whole expected output in advance.
int32_t fake_sample(int64_t id, int64_t k) {
  uint64_t x = static_cast<uint64_t>(id) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(k) + 1;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<int32_t>(x % kVocab);
}

std::vector<int32_t> expected_output(int64_t id, int64_t prompt_len, const SamplingParams& p,
                                     int64_t max_model_len) {
  std::vector<int32_t> out;
  for (int64_t k = 0;; ++k) {
    const int32_t t = fake_sample(id, k);
    out.push_back(t);
    if (!p.ignore_eos && p.eos_token_id >= 0 && t == p.eos_token_id) break;
    if (static_cast<int64_t>(out.size()) >= p.max_tokens) break;
    if (prompt_len + static_cast<int64_t>(out.size()) >= max_model_len) break;
  }
  return out;
}

class Simulation {
 public:
  explicit Simulation(const SimSpec& spec)
      : spec_(spec),
        rng_(spec.seed),
        bm_(spec.gpu_blocks, spec.cpu_blocks, spec.block_size, spec.max_blocks_per_seq),
        sched_(make_config(spec), bm_),
        gpu_kv_(static_cast<size_t>(spec.gpu_blocks * spec.block_size)),
        cpu_kv_(static_cast<size_t>(spec.cpu_blocks * spec.block_size)) {}

  void run() {
    const int64_t initial =
        spec_.initial_requests < 0 ? spec_.num_requests : spec_.initial_requests;
    for (int64_t i = 0; i < initial; ++i) add_random_request();
    int64_t steps = 0;
    while (sched_.has_unfinished() || submitted_ < spec_.num_requests) {
      ASSERT_LT(steps++, 100000) << "no progress";
      if (submitted_ < spec_.num_requests && rng_.uniform() < 0.3) add_random_request();
      const SchedulerOutput out = sched_.schedule();
      if (sched_.has_unfinished()) {
        ASSERT_FALSE(out.empty()) << "stalled at step " << steps;
      }
      check_schedule(out);
      if (::testing::Test::HasFatalFailure()) return;
      run_fake_step(out);
      if (::testing::Test::HasFatalFailure()) return;
      std::vector<int32_t> sampled;
      for (const ScheduledSeq& q : out.seqs)
        sampled.push_back(q.do_sample ? fake_sample(q.seq->id, q.seq->output_len()) : kDiscarded);
      for (Sequence* f : sched_.process_outputs(out, sampled)) check_finished(*f);
      check_pools({});
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_EQ(finished_, accepted_) << "every accepted request finishes";
    EXPECT_EQ(bm_.num_free_gpu_blocks(), spec_.gpu_blocks);
    EXPECT_EQ(bm_.num_free_cpu_blocks(), spec_.cpu_blocks);
    EXPECT_EQ(sched_.stats().num_finished, accepted_);
  }

  const SchedulerStats& stats() const { return sched_.stats(); }
  int64_t accepted() const { return accepted_; }

 private:
  static SchedulerConfig make_config(const SimSpec& s) {
    SchedulerConfig c = config(s.budget, s.max_seqs, s.max_model_len);
    c.watermark = s.watermark;
    return c;
  }

  void add_random_request() {
    ++submitted_;
    const int64_t len = rng_.randint(1, spec_.max_prompt);
    std::vector<int32_t> prompt(static_cast<size_t>(len));
    for (auto& t : prompt) t = static_cast<int32_t>(rng_.randint(0, kVocab - 1));
    SamplingParams p;
    p.max_tokens = static_cast<int32_t>(rng_.randint(1, spec_.max_new_tokens));
    p.eos_token_id = rng_.uniform() < 0.5 ? static_cast<int32_t>(rng_.randint(0, kVocab - 1)) : -1;
    p.ignore_eos = rng_.uniform() < 0.2;
    int64_t id = -1;
    try {
      id = sched_.add_request(prompt, p);
    } catch (const InvalidArgument& e) {
      // Only a request that truly cannot fit may be refused.
      EXPECT_NE(std::string(e.what()).find("can never fit"), std::string::npos) << e.what();
      ++rejected_;
      return;
    }
    ++accepted_;
    expected_[id] = expected_output(id, len, p, spec_.max_model_len);
    prompts_[id] = prompt;
  }

  void check_schedule(const SchedulerOutput& out) {
    ASSERT_LE(out.num_batched_tokens, spec_.budget);
    ASSERT_LE(static_cast<int64_t>(out.seqs.size()), spec_.max_seqs);
    ASSERT_LE(static_cast<int64_t>(sched_.running().size()), spec_.max_seqs);
    int64_t total = 0;
    std::set<int64_t> ids;
    std::map<int64_t, int64_t> scheduled;
    for (size_t i = 0; i < out.seqs.size(); ++i) {
      const ScheduledSeq& q = out.seqs[i];
      const Sequence& seq = *q.seq;
      total += q.num_tokens;
      ASSERT_TRUE(ids.insert(seq.id).second) << "sequence " << seq.id << " scheduled twice";
      ASSERT_EQ(seq.status, SeqStatus::running);
      ASSERT_GE(q.num_tokens, 1);
      ASSERT_LE(seq.num_computed_tokens + q.num_tokens, seq.len());
      ASSERT_EQ(q.do_sample, seq.num_computed_tokens + q.num_tokens == seq.len());
      ASSERT_EQ(q.is_prefill, static_cast<int64_t>(i) < out.num_prefills) << "prefills first";
      ASSERT_EQ(q.is_prefill, seq.is_prefill());
      if (!q.is_prefill) {
        ASSERT_EQ(q.num_tokens, 1);
      }
      scheduled[seq.id] = q.num_tokens;
    }
    ASSERT_EQ(total, out.num_batched_tokens);
    for (const Sequence* p : out.preempted) {
      ASSERT_EQ(ids.count(p->id), 0u) << "preempted sequence " << p->id << " was scheduled";
      ASSERT_TRUE(p->status == SeqStatus::swapped || p->status == SeqStatus::waiting);
    }
    // Swap-in destinations never overwrite this step's swap-out sources.
    std::set<int64_t> out_src;
    for (auto [g, c] : out.swap_out) out_src.insert(g);
    for (auto [c, g] : out.swap_in) ASSERT_EQ(out_src.count(g), 0u);
    if (!out.swap_out.empty()) {
      ASSERT_TRUE(out.swap_in.empty());
    }
    check_pools(scheduled);
  }

  // Every block owned once, by the sequence whose table lists it; tables exactly cover the
  // computed tokens (+ those scheduled this step); free counts add up.
  void check_pools(const std::map<int64_t, int64_t>& scheduled) {
    std::set<int32_t> gpu_used, cpu_used;
    for (const Sequence* seq : sched_.running()) {
      ASSERT_EQ(seq->status, SeqStatus::running);
      const auto it = scheduled.find(seq->id);
      const int64_t n = it == scheduled.end() ? 0 : it->second;
      ASSERT_EQ(static_cast<int64_t>(seq->block_table.size()),
                bm_.blocks_for_tokens(seq->num_computed_tokens + n))
          << "sequence " << seq->id;
      for (int32_t b : seq->block_table) {
        ASSERT_TRUE(gpu_used.insert(b).second) << "GPU block " << b << " owned twice";
        ASSERT_EQ(bm_.gpu_block_owner(b), seq->id);
      }
    }
    for (const Sequence* seq : sched_.swapped()) {
      ASSERT_EQ(seq->status, SeqStatus::swapped);
      ASSERT_EQ(static_cast<int64_t>(seq->block_table.size()),
                bm_.blocks_for_tokens(seq->num_computed_tokens));
      for (int32_t b : seq->block_table) {
        ASSERT_TRUE(cpu_used.insert(b).second) << "CPU block " << b << " owned twice";
        ASSERT_EQ(bm_.cpu_block_owner(b), seq->id);
      }
    }
    for (const Sequence* seq : sched_.waiting()) {
      ASSERT_EQ(seq->status, SeqStatus::waiting);
      ASSERT_TRUE(seq->block_table.empty());
      ASSERT_EQ(seq->num_computed_tokens, 0);
    }
    ASSERT_EQ(static_cast<int64_t>(gpu_used.size()) + bm_.num_free_gpu_blocks(), spec_.gpu_blocks);
    ASSERT_EQ(static_cast<int64_t>(cpu_used.size()) + bm_.num_free_cpu_blocks(), spec_.cpu_blocks);
    for (const auto* q : {&sched_.waiting(), &sched_.running(), &sched_.swapped()})
      ASSERT_TRUE(std::is_sorted(q->begin(), q->end(), [](const Sequence* a, const Sequence* b) {
        return a->id < b->id;
      }));
    ASSERT_EQ(static_cast<int64_t>(sched_.waiting().size() + sched_.running().size() +
                                   sched_.swapped().size()) +
                  finished_,
              accepted_)
        << "a sequence was lost";
  }

  void run_fake_step(const SchedulerOutput& out) {
    const int64_t bs = spec_.block_size;
    for (auto [g, c] : out.swap_out)
      for (int64_t j = 0; j < bs; ++j) cpu_kv_[c * bs + j] = gpu_kv_[g * bs + j];
    for (auto [c, g] : out.swap_in)
      for (int64_t j = 0; j < bs; ++j) gpu_kv_[g * bs + j] = cpu_kv_[c * bs + j];
    std::set<int64_t> written;
    for (const ScheduledSeq& q : out.seqs) {
      const Sequence& seq = *q.seq;
      ASSERT_EQ(seq.prompt, prompts_[seq.id]);
      for (int64_t p = 0; p < seq.num_computed_tokens; ++p) {  // attention reads the context
        const KvEntry want{seq.id, p, seq.token(p)};
        ASSERT_EQ(gpu_kv_[bm_.slot(seq, p)], want)
            << "sequence " << seq.id << " lost the KV of position " << p;
      }
      for (int64_t p = seq.num_computed_tokens; p < seq.num_computed_tokens + q.num_tokens; ++p) {
        const int64_t slot = bm_.slot(seq, p);
        ASSERT_TRUE(written.insert(slot).second) << "slot " << slot << " written twice";
        gpu_kv_[slot] = KvEntry{seq.id, p, seq.token(p)};  // reshape_and_cache
      }
    }
  }

  void check_finished(const Sequence& seq) {
    ++finished_;
    EXPECT_EQ(seq.status, SeqStatus::finished);
    EXPECT_TRUE(seq.block_table.empty());
    EXPECT_EQ(seq.output, expected_[seq.id]) << "request " << seq.id;
    EXPECT_NE(seq.finish_reason, FinishReason::none);
  }

  SimSpec spec_;
  Rng rng_;
  BlockManager bm_;
  Scheduler sched_;
  std::vector<KvEntry> gpu_kv_, cpu_kv_;
  std::map<int64_t, std::vector<int32_t>> expected_, prompts_;
  int64_t submitted_ = 0, accepted_ = 0, rejected_ = 0, finished_ = 0;
};

void PrintTo(const SimSpec& s, std::ostream* os) {
  *os << s.name;
}

class SchedulerSimulation : public ::testing::TestWithParam<SimSpec> {};

TEST_P(SchedulerSimulation, RunsToCompletionWithInvariantsEveryStep) {
  const SimSpec& spec = GetParam();
  Simulation sim(spec);
  sim.run();
  const SchedulerStats& st = sim.stats();
  EXPECT_GT(sim.accepted(), spec.num_requests / 2);
  std::cout << "[ stats    ] " << spec.name << ": " << sim.accepted() << " requests, "
            << st.num_steps << " steps, " << st.num_preemptions << " preemptions ("
            << st.num_swap_outs << " swap-outs, " << st.num_recomputes << " recomputes), "
            << st.num_partial_prefills << " partial prefills\n";
  if (spec.max_seqs == 1) return;  // one sequence at a time never needs to preempt
  EXPECT_GT(st.num_preemptions, 0) << "the pool is meant to be tight enough to preempt";
  if (spec.cpu_blocks == 0) {
    EXPECT_EQ(st.num_swap_outs, 0);
    EXPECT_GT(st.num_recomputes, 0);
  } else if (spec.cpu_blocks >= spec.gpu_blocks * 4) {
    EXPECT_GT(st.num_swap_outs, 0);
    EXPECT_EQ(st.num_swap_ins, st.num_swap_outs);  // everything swapped out came back
  }
  EXPECT_GT(st.num_partial_prefills, 0) << "prompts are meant to exceed the budget sometimes";
}

// name, seed, requests, gpu, cpu, block size, max blocks/seq, budget, max seqs, max len,
// max prompt, max new tokens, watermark, initial requests
INSTANTIATE_TEST_SUITE_P(
    Pools, SchedulerSimulation,
    ::testing::Values(SimSpec{"swap", 1, 60, 12, 64, 4, 16, 16, 8, 64, 24, 24},
                      SimSpec{"swap_seed2", 2, 60, 12, 64, 4, 16, 16, 8, 64, 24, 24, 0, 10},
                      SimSpec{"recompute_only", 3, 60, 12, 0, 4, 16, 16, 8, 64, 24, 24},
                      SimSpec{"small_cpu_pool_mixes_both", 4, 60, 12, 5, 4, 16, 16, 8, 64, 24, 24},
                      SimSpec{"block_size_1", 5, 40, 40, 200, 1, 64, 12, 6, 48, 20, 20},
                      SimSpec{"short_max_model_len", 6, 60, 16, 64, 4, 8, 12, 4, 20, 20, 30},
                      SimSpec{"watermark", 7, 60, 40, 160, 2, 40, 16, 8, 64, 30, 30, 0.1, 20},
                      SimSpec{"one_seq_at_a_time", 8, 20, 8, 32, 4, 8, 8, 1, 32, 20, 10}),
    [](const ::testing::TestParamInfo<SimSpec>& info) { return info.param.name; });

TEST(Scheduler, ManyMoreRequestsThanKvSpaceAllFinish) {
  // 300 requests of up to 30 + 40 tokens against 256 GPU token slots: at most a handful fit at
  // once. Nothing may crash, stall or lose a token.
  const SimSpec spec{"many", 99, 300, 32, 6, 8, 16, 64, 32, 128, 30, 40};
  Simulation sim(spec);
  sim.run();
  EXPECT_EQ(sim.accepted(), 300);
  EXPECT_GT(sim.stats().num_preemptions, 0);
  EXPECT_EQ(sim.stats().num_finished, 300);
  std::cout << "[ stats    ] " << sim.stats().num_steps << " steps, " << sim.stats().num_preemptions
            << " preemptions (" << sim.stats().num_swap_outs << " swap-outs, "
            << sim.stats().num_recomputes << " recomputes)\n";
}

}  // namespace
}  // namespace day18
