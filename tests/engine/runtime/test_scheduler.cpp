// Scheduler: admission (FCFS, token budget, sequence limit), chunked prefill, decode, stopping,
// preemption by swap and by recompute, its error messages, async scheduling (placeholders,
// deferred frees, discarded samples), and end-to-end simulations in both modes that check the
// block pools, the outputs and a fake KV cache after every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <tuple>
#include <vector>

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
// Async scheduling: step N+1 is scheduled before step N's samples are known. Each test drives
// the scheduler by hand, the way LLMEngine::step does: schedule the next step, then process the
// older one (at most two steps outstanding).

SchedulerConfig async_config(int64_t budget, int64_t max_seqs, int64_t max_model_len = 1024) {
  SchedulerConfig c = config(budget, max_seqs, max_model_len);
  c.async_scheduling = true;
  return c;
}

constexpr int32_t kPh = kPlaceholderToken;

// Runs an async scheduler to the end like LLMEngine: after each submitted step, the older one is
// processed with `token` sampled everywhere. `inflight` holds the steps not processed yet.
void drain_async(Scheduler& s, std::deque<SchedulerOutput>& inflight, int32_t token = 9) {
  for (int guard = 0; s.has_unfinished() || !inflight.empty(); ++guard) {
    ASSERT_LT(guard, 10000) << "no progress";
    SchedulerOutput out = s.schedule();
    const bool submitted = !out.empty();
    if (submitted) inflight.push_back(std::move(out));
    while (inflight.size() > (submitted ? 1u : 0u)) {
      s.process_outputs(inflight.front(), all(inflight.front(), token));
      inflight.pop_front();
    }
  }
}

TEST(Scheduler, AsyncSchedulesOnPlaceholdersAndFillsThemInOrder) {
  BlockManager bm(8, 0, 4, 8);
  Scheduler s(async_config(64, 4), bm);
  const int64_t id = s.add_request(prompt_of(3), max_tokens(10));
  const Sequence& seq = s.sequence(id);
  const SchedulerOutput s0 = s.schedule();  // prefill positions 0..2
  ASSERT_EQ(s0.seqs.size(), 1u);
  EXPECT_EQ(s0.seqs[0].output_index, 0);
  EXPECT_EQ(seq.num_computed_tokens, 3);  // advanced at once, as if the step had run
  EXPECT_EQ(seq.output, (std::vector<int32_t>{kPh}));
  const SchedulerOutput s1 = s.schedule();  // decode position 3: the placeholder, fed on the device
  ASSERT_EQ(ids_of(s1), (std::vector<int64_t>{id}));
  EXPECT_FALSE(s1.seqs[0].is_prefill);
  EXPECT_EQ(s1.seqs[0].output_index, 1);
  EXPECT_EQ(seq.output, (std::vector<int32_t>{kPh, kPh}));
  EXPECT_EQ(s.num_pending_steps(), 2);
  EXPECT_THROW_WITH(s.schedule(), Error, "at most two steps");
  EXPECT_THROW_WITH(s.process_outputs(s1, {6}), InvalidArgument, "step 1", "oldest", "is 0");
  EXPECT_TRUE(s.process_outputs(s0, {5}).empty());
  EXPECT_EQ(seq.output, (std::vector<int32_t>{5, kPh}));
  EXPECT_TRUE(s.process_outputs(s1, {6}).empty());
  EXPECT_EQ(seq.output, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(s.num_pending_steps(), 0);
}

TEST(Scheduler, AsyncEosWhileTheNextStepIsScheduledDefersTheFreeAndDiscardsThatSample) {
  BlockManager bm(8, 0, 4, 8);
  Scheduler s(async_config(64, 4), bm);
  const int64_t id = s.add_request(prompt_of(3), max_tokens(10, /*eos=*/7));
  const Sequence& seq = s.sequence(id);
  const SchedulerOutput s0 = s.schedule();
  const SchedulerOutput s1 = s.schedule();
  s.process_outputs(s0, {5});
  const SchedulerOutput s2 = s.schedule();  // decode position 4: a second block
  ASSERT_EQ(ids_of(s2), (std::vector<int64_t>{id}));
  EXPECT_EQ(seq.block_table.size(), 2u);
  EXPECT_EQ(bm.num_free_gpu_blocks(), 6);

  // Step 1 samples EOS while step 2 (which writes position 4 into the second block) is in flight.
  const auto finished = s.process_outputs(s1, {7});
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0], &seq);
  EXPECT_EQ(seq.status, SeqStatus::finished);
  EXPECT_EQ(seq.finish_reason, FinishReason::stop);
  EXPECT_EQ(seq.output, (std::vector<int32_t>{5, 7}));  // step 2's placeholder is gone
  EXPECT_EQ(seq.block_table.size(), 2u) << "freed while step 2 still uses the blocks";
  EXPECT_EQ(bm.num_free_gpu_blocks(), 6);
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_THROW_WITH(s.release(id), InvalidArgument, "still in a step");
  EXPECT_TRUE(s.schedule().empty());  // in no queue any more

  // Step 2's sample for the stopped sequence is dropped; now the blocks go back.
  EXPECT_TRUE(s.process_outputs(s2, {8}).empty());
  EXPECT_EQ(seq.output, (std::vector<int32_t>{5, 7}));
  EXPECT_TRUE(seq.block_table.empty());
  EXPECT_EQ(bm.num_free_gpu_blocks(), 8);
  EXPECT_EQ(s.stats().num_discarded_samples, 1);
  EXPECT_EQ(s.stats().num_generated_tokens, 2);
  EXPECT_EQ(s.stats().num_finished, 1);
  s.release(id);
}

