// Lab 01, task 5 (GPU): the CPU's only wait. wait(step) blocks on that step's d2h_done and
// nothing else (not cudaDeviceSynchronize, not a stream synchronize: in async scheduling the next
// step is already queued behind it), then reads the step's times from its events.
//   A held step N+1 must not delay wait(N); the times must be positive and agree with the
//   engine's own reading of the same events (engine_metrics.cpp); async scheduling on and off
//   give the same tokens. The timing test (scripts/lab check, on a GPU) records the stream lanes
//   of four decode steps, which scripts/lab plot 01 draws.
#include <algorithm>
#include <cmath>
#include <string>

#include "tests/labs/01/lab01.h"

namespace day18 {
namespace {

using lab01::Gate;
using lab01::StepRig;

TEST(Lab01_Task5_CpuWait, WaitingForAStepDoesNotWaitForTheStepSubmittedAfterIt) {
  DAY18_REQUIRE_GPU();
  // Step A is submitted, then the compute stream is held, then step B is submitted (async
  // scheduling's order: submit N+1, then wait for N). wait(A) must return while B is held.
  StepRig rig;
  const auto xs = rig.add_random(4, 12, 609);
  const auto ys = rig.add_random(4, 12, 610);
  const std::vector<int32_t> want_a = rig.reference_next(xs), want_b = rig.reference_next(ys);
  const SchedulerOutput a = rig.next_step(xs);
  const PreparedStep pa = rig.prepare(a, 0);
  rig.submit(a, pa);
  Gate gate(/*timeout_s=*/3.0);
  gate.close_on(rig.exec().compute_stream());
  const SchedulerOutput b = rig.next_step(ys);
  const PreparedStep pb = rig.prepare(b, 1);
  rig.submit(b, pb);
  const std::vector<int32_t> got_a = rig.wait(pa);
  const bool timed_out = gate.timed_out();
  const bool b_still_held = !rig.exec().events(pb.parity).compute_done.query();
  gate.open();
  const std::vector<int32_t> got_b = rig.wait(pb);
  EXPECT_FALSE(timed_out)
      << "wait() for step A returned only when the test's gate on step B timed out (3 s): it "
         "waited for work queued after step A. Wait on the step's d2h_done event only (a "
         "cudaDeviceSynchronize or a stream synchronize waits for everything queued)";
  EXPECT_TRUE(b_still_held) << "step B's compute was done before the gate opened";
  EXPECT_EQ(got_a, want_a);
  EXPECT_EQ(got_b, want_b);
}

TEST(Lab01_Task5_CpuWait, StepTimesFromTheEventsArePositiveAndAddUp) {
  DAY18_REQUIRE_GPU();
  // StepTimes from wait() against the engine's timeline, which engine_metrics.cpp reads from the
  // same events (elapsed from one origin event): they must agree to a few microseconds.
  LLMEngine e(lab01::tiny_config(Device::cuda));
  const auto prompts = lab01::random_prompts(4, 512, 17);
  lab01::run_engine(e, prompts, std::vector<SamplingParams>(prompts.size(), lab01::greedy(16)));
  const auto& r = e.records();
  ASSERT_GT(r.size(), 10u);
  constexpr double kTol = 0.005;  // ms: event resolution is ~0.5 us; two readings each
  double h2d_total = 0, d2h_total = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const StepTimes& t = r[i].gpu;
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_GT(t.compute_ms, 0);
    EXPECT_GT(t.model_ms, 0);
    EXPECT_GE(t.sampling_ms, 0);
    EXPECT_GE(t.h2d_ms, 0);
    EXPECT_GE(t.d2h_ms, 0);
    EXPECT_NEAR(t.model_ms + t.sampling_ms, t.compute_ms, kTol + 1e-3 * t.compute_ms)
        << "model (compute_start..forward_done) + sampling (forward_done..compute_done) = compute";
    EXPECT_NEAR(t.compute_ms, r[i].compute_end - r[i].compute_start, kTol)
        << "compute_ms = compute_start..compute_done";
    EXPECT_NEAR(t.h2d_ms, r[i].h2d_end - r[i].h2d_start, kTol) << "h2d_ms = h2d_start..h2d_done";
    EXPECT_FALSE(t.graph);
    h2d_total += t.h2d_ms;
    d2h_total += t.d2h_ms;
  }
  EXPECT_GT(h2d_total, 0);
  EXPECT_GT(d2h_total, 0) << "d2h_ms = compute_done..d2h_done";
}

TEST(Lab01_Task5_CpuWait, AsyncSchedulingOnAndOffGiveTheSameTokens) {
  DAY18_REQUIRE_GPU();
  // Async scheduling keeps two steps in flight (N+1 is submitted before wait(N)), so wait()
  // must read the samples of the step it was given (its parity), not the last one submitted.
  // Seeded sampling and an EOS that stops a request mid-way, as the engine's own test does.
  EngineConfig c = lab01::tiny_config(Device::cuda);
  c.async_scheduling = false;
  const auto prompts = lab01::random_prompts(6, 512, 23);
  std::vector<SamplingParams> ps;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SamplingParams p = lab01::greedy(16);
    if (i % 2) {
      p.temperature = 0.8f;
      p.top_k = 20;
      p.top_p = 0.9f;
      p.seed = 1000 + static_cast<int64_t>(i);
    }
    ps.push_back(p);
  }
  LLMEngine first(c);
  ps[0].eos_token_id = lab01::run_engine(first, prompts, ps)[0][5];
  LLMEngine sync(c);
  const auto want = lab01::run_engine(sync, prompts, ps);
  EXPECT_LT(want[0].size(), 16u);
  c.async_scheduling = true;
  LLMEngine as(c);
  EXPECT_EQ(lab01::run_engine(as, prompts, ps), want);
}

