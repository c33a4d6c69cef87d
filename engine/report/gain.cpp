#include "engine/report/gain.h"

#include <cmath>

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
  const char* fn = "expected_gain";
  require_at_least_zero(time_us_per_step, "time_us_per_step", fn);
  require_at_least_zero(pct_now, "pct_now", fn);
  require_positive(pct_target, "pct_target", fn);
  if (pct_target > 100)
    throw InvalidArgument("expected_gain: pct_target must be <= 100 (% of the roof), got " +
                          std::to_string(pct_target));
  require_positive(step_us, "step_us", fn);
  // Already at or past the target: the rule promises nothing (never a negative gain).
  const double saved = pct_now >= pct_target ? 0 : time_us_per_step * (1 - pct_now / pct_target);
  return make(time_us_per_step, saved, step_us);
}

Gain launch_gain(double launches_per_step, double gap_us_per_launch, double step_us) {
  const char* fn = "launch_gain";
  require_at_least_zero(launches_per_step, "launches_per_step", fn);
  require_at_least_zero(gap_us_per_launch, "gap_us_per_launch", fn);
  require_positive(step_us, "step_us", fn);
  return make(launches_per_step * gap_us_per_launch, launches_per_step * gap_us_per_launch,
              step_us);
}

Gain speedup_gain(double time_us_per_step, double speedup, double step_us) {
  const char* fn = "speedup_gain";
  require_at_least_zero(time_us_per_step, "time_us_per_step", fn);
  require_positive(speedup, "speedup", fn);
  require_positive(step_us, "step_us", fn);
  const double saved = speedup <= 1 ? 0 : time_us_per_step * (1 - 1 / speedup);
  return make(time_us_per_step, saved, step_us);
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