TEST(Scheduler, AsyncNeverSchedulesASequenceWhosePendingSamplesEndItOnLength) {
  BlockManager bm(8, 0, 4, 8);
  Scheduler s(async_config(64, 4, /*max_model_len=*/5), bm);
  const int64_t a = s.add_request(prompt_of(3), max_tokens(2));    // stops on max_tokens
  const int64_t b = s.add_request(prompt_of(4), max_tokens(100));  // stops on max_model_len
  const SchedulerOutput s0 = s.schedule();                         // both prefill
  ASSERT_EQ(ids_of(s0), (std::vector<int64_t>{a, b}));
  // b's pending sample makes it 5 tokens = max_model_len: certain to stop, not scheduled.
  const SchedulerOutput s1 = s.schedule();
  EXPECT_EQ(ids_of(s1), (std::vector<int64_t>{a}));
  auto finished = s.process_outputs(s0, {10, 20});
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0]->id, b);
  EXPECT_EQ(finished[0]->finish_reason, FinishReason::model_len);
  EXPECT_TRUE(s.sequence(b).block_table.empty()) << "not in flight: freed at once";
  // a holds 2 placeholders = max_tokens: nothing to schedule.
  EXPECT_TRUE(s.schedule().empty());
  finished = s.process_outputs(s1, {11});
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0]->finish_reason, FinishReason::length);
  EXPECT_EQ(s.sequence(a).output, (std::vector<int32_t>{10, 11}));
  EXPECT_EQ(s.sequence(b).output, (std::vector<int32_t>{20}));
  EXPECT_EQ(bm.num_free_gpu_blocks(), 8);
  EXPECT_EQ(s.stats().num_discarded_samples, 0);  // only EOS wastes a slot
}

// TinyPool's story (4 GPU blocks of 2 tokens, A and B of 3 prompt tokens) in async mode: A's
// position 4 needs a block in step 2, while B's step 1 (decode position 3) is still in flight.
TEST(Scheduler, AsyncSwapOutOfASequenceWithAStepInFlightKeepsThatStepsSample) {
  BlockManager bm(TinyPool::kGpuBlocks, /*cpu_blocks=*/8, TinyPool::kBlockSize, 8);
  Scheduler s(async_config(64, 8), bm);
  s.add_request(prompt_of(3), max_tokens(4));  // A = 0
  s.add_request(prompt_of(3), max_tokens(4));  // B = 1
  const Sequence& b = s.sequence(1);
  const SchedulerOutput s0 = s.schedule();
  const SchedulerOutput s1 = s.schedule();
  EXPECT_EQ(ids_of(s1), (std::vector<int64_t>{0, 1}));
  s.process_outputs(s0, {10, 20});
  const SchedulerOutput s2 = s.schedule();
  EXPECT_EQ(ids_of(s2), (std::vector<int64_t>{0}));
  ASSERT_EQ(s2.preempted.size(), 1u);
  EXPECT_EQ(s2.preempted[0], &b);
  EXPECT_EQ(b.status, SeqStatus::swapped);
  EXPECT_EQ(b.num_computed_tokens, 4);  // step 1's position 3 is part of what was swapped
  EXPECT_EQ(s2.swap_out.size(), 2u);
  EXPECT_EQ(b.output, (std::vector<int32_t>{20, kPh}));
  s.process_outputs(s1, {11, 21});
  EXPECT_EQ(b.output, (std::vector<int32_t>{20, 21}));  // filled while swapped out
  EXPECT_EQ(b.status, SeqStatus::swapped);
  std::deque<SchedulerOutput> inflight{s2};
  drain_async(s, inflight);
  EXPECT_EQ(s.sequence(0).output, (std::vector<int32_t>{10, 11, 9, 9}));
  EXPECT_EQ(b.output, (std::vector<int32_t>{20, 21, 9, 9}));
  EXPECT_EQ(s.stats().num_swap_ins, 1);
  EXPECT_EQ(bm.num_free_gpu_blocks(), TinyPool::kGpuBlocks);
  EXPECT_EQ(bm.num_free_cpu_blocks(), 8);
}

