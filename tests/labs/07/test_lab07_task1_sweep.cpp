// Lab 07, task 1: run_sweep. Each configuration is launched, checked against the oracle, and
// only then timed; a wrong one is never timed; the timing repeats until the spread is small (or
// the cap, or the budget); the output is checked again after timing. On a fake device (CPU), then
// on the GPU with the real PagedAttention thread counts.
#include "tests/labs/07/lab07.h"

#include <set>

#include "engine/core/compare.h"
#include "engine/kernels/paged_attention.h"
#include "engine/tuning/gpu_support.h"
#include "engine/tuning/kernel_inputs.h"

namespace day18 {
namespace {

using lab07::FakeDevice;
using tuning::Point;

TEST(Lab07_Task1_Sweep, ChecksBeforeTimingThenChecksAgain) {
  FakeDevice f;
  const auto pts = tuning::run_sweep({f.candidate(128, 42, 128)}, f.options());
  ASSERT_EQ(pts.size(), 1u);
  ASSERT_GE(f.log.size(), 5u) << "expected poison, launch, sync, check, time...";
  EXPECT_EQ(f.log[0], "poison") << "prepare (poison the output) comes first";
  EXPECT_EQ(f.log[1], "launch");
  EXPECT_EQ(f.log[2], "sync") << "wait for the launch before reading its output";
  EXPECT_EQ(f.log[3], "check") << "the check comes BEFORE any timing";
  EXPECT_EQ(f.log[4], "time");
  EXPECT_EQ(f.log.back(), "check") << "and once more after the timed runs";
  EXPECT_TRUE(pts[0].correct);
  EXPECT_TRUE(pts[0].timed);
  EXPECT_DOUBLE_EQ(pts[0].median_us, 1000.0) << "the timer gives ms; the point holds us";
  EXPECT_EQ(pts[0].label, "128 threads");
  EXPECT_EQ(pts[0].config.at("threads"), 128);
}

TEST(Lab07_Task1_Sweep, AWrongConfigurationIsNeverTimed) {
  FakeDevice f;
  const auto pts =
      tuning::run_sweep({f.candidate(128, 42, 128), f.candidate(512, 40, 512)}, f.options());
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_FALSE(pts[1].correct);
  EXPECT_FALSE(pts[1].timed) << "a wrong configuration has no time: it cannot win";
  EXPECT_DOUBLE_EQ(pts[1].max_abs_err, 2.0);
  EXPECT_NE(pts[1].check_report.find("expected 42"), std::string::npos)
      << "keep the check's report: " << pts[1].check_report;
  EXPECT_EQ(f.timed_runs, 20) << "only the correct configuration was timed";
}

TEST(Lab07_Task1_Sweep, RepeatsUntilTheSpreadIsSmall) {
  FakeDevice quiet;
  EXPECT_EQ(tuning::run_sweep({quiet.candidate(128, 42, 128)}, quiet.options())[0].repeats, 20)
      << "no noise: stop at min_repeats";
  FakeDevice noisy;
  noisy.times_ms = {1.0, 1.3};  // (p80 - p20) / median ~ 26%: never small
  tuning::SweepOptions o = noisy.options();
  o.max_repeats = 70;
  const Point p = tuning::run_sweep({noisy.candidate(128, 42, 128)}, o)[0];
  EXPECT_EQ(p.repeats, 70) << "noisy: keep going until max_repeats";
  EXPECT_NEAR(p.p20_us, 1000.0, 1e-9);
  EXPECT_NEAR(p.p80_us, 1300.0, 1e-9);
  FakeDevice hurried;
  hurried.times_ms = {1.0, 1.3};
  tuning::SweepOptions b = hurried.options();
  b.point_budget_s = 0;
  EXPECT_EQ(tuning::run_sweep({hurried.candidate(128, 42, 128)}, b)[0].repeats, 10)
      << "budget spent after the first round: stop";
}

TEST(Lab07_Task1_Sweep, AnOutputThatGoesWrongWhileTimedDropsTheTiming) {
  FakeDevice f;
  tuning::Candidate c = f.candidate(128, 42, 128);
  int runs = 0;
  c.launch = [&](cudaStream_t) { f.output = ++runs > 3 ? 41 : 42; };
  const Point p = tuning::run_sweep({c}, f.options())[0];
  EXPECT_FALSE(p.correct) << "checked again after timing: a race that shows under repetition";
  EXPECT_FALSE(p.timed);
  EXPECT_EQ(p.check_report.rfind("after timing: ", 0), 0u) << p.check_report;
}

TEST(Lab07_Task1_Sweep, TheSeedsSweepIsCaughtByWhatItLaunched) {
  // The seed: for block_size in [64, 128, 256, 512], the same kernel (128 threads) every time.
  FakeDevice seed;
  std::vector<tuning::Candidate> cs;
  for (int t : {64, 128, 256, 512}) cs.push_back(seed.candidate(t, 42, 128));
  tuning::Group g;
  g.points = tuning::run_sweep(cs, seed.options());
  for (const Point& p : g.points)
    ASSERT_TRUE(p.extra.contains("launched"))
        << "keep what the recorder saw in extra[\"launched\"]";
  EXPECT_FALSE(tuning::check_parameter_reached(g).reached)
      << "four configurations, one launch: the parameter never reached the kernel";
  FakeDevice fixed;
  cs.clear();
  for (int t : {64, 128, 256, 512}) cs.push_back(fixed.candidate(t, 42, t));
  g.points = tuning::run_sweep(cs, fixed.options());
  EXPECT_TRUE(tuning::check_parameter_reached(g).reached);
}

TEST(Lab07_Task1_Sweep, OnTheGpuEveryThreadCountIsCheckedAndLaunched) {
  DAY18_REQUIRE_GPU();
  tuning::AttentionInputs a = tuning::make_attention_inputs(8, 500, 32, 8, 128, 16, DType::f16, 3);
  Stream stream;
  std::vector<tuning::Candidate> cs;
  for (int t : cuda::kPagedAttentionThreadCounts) {
    tuning::Candidate c;
    c.config = {{"threads", t}};
    c.label = std::to_string(t) + " threads";
    c.prepare = [&](cudaStream_t s) { poison(a.out, s); };
    c.launch = [&a, t](cudaStream_t s) {
      cuda::paged_attention_v1_configured(a.out, a.query, a.key_cache, a.value_cache,
                                          a.block_tables, a.seq_idx, a.context_lens, a.scale, 500,
                                          t, 0, s);
    };
    c.check = [&] {
      return tuning::compare_output(a.out, a.expected, default_tolerance(DType::f16));
    };
    cs.push_back(std::move(c));
  }
  tuning::SweepOptions o = tuning::SweepOptions::gpu(stream);
  o.point_budget_s = 1;
  tuning::Group g;
  g.points = tuning::run_sweep(cs, o);
  std::set<std::string> launches;
  for (const Point& p : g.points) {
    EXPECT_TRUE(p.correct) << p.label << ": " << p.check_report;
    EXPECT_TRUE(p.timed) << p.label;
    EXPECT_GT(p.median_us, 0) << p.label;
    if (p.extra.contains("launched")) launches.insert(p.extra["launched"].get<std::string>());
  }
  if (!launches.empty()) {
    EXPECT_EQ(launches.size(), 4u) << "four thread counts, four different launches";
  }
}

}  // namespace
}  // namespace day18
