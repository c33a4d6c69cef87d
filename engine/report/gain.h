// The expected gain of an optimization, computed from what was measured: the arithmetic behind
// the ranked list of `day18 report` (docs/report.md states every rule).
//
//   // a kernel that takes 120 us of a 1650 us step at 57% of P; memory-bound kernels aim at 90%:
//   Gain g = expected_gain(120, 57, 90, 1650);   // g.saved_us = 120 x (1 - 57/90) = 44.0 us,
//                                                // g.pct_of_step = 2.67%
//   // a latency-bound kernel launched 16 times a step, 1.8 us of launch gap before each, which
//   // CUDA graphs (or fusing it into its neighbour) would remove:
//   Gain l = launch_gain(16, 1.8, 1650);         // 28.8 us, 1.75% of the step
//   // a configuration an experiment measured 1.30x faster, applied to the kernel's time:
//   Gain s = speedup_gain(120, 1.30, 1650);      // 120 x (1 - 1/1.30) = 27.7 us
//   // the order of the ranked list, the largest saving first: g (44.0), l (28.8), s (27.7)
//   std::vector<size_t> order = rank_by_gain({l, s, g});   // {2, 0, 1}
//
// The time a kernel saves when it runs at pct_target % of its roof instead of pct_now %: its time
// scales with 1 / (% of roof) (the same bytes or FLOPs at a higher rate), so
//   saved = time x (1 - pct_now / pct_target)      (0 when pct_now >= pct_target)
// Bad input (negative or non-finite numbers, a target of 0 or above 100, a step of 0) throws
// InvalidArgument naming the argument and its value. Lab 07's task 4 is these four functions.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace day18::report {

struct Gain {
  double time_us = 0;      // the kernel's time per step (all its launches)
  double saved_us = 0;     // per step
  double pct_of_step = 0;  // saved_us / step_us x 100
};

// The rule above. time_us_per_step >= 0, pct_now >= 0, 0 < pct_target <= 100, step_us > 0.
Gain expected_gain(double time_us_per_step, double pct_now, double pct_target, double step_us);

// The launch overhead a latency-bound kernel's launches cost: launches x gap_us_per_launch
// (what CUDA graphs or fusion remove). launches >= 0, gap_us_per_launch >= 0, step_us > 0.
Gain launch_gain(double launches_per_step, double gap_us_per_launch, double step_us);

// A measured speedup applied to a kernel's time: time x (1 - 1 / speedup) (0 when speedup <= 1).
// time_us_per_step >= 0, speedup > 0, step_us > 0.
Gain speedup_gain(double time_us_per_step, double speedup, double step_us);

// The order of the ranked list (report.h's proposals()): the indexes 0..n-1 of `gains`, the
// largest saved_us first; equal savings keep their order (the analysis's, then the experiments').
// The ranking is by the time a change saves per step, not by the lowest % of roof nor by the
// longest kernel: a kernel far below its roof that takes 3 us of the step is not the first to fix.
std::vector<size_t> rank_by_gain(const std::vector<Gain>& gains);

// The roof % the ranked list aims at for a verdict (classifier.h's bound_name()), and the rule
// in words; target 0 = no roof target for this verdict (latency-bound: launch_gain; near the
// roof or unknown: nothing to gain).
struct GainTarget {
  double pct = 0;
  std::string rule;
};
GainTarget gain_target(const std::string& verdict, bool tensor_op);

// The targets, as constants (docs/report.md quotes them).
inline constexpr double kMemoryTargetPct = 90;   // of P: what a streaming copy reaches on an H200
inline constexpr double kComputeTargetPct = 70;  // of the tensor (or FMA) peak: a good GEMM

}  // namespace day18::report
