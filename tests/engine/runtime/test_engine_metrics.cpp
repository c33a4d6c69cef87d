// How the engine measures a run: each step's share of the wall time (decode tokens/s), the compute
// timeline, the GPU busy fraction over the whole run and the steady-state idle between decode
// steps (DecodeIdleMeter: graph captures and swaps are one-offs left out). On the CPU backend the
// compute runs inside submit(), so in async mode step N+1 computes before step N's outputs are
// processed: these tests check that the time still lands in the step that computed. On a GPU:
// a graph capture is flagged, left out of the steady idle and of the tokens/s, and the issue's
// target (idle <= 5% between decode steps at batch 64 with graphs) is met.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <numeric>

#include "engine/runtime/engine.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

EngineConfig tiny_cpu(bool async) {
  EngineConfig c;
  c.preset = "tiny";
  c.device = Device::cpu;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;
  c.max_model_len = 128;
  c.num_gpu_blocks = 64;
  c.num_cpu_blocks = 64;
  c.async_scheduling = async;
  return c;
}

// `n` requests of `prompt_len` random tokens, `output_len` greedy tokens each (no EOS stop).
void add_requests(LLMEngine& e, int n, int prompt_len, int output_len, uint64_t seed) {
  Rng rng(seed);
  const int64_t vocab = e.model().config().vocab_size;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(prompt_len));
    for (auto& t : p) t = static_cast<int32_t>(rng.randint(0, vocab - 1));
    SamplingParams sp;
    sp.temperature = 0.f;
    sp.max_tokens = output_len;
    sp.ignore_eos = true;
    e.add_request(p, sp);
  }
}

StepRecord decode_step(int64_t step, double start, double end) {
  StepRecord r;
  r.step = step;
  r.num_seqs = r.num_tokens = 4;
  r.compute_start = start;
  r.compute_end = end;
  return r;
}

