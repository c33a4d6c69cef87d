// run_sweep with a fake timer, recorder and kernels (no GPU): check before timing, a wrong
// configuration never timed, repeats until the spread is small or the budget is spent, the
// check again after timing, and the seed's sweep that never passes its parameter caught.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/tuning/decide.h"
#include "engine/tuning/sweep.h"
#include "tests/support/test_support.h"

namespace day18::tuning {
namespace {

// A fake "device": the output is a number; a kernel writes it; the timer replays samples.
struct Fake {
  std::vector<std::string> log;
  double output = 0;
  std::vector<double> times_ms = {1.0};  // cycled through by the timer
  size_t next = 0;
  int timed_runs = 0;
  std::string last_launch;  // what the "profiler" saw

  SweepOptions options() {
    SweepOptions o;
    o.min_repeats = 20;
    o.max_repeats = 200;
    o.batch = 10;
    o.target_spread = 0.03;
    o.point_budget_s = 60;
    o.timer = [this](const std::function<void(cudaStream_t)>& fn, int n) {
      log.push_back("time x" + std::to_string(n));
      std::vector<double> s;
      for (int i = 0; i < n; ++i) {
        fn(nullptr);
        ++timed_runs;
        s.push_back(times_ms[next++ % times_ms.size()]);
      }
      return summarize(s);
    };
    o.sync = [this] { log.push_back("sync"); };
    o.record = [this](const std::function<void()>& fn) {
      last_launch.clear();
      fn();
      return last_launch;
    };
    return o;
  }

  // A candidate whose kernel computes `value` (the right answer is 42) and reports launching
  // with `launched_threads` threads.
  Candidate candidate(int threads, double value, int launched_threads) {
    Candidate c;
    c.config = {{"threads", threads}};
    c.label = std::to_string(threads) + " threads";
    c.prepare = [this](cudaStream_t) {
      log.push_back("poison");
      output = -1;
    };
    c.launch = [this, value, launched_threads](cudaStream_t) {
      output = value;
      last_launch = "kernel block(" + std::to_string(launched_threads) + ",1,1)";
    };
    c.check = [this] {
      log.push_back("check");
      CheckResult r;
      r.max_abs_err = std::abs(output - 42);
      r.tolerance = 1e-3;
      r.ok = r.max_abs_err <= r.tolerance;
      if (!r.ok) r.report = "expected 42, got " + std::to_string(output);
      return r;
    };
    return c;
  }
};

TEST(Sweep, ChecksBeforeTimingAndAgainAfter) {
  Fake f;
  const std::vector<Point> pts = run_sweep({f.candidate(128, 42, 128)}, f.options());
  ASSERT_EQ(pts.size(), 1u);
  ASSERT_GE(f.log.size(), 5u);
  EXPECT_EQ(f.log[0], "poison");
  EXPECT_EQ(f.log[1], "sync");
  EXPECT_EQ(f.log[2], "check");
  EXPECT_EQ(f.log[3].rfind("time", 0), 0u) << "timing only after the check";
  EXPECT_EQ(f.log.back(), "check") << "the output is checked again after the timed runs";
  EXPECT_TRUE(pts[0].correct);
  EXPECT_TRUE(pts[0].timed);
  EXPECT_DOUBLE_EQ(pts[0].median_us, 1000.0) << "the timer's milliseconds become microseconds";
  EXPECT_EQ(pts[0].repeats, 20) << "constant samples: stop at min_repeats";
  EXPECT_EQ(pts[0].extra.at("launched"), "kernel block(128,1,1)");
}

TEST(Sweep, AWrongConfigurationIsReportedAndNeverTimed) {
  Fake f;
  const std::vector<Point> pts =
      run_sweep({f.candidate(128, 42, 128), f.candidate(512, 41, 512)}, f.options());
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_FALSE(pts[1].correct);
  EXPECT_FALSE(pts[1].timed);
  EXPECT_DOUBLE_EQ(pts[1].max_abs_err, 1.0);
  EXPECT_NE(pts[1].check_report.find("expected 42"), std::string::npos);
  EXPECT_EQ(f.timed_runs, 20) << "only the correct configuration was timed";
}

TEST(Sweep, RepeatsUntilTheSpreadIsSmallOrTheCap) {
  Fake f;
  // Alternating 1.0 / 1.2 ms: (p80 - p20) / median ~ 18%, never below 3%: runs to max_repeats.
  f.times_ms = {1.0, 1.2};
  SweepOptions o = f.options();
  o.max_repeats = 60;
  std::vector<Point> pts = run_sweep({f.candidate(128, 42, 128)}, o);
  EXPECT_EQ(pts[0].repeats, 60);
  EXPECT_LE(pts[0].p20_us, pts[0].median_us);
  EXPECT_LE(pts[0].median_us, pts[0].p80_us);
  // The same noise with a zero budget: one round only.
  Fake g;
  g.times_ms = {1.0, 1.2};
  SweepOptions ob = g.options();
  ob.point_budget_s = 0;
  pts = run_sweep({g.candidate(128, 42, 128)}, ob);
  EXPECT_EQ(pts[0].repeats, 10);
}

TEST(Sweep, ARaceThatShowsOnlyUnderRepetitionDropsTheTiming) {
  Fake f;
  Candidate c = f.candidate(128, 42, 128);
  int runs = 0;
  c.launch = [&](cudaStream_t) { f.output = ++runs > 5 ? 40 : 42; };
  const std::vector<Point> pts = run_sweep({c}, f.options());
  EXPECT_FALSE(pts[0].correct);
  EXPECT_FALSE(pts[0].timed);
  EXPECT_EQ(pts[0].check_report.rfind("after timing: ", 0), 0u) << pts[0].check_report;
}

TEST(Sweep, TheSeedsSweepThatNeverPassesItsParameterIsCaught) {
  // The seed: for block_size in [64, 128, 256, 512]: time the same call (128 threads) each time.
  Fake f;
  std::vector<Candidate> seed;
  for (int t : {64, 128, 256, 512}) seed.push_back(f.candidate(t, 42, /*launched=*/128));
  Group g;
  g.points = run_sweep(seed, f.options());
  const ParameterCheck c = check_parameter_reached(g);
  EXPECT_TRUE(c.verified);
  EXPECT_FALSE(c.reached) << "four configs, one launch: " << c.why;

  // The fix: each candidate launches with its own threads.
  Fake h;
  std::vector<Candidate> fixed;
  for (int t : {64, 128, 256, 512}) fixed.push_back(h.candidate(t, 42, t));
  Group g2;
  g2.points = run_sweep(fixed, h.options());
  EXPECT_TRUE(check_parameter_reached(g2).reached);
}

TEST(Sweep, BadOptionsAndCandidatesAreErrors) {
  Fake f;
  Candidate c = f.candidate(128, 42, 128);
  c.check = nullptr;
  EXPECT_INVALID_NAMING(run_sweep({c}, f.options()), "128 threads");
  SweepOptions o = f.options();
  o.min_repeats = 0;
  EXPECT_INVALID_NAMING(run_sweep({f.candidate(128, 42, 128)}, o), "min_repeats");
}

}  // namespace
}  // namespace day18::tuning