TEST(Scheduler, AsyncRecomputeOfASequenceWithAStepInFlightKeepsThatStepsSample) {
  BlockManager bm(TinyPool::kGpuBlocks, /*cpu_blocks=*/0, TinyPool::kBlockSize, 8);
  Scheduler s(async_config(64, 8), bm);
  s.add_request(prompt_of(3), max_tokens(4));
  s.add_request(prompt_of(3), max_tokens(4));
  const Sequence& b = s.sequence(1);
  const SchedulerOutput s0 = s.schedule();
  const SchedulerOutput s1 = s.schedule();
  s.process_outputs(s0, {10, 20});
  const SchedulerOutput s2 = s.schedule();
  ASSERT_EQ(s2.preempted.size(), 1u);
  EXPECT_EQ(b.status, SeqStatus::waiting);
  EXPECT_EQ(b.num_computed_tokens, 0);
  EXPECT_TRUE(b.block_table.empty());
  s.process_outputs(s1, {11, 21});
  EXPECT_EQ(b.output, (std::vector<int32_t>{20, 21}));
  const SchedulerOutput s3 = s.schedule();  // A decodes its last position; B does not fit yet
  EXPECT_EQ(ids_of(s3), (std::vector<int64_t>{0}));
  s.process_outputs(s2, {12});
  EXPECT_TRUE(s.schedule().empty());  // A's pending sample is its last; B still does not fit
  s.process_outputs(s3, {13});
  EXPECT_EQ(s.sequence(0).status, SeqStatus::finished);
  // B recomputes prompt + both outputs, all real tokens, as one prefill.
  const SchedulerOutput s5 = s.schedule();
  ASSERT_EQ(ids_of(s5), (std::vector<int64_t>{1}));
  EXPECT_TRUE(s5.seqs[0].is_prefill);
  EXPECT_EQ(s5.seqs[0].num_tokens, 5);
  EXPECT_EQ(s5.seqs[0].output_index, 2);
  for (int64_t p = 0; p < 5; ++p) EXPECT_NE(b.token(p), kPh) << "position " << p;
  std::deque<SchedulerOutput> inflight{s5};
  drain_async(s, inflight);
  EXPECT_EQ(s.sequence(0).output, (std::vector<int32_t>{10, 11, 12, 13}));
  EXPECT_EQ(b.output, (std::vector<int32_t>{20, 21, 9, 9}));
  EXPECT_EQ(bm.num_free_gpu_blocks(), TinyPool::kGpuBlocks);
}

// The victim of step 2's preemption is B, whose in-flight step 1 samples its last token (EOS, or
// max_tokens): B stops while swapped out, so its blocks are CPU blocks and go back to the CPU
// pool. (This used to throw: the free looked at the status after it was set to finished and gave
// the CPU block ids back to the GPU pool.)
TEST(Scheduler, AsyncSequenceThatStopsWhileSwappedOutReturnsItsCpuBlocks) {
  for (const bool by_eos : {true, false}) {
    SCOPED_TRACE(by_eos ? "stops at EOS" : "stops at max_tokens");
    BlockManager bm(TinyPool::kGpuBlocks, /*cpu_blocks=*/8, TinyPool::kBlockSize, 8);
    Scheduler s(async_config(64, 8), bm);
    s.add_request(prompt_of(3), max_tokens(4));
    s.add_request(prompt_of(3), by_eos ? max_tokens(4, /*eos=*/21) : max_tokens(2));
    const Sequence& b = s.sequence(1);
    const SchedulerOutput s0 = s.schedule();
    const SchedulerOutput s1 = s.schedule();
    s.process_outputs(s0, {10, 20});
    SchedulerOutput s2 = s.schedule();
    ASSERT_EQ(s2.preempted.size(), 1u);
    ASSERT_EQ(b.status, SeqStatus::swapped);
    std::vector<Sequence*> finished;
    ASSERT_NO_THROW(finished = s.process_outputs(s1, {11, 21}));
    ASSERT_EQ(finished.size(), 1u);
    EXPECT_EQ(finished[0], &b);
    EXPECT_EQ(b.finish_reason, by_eos ? FinishReason::stop : FinishReason::length);
    EXPECT_EQ(b.output, (std::vector<int32_t>{20, 21}));
    EXPECT_TRUE(b.block_table.empty());
    EXPECT_TRUE(s.swapped().empty());
    EXPECT_EQ(bm.num_free_cpu_blocks(), 8);
    for (int64_t blk = 0; blk < 8; ++blk) EXPECT_EQ(bm.cpu_block_owner(blk), -1);
    std::deque<SchedulerOutput> inflight{s2};
    drain_async(s, inflight);
    EXPECT_EQ(s.sequence(0).output, (std::vector<int32_t>{10, 11, 9, 9}));
    EXPECT_EQ(b.output, (std::vector<int32_t>{20, 21}));
    EXPECT_EQ(s.stats().num_swap_ins, 0);
    EXPECT_EQ(bm.num_free_gpu_blocks(), TinyPool::kGpuBlocks);
  }
}

// ---------------------------------------------------------------------------------------------
// End-to-end simulations: random requests, a fake model, small pools, in both scheduling modes.
// The fake model drives the scheduler the way LLMEngine does: synchronous mode processes each
// step at once; async mode schedules (and "submits") step N+1 before it processes step N, so one
// step is always in flight. After every schedule() and every process_outputs() the pools, the
// queues and the outputs are checked, and a fake KV cache (each slot remembers which sequence,
// position and token wrote it; swaps copy it) proves that every scheduled sequence finds all of
// its earlier tokens where its block table says, so no swap mapping, slot or freed block is wrong.

