// generated from engine/report/gain.cpp by scripts/make_labs.py (lab 07);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
// The expected-gain arithmetic of the ranked list (see gain.h). Lab 07 task 4 (gain): the bodies
// of expected_gain, launch_gain, speedup_gain and rank_by_gain; the argument checks (require_*)
// and make() just below are given: each body uses them.
#include "engine/report/gain.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/core/error.h"

namespace day18::report {
namespace {

void require_finite(double v, const char* name, const char* fn) {
  if (!std::isfinite(v))
    throw InvalidArgument(std::string(fn) + ": " + name + " must be a finite number, got " +
                          std::to_string(v));
}
void require_at_least_zero(double v, const char* name, const char* fn) {
  require_finite(v, name, fn);
  if (v < 0)
    throw InvalidArgument(std::string(fn) + ": " + name + " must be >= 0, got " +
                          std::to_string(v));
}
void require_positive(double v, const char* name, const char* fn) {
  require_finite(v, name, fn);
  if (v <= 0)
    throw InvalidArgument(std::string(fn) + ": " + name + " must be > 0, got " + std::to_string(v));
}

Gain make(double time_us, double saved_us, double step_us) {
  return {time_us, saved_us, saved_us / step_us * 100};
}

}  // namespace

Gain expected_gain(double time_us_per_step, double pct_now, double pct_target, double step_us) {
  // LAB 07 BEGIN gain: check each argument (require_* above; pct_target also <= 100), then time x (1 - now / target), 0 when now >= target (about 10 lines)
  // TODO lab 07 task 4: The expected gain and the ranked list of day18 report: which kernel to optimize first
  // (labs/07-tuning/README.md, Task 4)
  throw ::day18::LabNotImplemented("07", 4, "gain", "labs/07-tuning/README.md");
  // LAB 07 END gain
}

Gain launch_gain(double launches_per_step, double gap_us_per_launch, double step_us) {
  // LAB 07 BEGIN gain: check the arguments, then launches x gap: the time is the gaps themselves (about 5 lines)
  // TODO lab 07 task 4: The expected gain and the ranked list of day18 report: which kernel to optimize first
  // (labs/07-tuning/README.md, Task 4)
  throw ::day18::LabNotImplemented("07", 4, "gain", "labs/07-tuning/README.md");
  // LAB 07 END gain
}

Gain speedup_gain(double time_us_per_step, double speedup, double step_us) {
  // LAB 07 BEGIN gain: check the arguments, then time x (1 - 1 / speedup), 0 when speedup <= 1 (about 6 lines)
  // TODO lab 07 task 4: The expected gain and the ranked list of day18 report: which kernel to optimize first
  // (labs/07-tuning/README.md, Task 4)
  throw ::day18::LabNotImplemented("07", 4, "gain", "labs/07-tuning/README.md");
  // LAB 07 END gain
}

std::vector<size_t> rank_by_gain(const std::vector<Gain>& gains) {
  // LAB 07 BEGIN gain: the indexes 0..n-1, the largest saved_us first; a STABLE sort keeps equal savings in their order (about 6 lines)
  // TODO lab 07 task 4: The expected gain and the ranked list of day18 report: which kernel to optimize first
  // (labs/07-tuning/README.md, Task 4)
  throw ::day18::LabNotImplemented("07", 4, "gain", "labs/07-tuning/README.md");
  // LAB 07 END gain
}

GainTarget gain_target(const std::string& verdict, bool tensor_op) {
  if (verdict == "MEMORY BOUND") return {kMemoryTargetPct, "memory-bound: 90% of P"};
  if (verdict == "UNCOALESCED")
    return {kMemoryTargetPct, "uncoalesced: coalesced, it streams at 90% of P"};
  if (verdict == "COMPUTE BOUND")
    return {kComputeTargetPct, tensor_op ? "compute-bound: 70% of the tensor peak"
                                         : "compute-bound: 70% of the FMA peak"};
  if (verdict == "LATENCY BOUND")
    return {0, "latency-bound: the launch gaps that CUDA graphs or fusion remove"};
  if (verdict == "NEAR THE ROOF") return {0, "near the roof: nothing left to gain"};
  return {0, "no verdict: nothing estimated"};
}

}  // namespace day18::report
