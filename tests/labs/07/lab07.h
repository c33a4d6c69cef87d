// What the lab 07 tests share: hand-made points (a correct timed one, a wrong one) and a fake
// "device" for the sweep (a kernel that writes one number, a timer that replays chosen samples,
// a recorder that says what was launched), so that task 1 runs without a GPU.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "engine/tuning/decide.h"
#include "engine/tuning/experiment.h"
#include "engine/tuning/sweep.h"
#include "tests/labs/support/lab.h"

namespace day18::lab07 {

using tuning::CheckResult;
using tuning::Point;

inline Point timed(const std::string& label, double p20, double median, double p80) {
  Point p;
  p.label = label;
  p.config = {{"label", label}};
  p.correct = p.timed = true;
  p.p20_us = p20;
  p.median_us = median;
  p.p80_us = p80;
  p.repeats = 30;
  return p;
}

inline Point wrong(const std::string& label) {
  Point p;
  p.label = label;
  p.config = {{"label", label}};
  p.correct = false;
  p.max_abs_err = 0.5;
  return p;
}

// The right answer is 42. A candidate's kernel writes `value` and "launches" `launched` threads.
struct FakeDevice {
  std::vector<std::string> log;
  double output = 0;
  std::vector<double> times_ms = {1.0};
  size_t next = 0;
  int timed_runs = 0;
  std::string last_launch;

  tuning::SweepOptions options() {
    tuning::SweepOptions o;
    o.min_repeats = 20;
    o.max_repeats = 200;
    o.batch = 10;
    o.target_spread = 0.03;
    o.point_budget_s = 60;
    o.timer = [this](const std::function<void(cudaStream_t)>& fn, int n) {
      log.push_back("time");
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

  tuning::Candidate candidate(int threads, double value, int launched) {
    tuning::Candidate c;
    c.config = {{"threads", threads}};
    c.label = std::to_string(threads) + " threads";
    c.prepare = [this](cudaStream_t) {
      log.push_back("poison");
      output = std::nan("");
    };
    c.launch = [this, value, launched](cudaStream_t) {
      log.push_back("launch");
      output = value;
      last_launch = "kernel block(" + std::to_string(launched) + ",1,1)";
    };
    c.check = [this] {
      log.push_back("check");
      CheckResult r;
      r.max_abs_err = std::isnan(output) ? INFINITY : std::abs(output - 42);
      r.tolerance = 1e-3;
      r.ok = r.max_abs_err <= r.tolerance;
      if (!r.ok) r.report = "expected 42, got " + std::to_string(output);
      return r;
    };
    return c;
  }
};

}  // namespace day18::lab07