enum class Mode { sync, async };

const char* mode_name(Mode m) {
  return m == Mode::sync ? "sync" : "async";
}

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
// What the fake model samples where a sample must be thrown away: partial prefills, and (async)
// a step scheduled before its sequence's EOS was known. Outside the vocabulary: it must never
// show up in an output.
constexpr int32_t kDiscarded = 1000;

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

// Why expected_output stopped (the scheduler's order: EOS, then max_tokens, then max_model_len).
FinishReason expected_reason(const std::vector<int32_t>& out, const SamplingParams& p) {
  if (!p.ignore_eos && p.eos_token_id >= 0 && out.back() == p.eos_token_id)
    return FinishReason::stop;
  if (static_cast<int64_t>(out.size()) >= p.max_tokens) return FinishReason::length;
  return FinishReason::model_len;
}

struct SimRequest {
  std::vector<int32_t> prompt;
  SamplingParams params;
  int64_t arrival = 0;  // loop iteration that adds it (0 = before the first step)
};

// The requests and their arrival iterations, drawn up front from the spec's seed, so that both
// modes see the same workload.
std::vector<SimRequest> make_workload(const SimSpec& spec) {
  Rng rng(spec.seed);
  const int64_t initial = spec.initial_requests < 0 ? spec.num_requests : spec.initial_requests;
  std::vector<SimRequest> w;
  int64_t t = 0;
  for (int64_t i = 0; i < spec.num_requests; ++i) {
    SimRequest r;
    if (i >= initial) {  // later ones: each iteration brings one with probability 0.3
      do ++t;
      while (rng.uniform() >= 0.3);
    }
    r.arrival = t;
    r.prompt.resize(static_cast<size_t>(rng.randint(1, spec.max_prompt)));
    for (auto& tok : r.prompt) tok = static_cast<int32_t>(rng.randint(0, kVocab - 1));
    r.params.max_tokens = static_cast<int32_t>(rng.randint(1, spec.max_new_tokens));
    r.params.eos_token_id =
        rng.uniform() < 0.5 ? static_cast<int32_t>(rng.randint(0, kVocab - 1)) : -1;
    r.params.ignore_eos = rng.uniform() < 0.2;
    w.push_back(std::move(r));
  }
  return w;
}

// With `oracle` off the fake model knows nothing of where a request should stop: it samples
// fake_sample(id, k) everywhere (a discarded sample looks like any other token), and outputs are
// not compared with expected_output: SchedulerSyncVsAsync then compares the two modes directly.
class Simulation {
 public:
  Simulation(const SimSpec& spec, Mode mode, bool oracle = true)
      : spec_(spec),
        async_(mode == Mode::async),
        oracle_(oracle),
        workload_(make_workload(spec)),
        bm_(spec.gpu_blocks, spec.cpu_blocks, spec.block_size, spec.max_blocks_per_seq),
        sched_(make_config(spec, mode), bm_),
        gpu_kv_(static_cast<size_t>(spec.gpu_blocks * spec.block_size)),
        cpu_kv_(static_cast<size_t>(spec.cpu_blocks * spec.block_size)) {}