TEST(DecodeIdleMeter, CountsOnlyGapsBetweenDecodeStepsThatAreNotOneOffs) {
  StepRecord prefill = decode_step(0, 0, 10);
  prefill.num_prefills = 4;
  prefill.num_tokens = 32;
  StepRecord captured = decode_step(2, 40, 42);  // the GPU waited ~27 ms for the capture
  captured.gpu.graph = captured.gpu.captured = true;
  captured.gpu.capture_ms = 27;
  StepRecord swapped = decode_step(4, 50, 52);  // its compute waited for the swap-in
  swapped.swaps = true;
  const std::vector<StepRecord> recs = {
      prefill,
      decode_step(1, 10.5, 12.5),  // after a prefill: not counted
      captured,                    // not counted
      decode_step(3, 42.1, 44.1),  // gap 0.1, span 2.1
      swapped,                     // not counted
      decode_step(5, 52.3, 54.3),  // gap 0.3, span 2.3
      decode_step(6, 54.5, 56.5),  // gap 0.2, span 2.2
  };
  const std::vector<bool> want = {false, false, false, true, false, true, true};
  DecodeIdleMeter m;
  for (size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(m.add(recs[i]), want[i]) << "record " << i;
  EXPECT_EQ(m.pairs(), 3);
  EXPECT_NEAR(m.median_gap_ms(), 0.2, 1e-12);
  EXPECT_NEAR(m.idle_fraction(), 0.6 / 6.6, 1e-12);
  m.add(decode_step(7, 56.9, 58.9));  // gap 0.4, span 2.4: an even count takes the middle two
  EXPECT_NEAR(m.median_gap_ms(), 0.25, 1e-12);
  EXPECT_NEAR(m.idle_fraction(), 1.0 / 9.0, 1e-12);
  // A step overlapping the previous one (not possible on one stream) counts as no gap.
  m.add(decode_step(8, 58.0, 60.9));
  EXPECT_EQ(m.pairs(), 5);
  EXPECT_NEAR(m.idle_fraction(), 1.0 / 11.0, 1e-12);
  // Nothing counted: no pairs, no idle.
  DecodeIdleMeter none;
  none.add(prefill);
  none.add(decode_step(1, 10.5, 12.5));
  EXPECT_EQ(none.pairs(), 0);
  EXPECT_EQ(none.median_gap_ms(), 0);
  EXPECT_EQ(none.idle_fraction(), 0);
}

TEST(DecodeIdleMeter, RunningMedianEqualsTheSortedMedianAfterEveryStep) {
  Rng rng(7);
  DecodeIdleMeter m;
  std::vector<double> gaps;
  double t = 0;
  m.add(decode_step(0, t, t + 1));
  t += 1;
  for (int i = 1; i <= 101; ++i) {
    // Repeated values too: gaps on a 0.25 grid.
    const double gap = 0.25 * static_cast<double>(rng.randint(0, 12));
    gaps.push_back(gap);
    ASSERT_TRUE(m.add(decode_step(i, t + gap, t + gap + 1)));
    t += gap + 1;
    std::vector<double> s = gaps;
    std::sort(s.begin(), s.end());
    const size_t n = s.size();
    const double want = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    ASSERT_DOUBLE_EQ(m.median_gap_ms(), want) << "after " << n << " gaps";
  }
  const double idle = std::accumulate(gaps.begin(), gaps.end(), 0.0);
  EXPECT_NEAR(m.idle_fraction(), idle / (idle + 101.0), 1e-12);
}

struct CpuRun {
  EngineMetrics m;
  std::vector<StepRecord> recs;
};

CpuRun run_cpu(bool async, int requests, int prompt_len, int output_len, uint64_t seed = 3) {
  LLMEngine e(tiny_cpu(async));
  add_requests(e, requests, prompt_len, output_len, seed);
  e.run_until_done();
  return {e.metrics(), e.records()};
}

// The bug this guards against: with async scheduling the CPU backend computes step N+1 inside
// submit() before step N's outputs are processed; timing steps by the interval between processed
// outputs put N+1's compute into step N (decode tok/s of 364,431 async vs 417 sync, 2 tokens).
TEST(EngineMetrics, CpuStepsAreChargedTheirOwnComputeWithAndWithoutAsync) {
  for (bool async : {false, true}) {
    const CpuRun r = run_cpu(async, 4, 8, 6);
    ASSERT_EQ(r.recs.size(), 6u);
    double sum_wall = 0, model = 0, sampling = 0;
    for (const StepRecord& s : r.recs) {
      SCOPED_TRACE(::testing::Message() << "async " << async << " step " << s.step);
      EXPECT_GT(s.gpu.compute_ms, 0);
      // Its own forward + sampling ran inside its share of the wall time.
      EXPECT_GE(s.wall_ms, s.gpu.compute_ms - 1e-6);
      EXPECT_GE(s.wall_ms, s.submit_ms - 1e-6);
      EXPECT_GE(s.submit_ms, s.gpu.compute_ms - 1e-6);
      sum_wall += s.wall_ms;
      model += s.gpu.model_ms;
      sampling += s.gpu.sampling_ms;
    }
    // The steps' shares add up to the run (no capture on the CPU).
    EXPECT_NEAR(sum_wall, r.m.wall_s * 1e3, 1e-6 * r.m.wall_s * 1e3 + 1e-6);
    EXPECT_NEAR(r.m.prefill_wall_s + r.m.decode_wall_s, r.m.wall_s, 1e-6 * r.m.wall_s + 1e-9);
    EXPECT_NEAR(r.m.model_ms, model, 1e-9);
    EXPECT_NEAR(r.m.sampling_ms, sampling, 1e-9);
    EXPECT_EQ(r.m.graph_captures, 0);
    EXPECT_EQ(r.m.graph_capture_ms, 0);
    // The host-clock timeline: ordered, inside the run, one forward at a time.
    for (size_t i = 0; i < r.recs.size(); ++i) {
      EXPECT_LT(r.recs[i].compute_start, r.recs[i].compute_end) << "step " << i;
      EXPECT_GE(r.recs[i].compute_start, 0) << "step " << i;
      EXPECT_LE(r.recs[i].compute_end, r.m.wall_s * 1e3) << "step " << i;
      if (i > 0) {
        EXPECT_GE(r.recs[i].compute_start, r.recs[i - 1].compute_end) << "step " << i;
      }
    }
  }
}

TEST(EngineMetrics, CpuDecodeTokensPerSecondAgreesWithAndWithoutAsync) {
  // One decode step of 4 tokens (the reproduction): best of 3 runs per mode against
  // the noise of a shared machine. The bug gave a ratio near 1000; honest timings agree within
  // a small factor (both modes run the same forward). The bound is wide (20x) because a loaded
  // 2-core CI machine can stall either run: it is a regression test, not a timing assert.
  double best[2] = {0, 0};
  for (int rep = 0; rep < 3; ++rep)
    for (bool async : {false, true}) {
      const CpuRun r = run_cpu(async, 4, 8, 2);
      ASSERT_EQ(r.m.decode_tokens, 4);
      best[async] = std::max(best[async], r.m.decode_tokens_per_s());
    }
  std::cout << "[ decode   ] tiny CPU decode tok/s: sync " << best[0] << ", async " << best[1]
            << "\n";
  ASSERT_GT(best[0], 0);
  EXPECT_LT(best[1] / best[0], 20.0);
  EXPECT_GT(best[1] / best[0], 1 / 20.0);
}

TEST(EngineMetrics, SteadyDecodeIdleCountsConsecutiveDecodeSteps) {
  for (bool async : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "async " << async);
    LLMEngine e(tiny_cpu(async));
    add_requests(e, 4, 8, 10, 5);
    e.run_until_done();
    const EngineMetrics& m = e.metrics();
    const auto& recs = e.records();
    // Step 0 prefills all 4, steps 1..9 decode: pairs (1,2) .. (8,9).
    ASSERT_EQ(recs.size(), 10u);
    EXPECT_EQ(m.decode_steady_pairs, 8);
    DecodeIdleMeter again;
    int64_t flagged = 0;
    for (const StepRecord& r : recs) {
      EXPECT_EQ(again.add(r), r.steady_decode) << "step " << r.step;
      flagged += r.steady_decode ? 1 : 0;
    }
    EXPECT_EQ(flagged, 8);
    EXPECT_DOUBLE_EQ(m.decode_gap_median_us, again.median_gap_ms() * 1e3);
    EXPECT_DOUBLE_EQ(m.decode_idle_fraction, again.idle_fraction());
    EXPECT_GT(m.decode_gap_median_us, 0);  // the host does some bookkeeping between forwards
    EXPECT_GT(m.decode_idle_fraction, 0);
    EXPECT_LT(m.decode_idle_fraction, 1);
    EXPECT_DOUBLE_EQ(m.gpu_busy_fraction, 1 - m.decode_idle_fraction);
    EXPECT_GT(m.gpu_busy_fraction_all, 0);
    EXPECT_LE(m.gpu_busy_fraction_all, 1);
  }
  // Two output tokens: one decode step, no pair: nothing measured.
  const CpuRun r = run_cpu(true, 4, 8, 2);
  EXPECT_EQ(r.m.decode_steady_pairs, 0);
  EXPECT_EQ(r.m.gpu_busy_fraction, 0);
  EXPECT_EQ(r.m.decode_gap_median_us, 0);
}

