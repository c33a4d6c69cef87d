// The sweep runner (see sweep.h). Lab 07 task 1: run_sweep's body.
#include "engine/tuning/sweep.h"

#include <chrono>
#include <cstdio>

#include "engine/core/error.h"
#include "engine/profiling/timing.h"
#include "engine/profiling/trace_session.h"

namespace day18::tuning {
namespace {

double spread(const Stats& s) {
  return s.median > 0 ? (s.p80 - s.p20) / s.median : 0;
}

}  // namespace

SweepOptions SweepOptions::gpu(cudaStream_t stream) {
  SweepOptions o;
  o.stream = stream;
  o.timer = [stream](const std::function<void(cudaStream_t)>& fn, int repeats) {
    TimingOptions t;
    t.stream = stream;
    t.warmup = 1;
    t.repeats = repeats;
    t.flush_l2 = true;
    return time_gpu(fn, t);
  };
  o.sync = [stream] { DAY18_CUDA_CHECK(cudaStreamSynchronize(stream)); };
  o.record = record_launches;
  return o;
}

std::string record_launches(const std::function<void()>& fn) {
  trace::TraceSession session({.cuda = true});
  if (!session.gpu_traced()) {
    fn();
    session.stop();
    return "";
  }
  fn();
  const trace::TraceData data = session.stop();  // after the device is done
  std::string out;
  for (const trace::Activity& a : data.activities) {
    if (a.kind != trace::ActivityKind::kernel) continue;
    if (!out.empty()) out += "; ";
    out += detail::concat(a.name, " grid(", a.grid[0], ",", a.grid[1], ",", a.grid[2], ") block(",
                          a.block[0], ",", a.block[1], ",", a.block[2], ")");
  }
  return out;
}

std::vector<Point> run_sweep(const std::vector<Candidate>& candidates, const SweepOptions& o) {
  DAY18_REQUIRE(o.timer && o.sync, "run_sweep: the options need a timer and a sync");
  DAY18_REQUIRE(o.min_repeats >= 1 && o.max_repeats >= o.min_repeats && o.batch >= 1,
                "run_sweep: repeats must satisfy 1 <= min_repeats (", o.min_repeats,
                ") <= max_repeats (", o.max_repeats, "), batch (", o.batch, ") >= 1");
  for (const Candidate& c : candidates)
    DAY18_REQUIRE(c.launch && c.check, "run_sweep: candidate '", c.label,
                  "' needs a launch and a check");
  std::vector<Point> points;
  points.reserve(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    if (o.progress) o.progress(i, candidates.size(), c.label);
    Point p;
    p.config = c.config;
    p.label = c.label;
    p.bytes = c.bytes;
    p.flops = c.flops;
    p.extra = c.extra;
    // 1. prepare (poison), launch once through the recorder, sync, check: a point that is not
    //    correct keeps its error and report and is NOT timed.
    // 2. timing: rounds of o.batch runs (o.timer, milliseconds), samples appended, until at least
    //    o.min_repeats and spread (p80 - p20) / median <= o.target_spread; or o.max_repeats; or
    //    o.point_budget_s of wall time spent. median/p20/p80 in MICROseconds, repeats = samples.
    // 3. the check again after timing: failing now drops the timing (timed = false, correct =
    //    false, report starting with "after timing: "); skipped when !c.recheck.
    // LAB 07 BEGIN sweep: check first (prepare, launch, sync, check), then time in rounds until the spread is small, then check again (about 40 lines)
    if (c.prepare) c.prepare(o.stream);
    auto launch_once = [&] { c.launch(o.stream); };
    if (o.record) {
      const std::string launched = o.record(launch_once);
      if (!launched.empty()) p.extra["launched"] = launched;
    } else {
      launch_once();
    }
    o.sync();
    const CheckResult first = c.check();
    p.correct = first.ok;
    p.max_abs_err = first.max_abs_err;
    p.tolerance = first.tolerance;
    p.check_report = first.report;
    if (!p.correct) {
      points.push_back(std::move(p));
      continue;
    }
    std::vector<double> samples;
    const auto start = std::chrono::steady_clock::now();
    Stats s;
    while (true) {
      const int n = std::min(o.batch, o.max_repeats - static_cast<int>(samples.size()));
      const Stats round = o.timer(c.launch, n);
      samples.insert(samples.end(), round.samples.begin(), round.samples.end());
      s = summarize(samples);
      const double spent =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const int done = static_cast<int>(samples.size());
      if (done >= o.max_repeats || spent >= o.point_budget_s) break;
      if (done >= o.min_repeats && spread(s) <= o.target_spread) break;
    }
    o.sync();
    const CheckResult again = c.recheck ? c.check() : first;
    if (!again.ok) {
      p.correct = false;
      p.max_abs_err = again.max_abs_err;
      p.check_report = "after timing: " + again.report;
      points.push_back(std::move(p));
      continue;
    }
    p.timed = true;
    p.median_us = s.median * 1e3;
    p.p20_us = s.p20 * 1e3;
    p.p80_us = s.p80 * 1e3;
    p.repeats = static_cast<int>(samples.size());
    points.push_back(std::move(p));
    // LAB 07 END sweep
  }
  return points;
}

}  // namespace day18::tuning