  void run() {
    size_t next = 0;
    for (int64_t it = 0;; ++it) {
      ASSERT_LT(it, 100000) << "no progress";
      while (next < workload_.size() && workload_[next].arrival <= it)
        add_request(workload_[next++]);
      if (next == workload_.size() && !sched_.has_unfinished() && inflight_.empty()) break;
      SchedulerOutput out = sched_.schedule();
      max_pending_ = std::max(max_pending_, sched_.num_pending_steps());
      check_schedule(out);
      if (::testing::Test::HasFatalFailure()) return;
      const bool submitted = !out.empty();
      if (submitted) {
        run_fake_step(std::move(out));
        if (::testing::Test::HasFatalFailure()) return;
      } else if (inflight_.empty()) {
        ASSERT_FALSE(sched_.has_unfinished()) << "stalled at iteration " << it;
      }
      // As LLMEngine::step: process at once in synchronous mode; in async mode process the older
      // step only once the newer one is submitted (an empty schedule drains what is in flight).
      const size_t keep = async_ && submitted ? 1 : 0;
      while (inflight_.size() > keep) {
        process_oldest();
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
    EXPECT_EQ(finished_, accepted_) << "every accepted request finishes";
    EXPECT_TRUE(deferred_.empty());
    EXPECT_EQ(sched_.num_pending_steps(), 0);
    EXPECT_EQ(bm_.num_free_gpu_blocks(), spec_.gpu_blocks);
    EXPECT_EQ(bm_.num_free_cpu_blocks(), spec_.cpu_blocks);
    EXPECT_EQ(sched_.stats().num_finished, accepted_);
    if (oracle_) {
      EXPECT_EQ(sched_.stats().num_discarded_samples, num_discarded_);
    }
    if (!async_) {
      EXPECT_EQ(sched_.stats().num_discarded_samples, 0);
    }
    for (auto& [id, out] : outputs_) {  // nothing changed an output after it finished
      EXPECT_EQ(sched_.sequence(id).output, out) << "request " << id;
      out = sched_.sequence(id).output;  // outputs() reports what the scheduler holds now
    }
  }

  const SchedulerStats& stats() const { return sched_.stats(); }
  int64_t accepted() const { return accepted_; }
  // Most steps outstanding at once (2 = async steps overlapped).
  int64_t max_pending() const { return max_pending_; }
  // Input tokens that were placeholders, fed from the previous step's sample (async).
  int64_t num_fed() const { return num_fed_; }
  // Final output (at the end of run()) and finish reason of every accepted request, by id.
  const std::map<int64_t, std::vector<int32_t>>& outputs() const { return outputs_; }
  const std::map<int64_t, FinishReason>& reasons() const { return reasons_; }

 private:
  // A step submitted to the fake GPU and not processed yet.
  struct InFlight {
    SchedulerOutput out;
    std::vector<int32_t> sampled;              // one per entry
    std::vector<std::vector<int32_t>> tables;  // each entry's block table when it was scheduled
  };

  static SchedulerConfig make_config(const SimSpec& s, Mode mode) {
    SchedulerConfig c = config(s.budget, s.max_seqs, s.max_model_len);
    c.watermark = s.watermark;
    c.async_scheduling = mode == Mode::async;
    return c;
  }

  // The fake model: the k-th output of a request is a pure function of (request, k), the same in
  // both modes. Past the request's expected stop (reachable only when async mode scheduled a step
  // before it learnt of an EOS) it samples kDiscarded, which no output may ever contain.
  int32_t model_token(int64_t id, int64_t k) const {
    if (!oracle_) return fake_sample(id, k);
    const std::vector<int32_t>& e = expected_.at(id);
    return k < static_cast<int64_t>(e.size()) ? e[k] : kDiscarded;
  }

  static int64_t entry_of(const SchedulerOutput& out, int64_t id) {
    for (size_t i = 0; i < out.seqs.size(); ++i)
      if (out.seqs[i].seq->id == id) return static_cast<int64_t>(i);
    return -1;
  }

  bool in_flight(int64_t id) const {
    return std::any_of(inflight_.begin(), inflight_.end(),
                       [&](const InFlight& f) { return entry_of(f.out, id) >= 0; });
  }

  void add_request(const SimRequest& r) {
    ++submitted_;
    int64_t id = -1;
    try {
      id = sched_.add_request(r.prompt, r.params);
    } catch (const InvalidArgument& e) {
      // Only a request that truly cannot fit may be refused.
      EXPECT_NE(std::string(e.what()).find("can never fit"), std::string::npos) << e.what();
      ++rejected_;
      return;
    }
    ++accepted_;
    const int64_t len = static_cast<int64_t>(r.prompt.size());
    expected_[id] = expected_output(id, len, r.params, spec_.max_model_len);
    prompts_[id] = r.prompt;
  }

  void check_schedule(const SchedulerOutput& out) {
    ASSERT_LE(out.num_batched_tokens, spec_.budget);
    ASSERT_LE(static_cast<int64_t>(out.seqs.size()), spec_.max_seqs);
    ASSERT_LE(static_cast<int64_t>(sched_.running().size()), spec_.max_seqs);
    ASSERT_LE(sched_.num_pending_steps(), async_ ? 2 : 1);
    int64_t total = 0;
    std::set<int64_t> ids;
    std::map<int64_t, int64_t> scheduled;
    for (size_t i = 0; i < out.seqs.size(); ++i) {
      const ScheduledSeq& q = out.seqs[i];
      const Sequence& seq = *q.seq;
      const int64_t n = q.num_tokens;
      total += n;
      ASSERT_TRUE(ids.insert(seq.id).second) << "sequence " << seq.id << " scheduled twice";
      ASSERT_EQ(seq.status, SeqStatus::running);
      ASSERT_GE(n, 1);
      // Async: schedule() already advanced the sequence as if the step had run, and appended a
      // placeholder for a step that samples. Undo that to see the sequence before the step.
      const int64_t placeholder = async_ && q.do_sample ? 1 : 0;
      const int64_t start = seq.num_computed_tokens - (async_ ? n : 0);
      const int64_t len = seq.len() - placeholder;
      const int64_t out_len = seq.output_len() - placeholder;
      ASSERT_GE(start, 0);
      ASSERT_LE(start + n, len);
      ASSERT_EQ(q.do_sample, start + n == len);
      ASSERT_EQ(q.is_prefill, static_cast<int64_t>(i) < out.num_prefills) << "prefills first";
      ASSERT_EQ(q.is_prefill, out_len == 0 || start < len - 1);
      if (!q.is_prefill) {
        ASSERT_EQ(n, 1);
      }
      if (async_ && q.do_sample) {
        ASSERT_EQ(q.output_index, out_len);
        ASSERT_EQ(seq.output[out_len], kPlaceholderToken);
        // A stop that is certain (max_tokens, max_model_len) is never scheduled past. (A prompt
        // of max_model_len tokens still samples one.)
        const int64_t k = q.output_index;
        ASSERT_LT(k, seq.params.max_tokens) << "sequence " << seq.id;
        ASSERT_TRUE(k == 0 || seq.prompt_len() + k < spec_.max_model_len)
            << "sequence " << seq.id << " samples output " << k << " past max_model_len";
      } else {
        ASSERT_EQ(q.output_index, -1);
      }
      // A placeholder gets its real token (process_outputs of the step that sampled it) before
      // its sequence is scheduled at a later position: the context holds only real tokens.
      for (int64_t p = 0; p < start; ++p)
        ASSERT_NE(seq.token(p), kPlaceholderToken)
            << "sequence " << seq.id << " scheduled at position " << start
            << " with a placeholder still at " << p;
      scheduled[seq.id] = n;
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
    // Async tables already cover the scheduled tokens (num_computed_tokens was advanced).
    check_pools(async_ ? std::map<int64_t, int64_t>{} : scheduled);
  }

  // Every block owned once, by the sequence whose table lists it; tables exactly cover the
  // computed tokens (+ those scheduled this step); free + used = total in both pools.
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
    // Finished while a step in flight still uses its blocks (async): they stay its GPU blocks.
    for (const Sequence* seq : deferred_) {
      ASSERT_EQ(seq->status, SeqStatus::finished);
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

  // The fake GPU runs the step at once: in stream order, which is all a step in flight needs
  // (the next step's swaps and compute run after it on the device, see StepExecutor::submit).
  void run_fake_step(SchedulerOutput out) {
    const InFlight* prev = inflight_.empty() ? nullptr : &inflight_.back();
    const int64_t bs = spec_.block_size;
    for (auto [g, c] : out.swap_out)
      for (int64_t j = 0; j < bs; ++j) cpu_kv_[c * bs + j] = gpu_kv_[g * bs + j];
    for (auto [c, g] : out.swap_in)
      for (int64_t j = 0; j < bs; ++j) gpu_kv_[g * bs + j] = cpu_kv_[c * bs + j];
    InFlight f;
    std::set<int64_t> written;
    for (const ScheduledSeq& q : out.seqs) {
      const Sequence& seq = *q.seq;
      ASSERT_EQ(seq.prompt, prompts_[seq.id]);
      const int64_t start = seq.num_computed_tokens - (async_ ? q.num_tokens : 0);
      for (int64_t p = 0; p < start; ++p) {  // attention reads the context
        const KvEntry want{seq.id, p, seq.token(p)};
        ASSERT_EQ(gpu_kv_[bm_.slot(seq, p)], want)
            << "sequence " << seq.id << " lost the KV of position " << p;
      }
      for (int64_t p = start; p < start + q.num_tokens; ++p) {
        int32_t token = seq.token(p);
        if (token == kPlaceholderToken) {
          // feed_sampled_tokens: the value is the previous step's sample for this position.
          ASSERT_TRUE(async_);
          ASSERT_NE(prev, nullptr) << "sequence " << seq.id << " feeds a placeholder at " << p
                                   << " but no step is in flight";
          const int64_t j = entry_of(prev->out, seq.id);
          ASSERT_GE(j, 0) << "sequence " << seq.id << " position " << p
                          << ": the step in flight does not sample it";
          ASSERT_TRUE(prev->out.seqs[j].do_sample);
          ASSERT_EQ(prev->out.seqs[j].output_index, p - seq.prompt_len())
              << "sequence " << seq.id << " position " << p;
          token = prev->sampled[j];
          ASSERT_NE(token, kDiscarded) << "sequence " << seq.id << " computes past its stop";
          ++num_fed_;
        }
        const int64_t slot = bm_.slot(seq, p);
        ASSERT_TRUE(written.insert(slot).second) << "slot " << slot << " written twice";
        gpu_kv_[slot] = KvEntry{seq.id, p, token};  // reshape_and_cache
      }
      int32_t sample = kDiscarded;
      if (q.do_sample) {
        sample = model_token(seq.id, async_ ? q.output_index : seq.output_len());
        if (sample == kDiscarded) ++num_discarded_;
      }
      f.sampled.push_back(sample);
      f.tables.push_back(seq.block_table);
    }
    f.out = std::move(out);
    inflight_.push_back(std::move(f));
  }

  void process_oldest() {
    const InFlight f = std::move(inflight_.front());
    inflight_.pop_front();
    for (Sequence* done : sched_.process_outputs(f.out, f.sampled)) {
      check_finished(*done);
      if (::testing::Test::HasFatalFailure()) return;
    }
    std::erase_if(deferred_, [](const Sequence* s) { return s->block_table.empty(); });
    for (const Sequence* s : deferred_)
      ASSERT_TRUE(in_flight(s->id)) << "sequence " << s->id << " finished, holds blocks, and no "
                                    << "step in flight uses them (leak)";
    // process_outputs frees no block that a step still in flight references: every block each
    // entry of such a step was scheduled with still belongs to that entry's sequence. (Only a
    // later schedule() may free them, by preemption: the device runs that step's swaps and
    // compute after the step in flight, so it reuses them in stream order.)
    for (const InFlight& g : inflight_)
      for (size_t i = 0; i < g.out.seqs.size(); ++i)
        for (int32_t b : g.tables[i])
          ASSERT_EQ(bm_.gpu_block_owner(b), g.out.seqs[i].seq->id)
              << "GPU block " << b << " of sequence " << g.out.seqs[i].seq->id
              << " was freed while step " << g.out.step << " (in flight) uses it";
    check_outputs();
    if (::testing::Test::HasFatalFailure()) return;
    check_pools({});
  }

  // Every unfinished sequence's output is the expected one, except placeholders, which are
  // exactly those of the sampling entries of the steps still in flight.
  void check_outputs() {
    std::set<std::pair<int64_t, int64_t>> pending;  // (id, output index)
    for (const InFlight& g : inflight_)
      for (const ScheduledSeq& q : g.out.seqs)
        if (q.do_sample && !q.seq->is_finished()) pending.emplace(q.seq->id, q.output_index);
    for (const auto* queue : {&sched_.waiting(), &sched_.running(), &sched_.swapped()})
      for (const Sequence* seq : *queue) {
        const std::vector<int32_t>& want = expected_[seq->id];
        if (oracle_) {
          ASSERT_LE(seq->output_len(), static_cast<int64_t>(want.size())) << "sequence " << seq->id;
        }
        for (int64_t k = 0; k < seq->output_len(); ++k) {
          if (seq->output[k] == kPlaceholderToken) {
            ASSERT_TRUE(pending.erase({seq->id, k}))
                << "sequence " << seq->id << " output " << k
                << " is a placeholder that no step in flight fills";
          } else if (oracle_) {
            ASSERT_EQ(seq->output[k], want[k]) << "sequence " << seq->id << " output " << k;
          }
        }
      }
    ASSERT_TRUE(pending.empty()) << "a sample in flight has no placeholder (sequence "
                                 << pending.begin()->first << ")";
  }

  void check_finished(Sequence& seq) {
    ++finished_;
    EXPECT_EQ(seq.status, SeqStatus::finished);
    if (oracle_) {
      EXPECT_EQ(seq.output, expected_[seq.id]) << "request " << seq.id;
      EXPECT_EQ(seq.finish_reason, expected_reason(expected_[seq.id], seq.params))
          << "request " << seq.id;
    }
    outputs_[seq.id] = seq.output;
    reasons_[seq.id] = seq.finish_reason;
    if (!seq.block_table.empty()) {  // its free is deferred: a step in flight writes its blocks
      ASSERT_TRUE(async_) << "request " << seq.id << " finished but kept its blocks";
      ASSERT_TRUE(in_flight(seq.id)) << "request " << seq.id << " finished, kept its blocks, and "
                                     << "is in no step in flight";
      deferred_.insert(&seq);
    }
  }

  SimSpec spec_;
  bool async_, oracle_;
  std::vector<SimRequest> workload_;
  BlockManager bm_;
  Scheduler sched_;
  std::vector<KvEntry> gpu_kv_, cpu_kv_;
  std::deque<InFlight> inflight_;  // submitted, not processed (oldest first)
  std::set<const Sequence*> deferred_;
  std::map<int64_t, std::vector<int32_t>> expected_, prompts_, outputs_;
  std::map<int64_t, FinishReason> reasons_;
  int64_t submitted_ = 0, accepted_ = 0, rejected_ = 0, finished_ = 0;
  int64_t max_pending_ = 0, num_fed_ = 0, num_discarded_ = 0;
};

void PrintTo(const SimSpec& s, std::ostream* os) {
  *os << s.name;
}

void PrintTo(Mode m, std::ostream* os) {
  *os << mode_name(m);
}

// name, seed, requests, gpu, cpu, block size, max blocks/seq, budget, max seqs, max len,
// max prompt, max new tokens, watermark, initial requests
const SimSpec kSpecs[] = {
    {"swap", 1, 60, 12, 64, 4, 16, 16, 8, 64, 24, 24},
    {"swap_seed2", 2, 60, 12, 64, 4, 16, 16, 8, 64, 24, 24, 0, 10},
    {"recompute_only", 3, 60, 12, 0, 4, 16, 16, 8, 64, 24, 24},
    {"small_cpu_pool_mixes_both", 4, 60, 12, 5, 4, 16, 16, 8, 64, 24, 24},
    {"block_size_1", 5, 40, 40, 200, 1, 64, 12, 6, 48, 20, 20},
    {"short_max_model_len", 6, 60, 16, 64, 4, 8, 12, 4, 20, 20, 30},
    {"watermark", 7, 60, 40, 160, 2, 40, 16, 8, 64, 30, 30, 0.1, 20},
    {"one_seq_at_a_time", 8, 20, 8, 32, 4, 8, 8, 1, 32, 20, 10},
};

std::string spec_name(const ::testing::TestParamInfo<SimSpec>& info) {
  return info.param.name;
}

class SchedulerSimulation : public ::testing::TestWithParam<std::tuple<SimSpec, Mode>> {};

TEST_P(SchedulerSimulation, RunsToCompletionWithInvariantsEveryStep) {
  const auto& [spec, mode] = GetParam();
  Simulation sim(spec, mode);
  sim.run();
  const SchedulerStats& st = sim.stats();
  EXPECT_GT(sim.accepted(), spec.num_requests / 2);
  std::cout << "[ stats    ] " << spec.name << " " << mode_name(mode) << ": " << sim.accepted()
            << " requests, " << st.num_steps << " steps, " << st.num_preemptions << " preemptions ("
            << st.num_swap_outs << " swap-outs, " << st.num_recomputes << " recomputes), "
            << st.num_partial_prefills << " partial prefills, " << st.num_discarded_samples
            << " discarded, " << sim.num_fed() << " fed\n";
  if (mode == Mode::async) {
    EXPECT_EQ(sim.max_pending(), 2) << "no two steps were ever outstanding";
    EXPECT_GT(sim.num_fed(), 0) << "no step ever decoded a placeholder";
  }
  if (spec.max_seqs == 1) return;  // one sequence at a time never needs to preempt
  EXPECT_GT(st.num_preemptions, 0) << "the pool is meant to be tight enough to preempt";
  if (spec.cpu_blocks == 0) {
    EXPECT_EQ(st.num_swap_outs, 0);
    EXPECT_GT(st.num_recomputes, 0);
  } else if (spec.cpu_blocks >= spec.gpu_blocks * 4) {
    EXPECT_GT(st.num_swap_outs, 0);
    // Everything swapped out comes back, except (async) a sequence whose last sample was in
    // flight when it was swapped out: it stops while swapped.
    if (mode == Mode::sync) {
      EXPECT_EQ(st.num_swap_ins, st.num_swap_outs);
    } else {
      EXPECT_LE(st.num_swap_ins, st.num_swap_outs);
    }
  }
  EXPECT_GT(st.num_partial_prefills, 0) << "prompts are meant to exceed the budget sometimes";
}

INSTANTIATE_TEST_SUITE_P(Pools, SchedulerSimulation,
                         ::testing::Combine(::testing::ValuesIn(kSpecs),
                                            ::testing::Values(Mode::sync, Mode::async)),
                         [](const ::testing::TestParamInfo<std::tuple<SimSpec, Mode>>& info) {
                           return std::get<0>(info.param).name + "_" +
                                  mode_name(std::get<1>(info.param));
                         });

// The same workload in both modes: the fake model's tokens depend only on (request, position),
// so the modes must agree token for token (and on why each request stopped), whatever the
// different interleavings of preemptions, swaps and chunks. No oracle here: the model samples
// a plausible token everywhere, discarded samples included, and synchronous mode is the
// reference for async mode.
class SchedulerSyncVsAsync : public ::testing::TestWithParam<SimSpec> {};

TEST_P(SchedulerSyncVsAsync, GenerateTheSameTokensPerRequest) {
  Simulation sync(GetParam(), Mode::sync, /*oracle=*/false);
  Simulation async(GetParam(), Mode::async, /*oracle=*/false);
  sync.run();
  async.run();
  ASSERT_EQ(sync.outputs().size(), async.outputs().size());
  for (const auto& [id, out] : sync.outputs()) {
    ASSERT_EQ(async.outputs().count(id), 1u) << "request " << id;
    EXPECT_EQ(async.outputs().at(id), out) << "request " << id;
    EXPECT_EQ(async.reasons().at(id), sync.reasons().at(id)) << "request " << id;
  }
  EXPECT_EQ(sync.stats().num_generated_tokens, async.stats().num_generated_tokens);
}

INSTANTIATE_TEST_SUITE_P(Pools, SchedulerSyncVsAsync, ::testing::ValuesIn(kSpecs), spec_name);

// 300 requests of up to 30 + 40 tokens against 256 GPU token slots: at most a handful fit at
// once. Nothing may crash, stall, leak or lose a token.
class SchedulerManyRequests : public ::testing::TestWithParam<Mode> {};

TEST_P(SchedulerManyRequests, ManyMoreRequestsThanKvSpaceAllFinish) {
  const SimSpec spec{"many", 99, 300, 32, 6, 8, 16, 64, 32, 128, 30, 40};
  Simulation sim(spec, GetParam());
  sim.run();
  const SchedulerStats& st = sim.stats();
  EXPECT_EQ(sim.accepted(), 300);
  EXPECT_GT(st.num_preemptions, 0);
  EXPECT_GT(st.num_swap_outs, 0);
  EXPECT_GT(st.num_recomputes, 0);  // the CPU pool (6 blocks) overflows too
  EXPECT_EQ(st.num_finished, 300);
  if (GetParam() == Mode::async) {
    EXPECT_GT(st.num_discarded_samples, 0) << "no EOS arrived with the next step in flight";
  }
  std::cout << "[ stats    ] " << mode_name(GetParam()) << ": " << st.num_steps << " steps, "
            << st.num_preemptions << " preemptions (" << st.num_swap_outs << " swap-outs, "
            << st.num_recomputes << " recomputes), " << st.num_discarded_samples
            << " discarded samples\n";
}

INSTANTIATE_TEST_SUITE_P(Modes, SchedulerManyRequests, ::testing::Values(Mode::sync, Mode::async),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           return std::string(mode_name(info.param));
                         });

}  // namespace
}  // namespace day18
