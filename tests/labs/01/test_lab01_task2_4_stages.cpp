// Lab 01, tasks 2-4 (GPU): the H2D, the compute stream's waits, the D2H.
//
// A missing wait rarely shows in a normal run: the stage it should wait for is usually done
// already. So these tests hold one stream still with a Gate (lab01_device.h) and look at what the
// others do meanwhile; then they open it and compare the step's tokens with the CPU backend's
// (the tiny model, fp32, greedy, recomputed from scratch: no code of yours in the reference).
//   held compute stream -> the H2D must finish (and then the staging may be rewritten), the D2H
//                          must not start
//   held H2D            -> the compute must not finish (it waits on h2d_done)
//   held swap-in        -> the compute must not finish (it waits on cache_done)
// How a test holds the H2D or the swaps: they wait (device-side) on the last compute_done of a
// parity; the test records that event itself behind its gate.
// Every held step follows an unheld one of the same shape on the same rig: the first step of a
// shape may do one-off set-up that waits for the device (a lazily created buffer), and behind a
// closed gate that wait would last until the gate's timeout.
// Every test runs whole steps, so tasks 1-5 must all be written before any of them passes.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "tests/labs/01/lab01.h"

namespace day18 {
namespace {

using lab01::completes_within;
using lab01::Gate;
using lab01::StepRig;

// ---- Task 2: the H2D ------------------------------------------------------------------------

TEST(Lab01_Task2_H2d, TheStagingMayBeRewrittenOnceH2dDoneHasFired) {
  DAY18_REQUIRE_GPU();
  // h2d_done is the promise that the pinned staging has been read: the CPU rewrites it for the
  // step after next as soon as the event has fired. The copy must be on the h2d stream, between
  // h2d_start and h2d_done, and must not wait for the compute stream's work.
  // A big step (8 x 2048 tokens, 512 KiB of inputs, a copy of about 10 us).
  StepRig rig(/*num_cpu_blocks=*/0, /*max_model_len=*/2048, /*max_num_tokens=*/16384);
  const auto xs = rig.add_random(8, 2048, 101);
  const SchedulerOutput out = rig.next_step(xs);
  auto bump = [&](const PreparedStep& p) {  // other valid token ids in the staging
    int32_t* staged = rig.staged_tokens(p);
    for (int64_t t = 0; t < p.layout.num_tokens; ++t)
      staged[t] = static_cast<int32_t>((staged[t] + 1) % rig.vocab());
  };
  // The step's tokens with nothing in the way, and with the staging rewritten BEFORE submit
  // (they must differ, or this test proves nothing). Prefills: each run rewrites all the K/V.
  PreparedStep p = rig.prepare(out, 0);
  rig.submit(out, p);
  const std::vector<int32_t> want = rig.wait(p);
  p = rig.prepare(out, 1);
  bump(p);
  rig.submit(out, p);
  ASSERT_NE(rig.wait(p), want) << "test setup: pick another seed";

  p = rig.prepare(out, 0);
  Gate gate;
  gate.close_on(rig.exec().compute_stream());  // the compute stream is busy "with step N-1"
  rig.submit(out, p);
  const bool h2d_done = completes_within(rig.exec().events(p.parity).h2d_done, 2000);
  bump(p);
  gate.open();
  const std::vector<int32_t> got = rig.wait(p);
  EXPECT_TRUE(h2d_done) << "h2d_done did not fire within 2 s while the compute stream was busy: "
                           "the H2D (or its events) waits for the compute stream's work";
  EXPECT_EQ(got, want) << "the step computed from staging rewritten AFTER h2d_done fired: the "
                          "copy had not happened yet when h2d_done fired. Is the cudaMemcpyAsync "
                          "on the h2d stream, between h2d_start and h2d_done?";
}

TEST(Lab01_Task2_H2d, TheCopyWaitsUntilItsParityBufferIsFree) {
  DAY18_REQUIRE_GPU();
  // The device input buffer of a parity is read by that parity's last compute: the H2D must wait
  // (device-side) on its compute_done before overwriting it. The test stands in for that compute:
  // it records the parity's compute_done behind its gate.
  StepRig rig;
  rig.run_step(rig.add_random(4, 12, 201), 0);  // unheld first: see the file's header
  const auto xs = rig.add_random(4, 12, 202);
  const std::vector<int32_t> want = rig.reference_next(xs);
  const SchedulerOutput out = rig.next_step(xs);
  const PreparedStep p = rig.prepare(out, 1);
  Stream side;
  Gate gate;
  gate.close_on(side);
  rig.exec().events(p.parity).compute_done.record(side);
  rig.submit(out, p);
  ASSERT_FALSE(gate.timed_out()) << "submit() returned only when the test's gate timed out: the "
                                    "CPU waited for the held H2D (a host wait in submit())";
  const bool copied_early = completes_within(rig.exec().events(p.parity).h2d_done, 300);
  gate.open();
  const std::vector<int32_t> got = rig.wait(p);
  EXPECT_FALSE(copied_early)
      << "the H2D finished while the last compute of its parity (its compute_done) had not: it "
         "would overwrite inputs that compute may still read. h2d stream: wait on "
         "slot.ev->compute_done first";
  EXPECT_EQ(got, want);
}

TEST(Lab01_Task2_H2d, StepNPlusOnesCopyStartsBeforeStepNsComputeEnds) {
  DAY18_REQUIRE_GPU();
  // The point of the pipeline: while the GPU computes step N, step N+1's inputs cross PCIe.
  // From the executor's events, as the engine's metrics read them (engine_metrics.cpp).
  LLMEngine e(lab01::decode_config());
  lab01::add_decode_requests(e, 40);
  e.run_until_done();
  const auto& r = e.records();
  int overlapped = 0, checked = 0;
  double worst_gap_us = 0, step_ms = 0;
  for (size_t i = 5; i + 1 < r.size(); ++i) {
    if (r[i].num_prefills > 0 || r[i + 1].num_prefills > 0) continue;
    ++checked;
    if (r[i + 1].h2d_start < r[i].compute_end) ++overlapped;
    worst_gap_us = std::max(worst_gap_us, (r[i + 1].compute_start - r[i].compute_end) * 1e3);
    step_ms = r[i].compute_end - r[i].compute_start;
  }
  std::cout << "[ overlap  ] " << overlapped << "/" << checked
            << " decode steps: H2D of N+1 began before compute of N ended; worst gap "
            << worst_gap_us << " us, step " << step_ms * 1e3 << " us\n";
  ASSERT_GT(checked, 20);
  EXPECT_GE(overlapped, checked * 9 / 10)
      << "step N+1's H2D started after step N's compute had ended: does the H2D wait for the "
         "other parity's compute (it needs only its own parity's compute_done), or does wait() "
         "(task 5) block the CPU on more than d2h_done?";
  EXPECT_LT(worst_gap_us, std::max(50.0, 0.1 * step_ms * 1e3))
      << "the GPU sat idle between two decode steps";
}

// ---- Task 3: the compute stream's waits -------------------------------------------------------

TEST(Lab01_Task3_ComputeWait, TheForwardWaitsForTheH2dOfItsInputs) {
  DAY18_REQUIRE_GPU();
  // Step A leaves its inputs in parity 0's device buffer; step B (same shapes, other sequences)
  // uses parity 0 too, with its H2D held back. A compute that does not wait on h2d_done runs on
  // A's inputs.
  StepRig rig;
  const auto xs = rig.add_random(4, 12, 303);
  const auto ys = rig.add_random(4, 12, 304);
  const std::vector<int32_t> a = rig.run_step(xs, 0);
  const std::vector<int32_t> want = rig.reference_next(ys);
  ASSERT_NE(a, want) << "test setup: pick other seeds";
  const SchedulerOutput out = rig.next_step(ys);
  const PreparedStep p = rig.prepare(out, 0);
  Stream side;
  Gate gate;
  gate.close_on(side);
  rig.exec().events(0).compute_done.record(side);  // holds B's H2D (task 2's wait)
  rig.submit(out, p);
  ASSERT_FALSE(gate.timed_out())
      << "submit() returned only when the test's gate timed out (5 s): the CPU waited for the "
         "held H2D. The compute stream's waits are device-side (compute stream .wait(event)), "
         "never event.synchronize()";
  const bool computed_early = completes_within(rig.exec().events(0).compute_done, 300);
  const bool h2d_held = !rig.exec().events(0).h2d_done.query();
  gate.open();
  const std::vector<int32_t> got = rig.wait(p);
  ASSERT_TRUE(h2d_held) << "the test could not hold the H2D back: it did not wait on its parity's "
                           "compute_done (task 2; Lab01_Task2_H2d.TheCopyWaitsUntilItsParityBuffer"
                           "IsFree)";
  EXPECT_FALSE(computed_early)
      << "the step's compute finished while its H2D was still held back: the compute stream must "
         "wait on h2d_done (device-side: compute stream .wait(event)) before the forward";
  EXPECT_EQ(got, want) << (got == a ? "these are step A's tokens: the forward read the previous "
                                      "inputs of this parity's device buffer"
                                    : "");
}

TEST(Lab01_Task3_ComputeWait, ASwappedInSequenceIsReadOnlyAfterItsSwapIn) {
  DAY18_REQUIRE_GPU();
  // X prefills (A), is swapped out while Y prefills into X's old blocks (B), Y is freed and X is
  // swapped back in, into Y's blocks, and decodes (C). The test holds C's swaps (the cache stream
  // waits on the last step's compute_done): a compute that does not wait on cache_done decodes X
  // over Y's keys and values.
  StepRig rig(/*num_cpu_blocks=*/16);
  const auto xs = rig.add_random(4, 12, 405);
  rig.run_step(xs, 0);
  rig.run_step(xs, 1);  // a decode too, unheld: one-off set-up of the decode path happens here
  SchedulerOutput b;
  std::vector<std::pair<int64_t, int64_t>> swap_out, swap_in;
  for (Sequence* x : xs)
    for (auto m : rig.bm().swap_out(*x)) swap_out.push_back(m);
  const auto ys = rig.add_random(4, 12, 406);
  b = rig.next_step(ys);
  b.swap_out = swap_out;
  const PreparedStep pb = rig.prepare(b, 1);
  rig.submit(b, pb);
  rig.commit(b, rig.wait(pb));
  for (Sequence* y : ys) rig.bm().free(*y);
  for (Sequence* x : xs)
    for (auto m : rig.bm().swap_in(*x)) swap_in.push_back(m);
  SchedulerOutput c = rig.next_step(xs);
  c.swap_in = swap_in;
  const PreparedStep pc = rig.prepare(c, 0);
  const std::vector<int32_t> want = rig.reference_next(xs);
  Stream side;
  Gate gate;
  gate.close_on(side);
  rig.exec().events(pb.parity).compute_done.record(side);  // holds C's swaps
  const auto t0 = std::chrono::steady_clock::now();
  rig.submit(c, pc);
  const double submit_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(gate.timed_out())
      << "submit() returned only when the test's gate timed out (" << submit_ms
      << " ms): the CPU waited for the held swaps. The compute stream's waits are device-side "
         "(compute stream .wait(event)), never event.synchronize()";
  const bool computed_early = completes_within(rig.exec().events(pc.parity).compute_done, 300);
  gate.open();
  const std::vector<int32_t> got = rig.wait(pc);
  EXPECT_FALSE(computed_early)
      << "the step's compute finished while its swap-in was still held back: when the step "
         "swaps, the compute stream must wait on cache_done";
  EXPECT_EQ(got, want) << "the decode after the swap-in must see the sequence's own K/V";
}

// ---- Task 4: the D2H ------------------------------------------------------------------------

TEST(Lab01_Task4_D2h, TheSamplesAreCopiedOnlyAfterTheComputeIsDone) {
  DAY18_REQUIRE_GPU();
  // Step A leaves its samples in parity 1's buffers; step B (parity 1) has its compute held. A
  // D2H that does not wait on compute_done first copies A's samples.
  StepRig rig;
  const auto xs = rig.add_random(4, 12, 507);
  const auto ys = rig.add_random(4, 12, 508);
  const std::vector<int32_t> a = rig.run_step(xs, 1);
  const std::vector<int32_t> want = rig.reference_next(ys);
  ASSERT_NE(a, want) << "test setup: pick other seeds";
  const SchedulerOutput out = rig.next_step(ys);
  const PreparedStep p = rig.prepare(out, 1);
  Gate gate;
  gate.close_on(rig.exec().compute_stream());
  rig.submit(out, p);
  const bool copied_early = completes_within(rig.exec().events(1).d2h_done, 300);
  gate.open();
  const std::vector<int32_t> got = rig.wait(p);
  EXPECT_FALSE(copied_early) << "d2h_done fired while the compute was still held back: the d2h "
                                "stream must wait on compute_done before the copy";
  EXPECT_EQ(got, want) << (got == a ? "these are step A's samples: the copy ran before the "
                                      "compute wrote this step's (copy after the wait)"
                                    : "");
}

TEST(Lab01_Task4_D2h, CudaTokensEqualTheCpuBackendOnTinyFp32) {
  DAY18_REQUIRE_GPU();
  // The whole CUDA engine (your four stages) against the tiny model run alone on the CPU
  // backend, greedy, fp32: the same tokens, with async scheduling off and on.
  LlamaModel ref = lab01::reference_model();
  const auto prompts = lab01::random_prompts(4, 512, 31);
  const std::vector<SamplingParams> ps(prompts.size(), lab01::greedy(32));
  std::vector<std::vector<int32_t>> want;
  for (const auto& pr : prompts) want.push_back(lab01::reference_greedy(ref, pr, 32));
  for (bool async : {false, true}) {
    EngineConfig c = lab01::tiny_config(Device::cuda);
    c.async_scheduling = async;
    LLMEngine gpu(c);
    EXPECT_EQ(lab01::run_engine(gpu, prompts, ps), want) << "async scheduling " << async;
  }
}

}  // namespace
}  // namespace day18
