// Hand-made points and experiments for the tuning tests (no GPU needed).
#pragma once

#include <string>

#include "engine/tuning/experiment.h"

namespace day18::tuning::testing {

// A correct, timed point: median with its p20-p80 range (us).
inline Point timed(const std::string& label, double p20, double median, double p80,
                   int threads = 0) {
  Point p;
  p.label = label;
  p.config = {{"threads", threads}};
  p.correct = true;
  p.max_abs_err = 1e-4;
  p.tolerance = 2e-3;
  p.timed = true;
  p.p20_us = p20;
  p.median_us = median;
  p.p80_us = p80;
  p.repeats = 30;
  p.bytes = 1e9;
  p.flops = 1e8;
  p.pct_of_p = 50;
  p.verdict = "MEMORY BOUND (DRAM)";
  p.occupancy = Occupancy{50, 4, 64, 2048, 1.5, threads, 1000};
  return p;
}

// A configuration that failed its check: no timing.
inline Point wrong(const std::string& label, double err = 0.5, int threads = 0) {
  Point p;
  p.label = label;
  p.config = {{"threads", threads}};
  p.correct = false;
  p.max_abs_err = err;
  p.tolerance = 2e-3;
  p.check_report = "1 of 8 elements differ";
  return p;
}

inline Experiment small_experiment() {
  Experiment e;
  e.experiment = "block_size";
  e.provenance = {"NVIDIA H200",
                  "580.65",
                  "13.0",
                  "abc1234",
                  "2026-12-03T10:00:00Z",
                  "day18 tune block-size --quick",
                  132};
  e.roof = {4172, "probe run in this process", 789, 56};
  e.hypothesis = "more threads hide latency";
  e.parameters = {"threads"};
  Group g;
  g.name = "paged_attention v1, B=16 ctx 1024";
  g.kernel = "paged_attention";
  g.shape = {{"batch", 16}, {"context", 1024}};
  g.baseline = 1;
  g.points = {timed("64 threads", 110, 112, 115, 64), timed("128 threads", 100, 101, 103, 128),
              timed("256 threads", 90, 91, 92, 256), wrong("512 threads", 0.5, 512)};
  g.best = 2;
  g.speedup = 101.0 / 91.0;
  g.within_noise = false;
  e.groups.push_back(g);
  e.notes = {"512 threads is NOT correct: not timed"};
  return e;
}

}  // namespace day18::tuning::testing
