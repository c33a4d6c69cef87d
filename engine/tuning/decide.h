// Deciding from measurements that are noisy: which configuration wins (and whether the win is
// real), where the batch-size curve bends, and whether a sweep varied anything at all.
// Lab 07 tasks 2 and 3 (pick_best, find_knee); all CPU, tested on hand-made tables.
#pragma once

#include <string>
#include <vector>

#include "engine/tuning/experiment.h"

namespace day18::tuning {

// ---- lab 07 task 2: the noise-aware pick ------------------------------------------------------
// Among the points that are correct AND timed, the one with the smallest median time is the
// best. Its speedup is baseline median / best median. The win is "within the noise" when the
// best's [p20, p80] range overlaps the baseline's: then the data cannot tell them apart, and a
// report must not claim the candidate is faster. The baseline itself as the best is no win
// (speedup 1, not within the noise).
//   - a baseline that is not correct or not timed: best is still the fastest correct point,
//     speedup 0 (nothing to compare with), within_noise false;
//   - no correct, timed point at all: best -1, speedup 0.
// `baseline` outside [0, points.size()) is InvalidArgument naming it.
struct Pick {
  int best = -1;
  double speedup = 0;
  bool within_noise = false;
};
Pick pick_best(const std::vector<Point>& points, int baseline);
// pick_best on g.points / g.baseline, written into g.best, g.speedup, g.within_noise.
void decide_group(Group& g);

// ---- lab 07 task 3: the knee of the batch-size sweep ------------------------------------------
// One decode step at each batch size (ascending, distinct, > 0), its median time. While the step
// reads mostly weights, a larger batch costs almost nothing: the step time stays near the
// smallest batch's and tokens/s grows with the batch. The knee is the LARGEST batch whose step
// time is still within `factor` (default 1.25) of the smallest batch's: past it, step time grows
// with the batch (the KV-cache reads and the GEMMs' work take over) and tokens/s grows less than
// the batch. `why` says it in one sentence with the numbers.
struct BatchTime {
  double batch = 0;
  double step_ms = 0;
};
struct Knee {
  int index = -1;       // into the input; -1 for an empty input
  double batch = 0;     // input[index].batch
  double ratio = 0;     // step_ms at the knee / step_ms at the smallest batch
  bool at_end = false;  // the last batch is still within factor: the knee is beyond the sweep
  std::string why;
};
// InvalidArgument (naming "batch" or "step_ms" and the value) for a batch that is not > 0 or
// not ascending, a step time that is not > 0, or factor <= 1.
Knee find_knee(const std::vector<BatchTime>& points, double factor = 1.25);

// ---- the seed's trap: a "sweep" whose parameter never reaches the kernel ----------------------
// The seed's block-size experiment loops over [64, 128, 256, 512] but times the same call four
// times. Caught by what was LAUNCHED, not by the times: each point's extra["launched"] records
// the kernels the profiler saw (name, grid, block; engine/tuning/sweep.h). When two or more
// points have different configs but every launch record is the same, the parameter did not
// reach the kernel. A parameter that is a data layout (the KV block size: the cache's shape)
// reaches the kernel through its arguments: extra["arguments"], when present, counts as part of
// the launch. Points without a record are ignored; fewer than two records: not verified.
struct ParameterCheck {
  bool verified = false;  // there were records to compare
  bool reached = true;    // false: different configs, identical launches
  std::string why;
};
ParameterCheck check_parameter_reached(const Group& g);

}  // namespace day18::tuning