TEST(EngineMetrics, StepsWithSwapsAreFlaggedAndLeftOutOfTheSteadyIdle) {
  // 6 requests of up to 40 + 24 tokens on 12 blocks of 16 tokens: swaps must happen.
  for (bool async : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "async " << async);
    EngineConfig c = tiny_cpu(async);
    c.num_gpu_blocks = 12;
    c.watermark = 0;
    LLMEngine e(c);
    add_requests(e, 6, 36, 24, 9);
    e.run_until_done();
    ASSERT_GT(e.scheduler().stats().num_swap_outs, 0) << "the pool should force swaps";
    int64_t with_swaps = 0, steady = 0;
    for (const StepRecord& r : e.records()) {
      with_swaps += r.swaps ? 1 : 0;
      steady += r.steady_decode ? 1 : 0;
      if (r.swaps) {
        EXPECT_FALSE(r.steady_decode) << "step " << r.step;
      }
    }
    EXPECT_GE(with_swaps, 2) << "swap-outs and swap-ins";
    EXPECT_EQ(steady, e.metrics().decode_steady_pairs);
    EXPECT_GT(steady, 0);
    double sum_wall = 0;
    for (const StepRecord& r : e.records()) sum_wall += r.wall_ms;
    EXPECT_NEAR(sum_wall, e.metrics().wall_s * 1e3, 1e-3);
  }
}