// The lanes of four consecutive steady decode steps (ms since the first one's H2D began) and the
// median decode step time, for scripts/lab check (yours beside the engine's) and scripts/lab
// plot 01. Key "lane:<step>:<stream>": start in p20_ms, end in p80_ms, duration in median_ms.
TEST(Lab01_Task5_CpuWait, TimingOfDecodeStepsLaneByLane) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check (on a GPU)";
  LLMEngine e(lab01::decode_config());
  lab01::add_decode_requests(e, 40);
  e.run_until_done();
  const auto& r = e.records();
  auto decode = [&](size_t i) { return r[i].num_prefills == 0; };
  // Step time = compute_end(N) - compute_end(N-1): the pipeline's period, gaps included.
  std::vector<double> periods;
  for (size_t i = 6; i < r.size(); ++i)
    if (decode(i) && decode(i - 1)) periods.push_back(r[i].compute_end - r[i - 1].compute_end);
  ASSERT_GT(periods.size(), 8u);
  std::sort(periods.begin(), periods.end());
  const double median = periods[periods.size() / 2];
  lab::record_timing(
      {"decode_step", median, periods[periods.size() / 5], periods[periods.size() * 4 / 5], 0});
  size_t k = 5;
  while (k + 4 < r.size() && !(decode(k) && decode(k + 1) && decode(k + 2) && decode(k + 3))) ++k;
  ASSERT_LT(k + 4, r.size()) << "no four consecutive decode steps";
  const double t0 = r[k].h2d_start;
  for (int j = 0; j < 4; ++j) {
    const StepRecord& s = r[k + static_cast<size_t>(j)];
    const double lanes[3][2] = {{s.h2d_start, s.h2d_end},
                                {s.compute_start, s.compute_end},
                                {s.compute_end, s.compute_end + s.gpu.d2h_ms}};
    const char* names[3] = {"h2d", "compute", "d2h"};
    for (int l = 0; l < 3; ++l) {
      const double a = lanes[l][0] - t0, b = lanes[l][1] - t0;
      lab::record_timing({"lane:" + std::to_string(j) + ":" + names[l], b - a, a, b, 0});
    }
  }
}

}  // namespace
}  // namespace day18
