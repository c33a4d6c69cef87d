// Noise-aware decisions on measured points (see decide.h). Lab 07 tasks 2 (pick_best) and 3
// (find_knee).
#include "engine/tuning/decide.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "engine/core/error.h"

namespace day18::tuning {

Pick pick_best(const std::vector<Point>& points, int baseline) {
  DAY18_REQUIRE(baseline >= 0 && baseline < static_cast<int>(points.size()), "pick_best: baseline ",
                baseline, " is not an index of the ", points.size(), " points");
  // Only correct, timed points compete; the fastest median wins. Then compare it with the
  // baseline: speedup = baseline median / best median; within_noise when the two p20-p80 ranges
  // overlap (max of the lows <= min of the highs). The baseline as the best: speedup 1, no noise
  // flag. A baseline that is not timed: speedup 0.
  // LAB 07 BEGIN pick_best: fastest correct+timed median; speedup and the p20-p80 overlap test vs the baseline (about 20 lines)
  Pick pick;
  for (int i = 0; i < static_cast<int>(points.size()); ++i) {
    const Point& p = points[i];
    if (!p.correct || !p.timed) continue;
    if (pick.best < 0 || p.median_us < points[pick.best].median_us) pick.best = i;
  }
  if (pick.best < 0) return pick;
  const Point& base = points[baseline];
  if (!base.correct || !base.timed) return pick;  // nothing to compare with: speedup 0
  if (pick.best == baseline) {
    pick.speedup = 1;
    return pick;
  }
  const Point& best = points[pick.best];
  pick.speedup = best.median_us > 0 ? base.median_us / best.median_us : 0;
  pick.within_noise = std::max(base.p20_us, best.p20_us) <= std::min(base.p80_us, best.p80_us);
  return pick;
  // LAB 07 END pick_best
}

void decide_group(Group& g) {
  const Pick p = pick_best(g.points, g.baseline);
  g.best = p.best;
  g.speedup = p.speedup;
  g.within_noise = p.within_noise;
}

Knee find_knee(const std::vector<BatchTime>& points, double factor) {
  DAY18_REQUIRE(std::isfinite(factor) && factor > 1, "find_knee: factor ", factor,
                " must be > 1 (a step-time ratio)");
  for (size_t i = 0; i < points.size(); ++i) {
    DAY18_REQUIRE(points[i].batch > 0, "find_knee: batch ", points[i].batch, " (point ", i,
                  ") must be > 0");
    DAY18_REQUIRE(i == 0 || points[i].batch > points[i - 1].batch, "find_knee: batch ",
                  points[i].batch, " (point ", i, ") must be larger than the one before it (",
                  i ? points[i - 1].batch : 0, "): batches ascending and distinct");
    DAY18_REQUIRE(std::isfinite(points[i].step_ms) && points[i].step_ms > 0, "find_knee: step_ms ",
                  points[i].step_ms, " (batch ", points[i].batch, ") must be > 0");
  }
  // The knee is the LAST point whose step time is within factor x the first point's (the
  // smallest batch); ratio = its step time / the first's; at_end when that is the last point.
  // `why` names the knee's batch, its ratio, and (when not at the end) the next batch's ratio.
  // LAB 07 BEGIN knee: the last batch whose step time is within factor x the smallest batch's (about 20 lines)
  Knee k;
  if (points.empty()) {
    k.why = "no points";
    return k;
  }
  const double t0 = points[0].step_ms;
  k.index = 0;
  for (size_t i = 0; i < points.size(); ++i)
    if (points[i].step_ms <= factor * t0) k.index = static_cast<int>(i);
  k.batch = points[k.index].batch;
  k.ratio = points[k.index].step_ms / t0;
  k.at_end = k.index + 1 == static_cast<int>(points.size());
  char buf[256];
  if (k.at_end)
    std::snprintf(buf, sizeof buf,
                  "no knee inside the sweep: at B=%g the step still takes %.2fx the B=%g step "
                  "(within %.2fx): weight reads dominate up to the largest batch measured",
                  k.batch, k.ratio, points[0].batch, factor);
  else
    std::snprintf(buf, sizeof buf,
                  "knee at B=%g: the step takes %.2fx the B=%g step (within %.2fx), B=%g "
                  "already %.2fx: past the knee the step grows with the batch",
                  k.batch, k.ratio, points[0].batch, factor, points[k.index + 1].batch,
                  points[k.index + 1].step_ms / t0);
  k.why = buf;
  return k;
  // LAB 07 END knee
}

ParameterCheck check_parameter_reached(const Group& g) {
  ParameterCheck c;
  std::set<std::string> configs, launches;
  int recorded = 0;
  for (const Point& p : g.points) {
    const auto it = p.extra.find("launched");
    if (it == p.extra.end() || !it->is_string() || it->get<std::string>().empty()) continue;
    ++recorded;
    configs.insert(p.config.dump());
    // A layout parameter (the KV block size) reaches the kernel through its arguments, not its
    // launch configuration: extra["arguments"], when the experiment records it, is part of what
    // was launched.
    const auto args = p.extra.find("arguments");
    launches.insert(it->get<std::string>() + (args != p.extra.end() && args->is_string()
                                                  ? " args " + args->get<std::string>()
                                                  : std::string()));
  }
  if (recorded < 2) {
    c.why = "not verified: fewer than two points have a launch record (no profiler?)";
    return c;
  }
  c.verified = true;
  if (configs.size() > 1 && launches.size() == 1) {
    c.reached = false;
    c.why = detail::concat(
        configs.size(), " different configurations launched exactly the same kernels (",
        *launches.begin(), "): the swept parameter never reached the kernel (the seed's trap)");
    return c;
  }
  c.why = detail::concat(configs.size(), " configurations, ", launches.size(),
                         " distinct launches: the parameter reached the kernel");
  return c;
}

}  // namespace day18::tuning