// The target, measured as the engine reports it: llama-1b fp16 (random weights), 64
// requests, 64 output tokens, CUDA graphs. The bucket's graph is captured on the first decode
// step while the GPU has nothing queued: that step is flagged, its gap is left out of the steady
// idle, and the capture's CPU time is reported on its own, not in the decode tokens/s.
TEST(EngineGpu, GraphCaptureIsFlaggedAndTheSteadyDecodeIdleMeetsTheTarget) {
  DAY18_REQUIRE_GPU();
  EngineConfig c;
  c.preset = "llama-1b";
  c.dtype = DType::f16;
  c.device = Device::cuda;
  c.max_num_seqs = 64;
  c.max_num_batched_tokens = 2048;
  c.max_model_len = 128;
  c.num_gpu_blocks = 64 * 7 + 64;
  c.num_cpu_blocks = 0;
  c.cuda_graphs = true;
  LLMEngine e(c);
  add_requests(e, 64, 32, 64, 11);
  e.run_until_done();
  const EngineMetrics& m = e.metrics();
  int64_t captured = 0;
  double capture_ms = 0, sum_wall = 0;
  for (const StepRecord& r : e.records()) {
    sum_wall += r.wall_ms;
    if (!r.gpu.captured) continue;
    ++captured;
    capture_ms += r.gpu.capture_ms;
    EXPECT_TRUE(r.gpu.graph) << "step " << r.step;
    EXPECT_FALSE(r.steady_decode) << "step " << r.step;
    EXPECT_GT(r.gpu.capture_ms, 0) << "step " << r.step;
  }
  std::cout << "[ idle     ] " << m.decode_steady_pairs << " decode pairs: median gap "
            << m.decode_gap_median_us << " us, idle " << 100 * m.decode_idle_fraction
            << "%, busy " << m.gpu_busy_fraction << " (whole run " << m.gpu_busy_fraction_all
            << "); " << m.graph_captures << " captures, " << m.graph_capture_ms << " ms; decode "
            << m.decode_tokens_per_s() << " tok/s\n";
  EXPECT_GE(m.graph_captures, 1);
  EXPECT_EQ(m.graph_captures, captured);
  EXPECT_EQ(m.graph_captures, e.executor().num_graph_captures());
  EXPECT_NEAR(m.graph_capture_ms, capture_ms, 1e-9);
  EXPECT_NEAR(m.graph_capture_ms, e.executor().graph_capture_ms(), 1e-9);
  EXPECT_GT(m.graph_replays, 50);
  // The steps' shares and the captures add up to the run.
  EXPECT_NEAR(sum_wall + m.graph_capture_ms, m.wall_s * 1e3, 1e-3);
  // 63 decode steps, the first captures: at least 60 steady pairs.
  EXPECT_GE(m.decode_steady_pairs, 60);
  EXPECT_LE(m.decode_idle_fraction, 0.05) << "target: GPU idle between decode steps <= 5%";
  EXPECT_GE(m.gpu_busy_fraction, 0.95);
}

}  // namespace
}  // namespace day18
