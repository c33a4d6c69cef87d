// generated from engine/profiling/trace_metrics.cpp by scripts/make_labs.py (lab 05);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
#include "engine/profiling/trace_metrics.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <set>
#include <sstream>

#include "engine/core/error.h"

namespace day18::trace {
namespace {

constexpr const char* kStageOrder[] = {
    "Scheduler", "PrepareInputs", "Launch",   "ModelExecutor", "Attention",     "MLP",
    "Norm",      "Norm+GEMV",     "Sampling", "Wait",          "ProcessOutputs"};
constexpr const char* kStepStages[] = {"Scheduler", "PrepareInputs", "Launch", "Wait",
                                       "ProcessOutputs"};
constexpr const char* kModelOther = "(model: other)";

struct Ideal {
  const char* name;
  bool of_model;  // the range is compared as a share of ModelExecutor's time
  double lo, hi;  // percent
};
// The seed's "Ideal profile" (Day 18, Task 4).
constexpr Ideal kIdeal[] = {{"Scheduler", false, 2, 5}, {"ModelExecutor", false, 85, 90},
                            {"Sampling", false, 3, 5},  {"Attention", true, 40, 50},
                            {"MLP", true, 30, 40},      {kModelOther, true, 10, 20}};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double ratio(int64_t a, int64_t b) {
  return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0;
}

}  // namespace

// ---- interval tools ----------------------------------------------------------------------------
std::vector<Interval> merge_intervals(std::vector<Interval> v) {
  std::sort(v.begin(), v.end(),
            [](const Interval& a, const Interval& b) { return a.start_ns < b.start_ns; });
  std::vector<Interval> out;
  for (const Interval& x : v) {
    if (x.end_ns <= x.start_ns) continue;  // empty
    if (!out.empty() && x.start_ns <= out.back().end_ns)
      out.back().end_ns = std::max(out.back().end_ns, x.end_ns);
    else
      out.push_back(x);
  }
  return out;
}

int64_t total_ns(const std::vector<Interval>& v) {
  int64_t t = 0;
  for (const Interval& x : v) t += x.end_ns - x.start_ns;
  return t;
}

int64_t shared_ns(const std::vector<Interval>& a, const std::vector<Interval>& b) {
  int64_t t = 0;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const int64_t lo = std::max(a[i].start_ns, b[j].start_ns);
    const int64_t hi = std::min(a[i].end_ns, b[j].end_ns);
    if (hi > lo) t += hi - lo;
    if (a[i].end_ns < b[j].end_ns)
      ++i;
    else
      ++j;
  }
  return t;
}

std::vector<uint32_t> devices_with_activity(const TraceData& data) {
  std::set<uint32_t> d;
  for (const Activity& a : data.activities)
    if (a.on_gpu()) d.insert(a.device);
  return {d.begin(), d.end()};
}

// ---- GPU busy ----------------------------------------------------------------------------------
BusyStats gpu_busy(const TraceData& data, uint32_t device) {
  BusyStats b;
  b.device = device;
  // LAB 05 BEGIN busy: the window, the union of kernel intervals, the fractions (about 12 lines)
  // TODO lab 05 task 3: GPU busy: the union of kernel time over the window
  // (labs/05-profiling/README.md, Task 3)
  throw ::day18::LabNotImplemented("05", 3, "busy", "labs/05-profiling/README.md");
  // LAB 05 END busy
  return b;
}

// ---- idle time by cause ------------------------------------------------------------------------
std::vector<StreamIdle> idle_by_cause(const TraceData& data, const std::vector<GpuLink>& links,
                                      int64_t kernel_gap_threshold_ns) {
  DAY18_REQUIRE(links.size() == data.activities.size(), "idle_by_cause: ", links.size(),
                " links for ", data.activities.size(), " activities (use link_gpu_activities)");
  std::vector<StreamIdle> out;
  // LAB 05 BEGIN idle_causes: per stream, ops in start order, each gap by cause (about 30 lines)
  // TODO lab 05 task 4: Idle time per stream, by cause: host wait, kernel gap, other
  // (labs/05-profiling/README.md, Task 4)
  throw ::day18::LabNotImplemented("05", 4, "idle_causes", "labs/05-profiling/README.md");
  // LAB 05 END idle_causes
  return out;
}

// ---- H2D / compute overlap ---------------------------------------------------------------------
Overlap h2d_compute_overlap(const TraceData& data, const std::vector<GpuLink>& links) {
  DAY18_REQUIRE(links.size() == data.activities.size(), "h2d_compute_overlap: ", links.size(),
                " links for ", data.activities.size(), " activities (use link_gpu_activities)");
  Overlap o;
  // LAB 05 BEGIN overlap: H2D under kernels; step N+1's H2D vs step N's compute (about 30 lines)
  // TODO lab 05 task 5: H2D/compute overlap, and step N+1's H2D under step N's compute
  // (labs/05-profiling/README.md, Task 5)
  throw ::day18::LabNotImplemented("05", 5, "overlap", "labs/05-profiling/README.md");
  // LAB 05 END overlap
  return o;
}

// ---- time per engine range ---------------------------------------------------------------------
Profile time_per_range(const TraceData& data, const std::vector<GpuLink>& links) {
  DAY18_REQUIRE(links.size() == data.activities.size(), "time_per_range: ", links.size(),
                " links for ", data.activities.size(), " activities (use link_gpu_activities)");
  Profile p;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (const EngineRange& r : data.ranges) {
    lo = std::min(lo, r.start_ns);
    hi = std::max(hi, r.end_ns);
  }
  for (const Activity& a : data.activities)
    if (a.on_gpu()) {
      lo = std::min(lo, a.start_ns);
      hi = std::max(hi, a.end_ns);
    }
  if (lo >= hi) return p;
  p.wall_ns = hi - lo;

  std::map<std::string, RangeShare> by_name;
  for (const EngineRange& r : data.ranges) {
    RangeShare& s = by_name[r.name];
    s.name = r.name;
    ++s.count;
    s.cpu_ns += r.duration();
  }
  // GPU time: each op counts for every range around its launch call, once.
  std::map<std::string, std::vector<Interval>> gpu;
  for (size_t i = 0; i < data.activities.size(); ++i) {
    if (!data.activities[i].on_gpu()) continue;
    const std::set<std::string> names(links[i].range_path.begin(), links[i].range_path.end());
    for (const std::string& n : names)
      gpu[n].push_back({data.activities[i].start_ns, data.activities[i].end_ns});
  }
  for (auto& [name, v] : gpu) by_name[name].gpu_ns = total_ns(merge_intervals(std::move(v)));
  for (auto& [name, s] : by_name) {
    s.on_gpu = s.gpu_ns > 0;
    s.share = ratio(s.on_gpu ? s.gpu_ns : s.cpu_ns, p.wall_ns);
  }

  // Which names ever open inside a ModelExecutor range (same thread, within it).
  std::map<uint32_t, std::vector<Interval>> model_spans;
  for (const EngineRange& r : data.ranges)
    if (r.name == "ModelExecutor") model_spans[r.thread].push_back({r.start_ns, r.end_ns});
  std::set<std::string> in_model;
  for (auto& [t, v] : model_spans) v = merge_intervals(std::move(v));
  for (const EngineRange& r : data.ranges) {
    if (r.name == "ModelExecutor" || !model_spans.count(r.thread)) continue;
    const std::vector<Interval>& v = model_spans[r.thread];
    auto it = std::upper_bound(v.begin(), v.end(), r.start_ns,
                               [](int64_t t, const Interval& x) { return t < x.start_ns; });
    if (it != v.begin() && std::prev(it)->end_ns >= r.end_ns) in_model.insert(r.name);
  }
  const auto model = by_name.find("ModelExecutor");
  if (model != by_name.end()) {
    const RangeShare& m = model->second;
    const int64_t model_ns = m.on_gpu ? m.gpu_ns : m.cpu_ns;
    auto basis = [&](const RangeShare& s) { return m.on_gpu ? s.gpu_ns : s.cpu_ns; };
    for (const std::string& n : in_model)
      by_name[n].model_share = ratio(basis(by_name[n]), model_ns);
    // The seed's "other kernels": the model's time outside Attention and MLP.
    RangeShare other;
    other.name = kModelOther;
    other.on_gpu = m.on_gpu;
    int64_t rest = model_ns;
    for (const char* n : {"Attention", "MLP"})
      if (by_name.count(n)) rest -= basis(by_name[n]);
    rest = std::max<int64_t>(rest, 0);
    (m.on_gpu ? other.gpu_ns : other.cpu_ns) = rest;
    other.share = ratio(rest, p.wall_ns);
    other.model_share = ratio(rest, model_ns);
    by_name[kModelOther] = other;
  }
  for (auto& [name, s] : by_name)
    for (const Ideal& i : kIdeal)
      if (name == i.name) {
        s.ideal_lo = i.lo;
        s.ideal_hi = i.hi;
        s.ideal_of_model = i.of_model;
        const double pct = 100 * (i.of_model ? s.model_share : s.share);
        s.verdict = pct < i.lo ? "below" : pct > i.hi ? "above" : "within";
      }
  // Stage order, "(model: other)" after the model's parts, then any other name.
  std::vector<RangeShare> model_other;
  if (const auto it = by_name.find(kModelOther); it != by_name.end()) {
    model_other.push_back(it->second);
    by_name.erase(it);
  }
  for (const char* n : kStageOrder) {
    const auto it = by_name.find(n);
    if (it == by_name.end()) continue;
    p.ranges.push_back(it->second);
    by_name.erase(it);
  }
  const auto after_model = std::find_if(p.ranges.begin(), p.ranges.end(), [](const RangeShare& s) {
    return s.name == "Sampling" || s.name == "Wait" || s.name == "ProcessOutputs";
  });
  p.ranges.insert(after_model, model_other.begin(), model_other.end());
  std::vector<RangeShare> rest;
  for (auto& [name, s] : by_name) rest.push_back(s);
  p.ranges.insert(p.ranges.end(), rest.begin(), rest.end());
  return p;
}

// ---- kernels -----------------------------------------------------------------------------------
std::vector<KernelStat> top_kernels(const TraceData& data, size_t n) {
  std::map<std::string, KernelStat> by;
  int64_t all = 0;
  for (const Activity& a : data.activities) {
    if (a.kind != ActivityKind::kernel) continue;
    KernelStat& k = by[a.name];
    const int64_t d = a.duration();
    k.name = a.name;
    k.min_ns = k.count ? std::min(k.min_ns, d) : d;
    k.max_ns = std::max(k.max_ns, d);
    ++k.count;
    k.total_ns += d;
    all += d;
  }
  std::vector<KernelStat> out;
  for (auto& [name, k] : by) {
    k.mean_ns = ratio(k.total_ns, k.count);
    k.share = ratio(k.total_ns, all);
    out.push_back(k);
  }
  std::stable_sort(out.begin(), out.end(), [](const KernelStat& a, const KernelStat& b) {
    return a.total_ns > b.total_ns;
  });
  if (out.size() > n) out.resize(n);
  return out;
}

LaunchStats launch_overhead(const TraceData& data, const std::vector<GpuLink>& links) {
  DAY18_REQUIRE(links.size() == data.activities.size(), "launch_overhead: ", links.size(),
                " links for ", data.activities.size(), " activities (use link_gpu_activities)");
  LaunchStats s;
  std::vector<double> launch, kernel, queue;
  for (size_t i = 0; i < data.activities.size(); ++i) {
    const Activity& a = data.activities[i];
    if (a.kind != ActivityKind::kernel) continue;
    ++s.kernels;
    kernel.push_back(static_cast<double>(a.duration()));
    if (links[i].launch < 0) continue;
    const Activity& call = data.activities[links[i].launch];
    ++s.launched;
    launch.push_back(static_cast<double>(call.duration()));
    queue.push_back(static_cast<double>(a.start_ns - call.start_ns));
    if (a.duration() < call.duration()) ++s.shorter_than_launch;
  }
  s.fraction = ratio(s.shorter_than_launch, s.launched);
  s.median_launch_ns = median(launch);
  s.median_kernel_ns = median(kernel);
  s.median_queue_ns = median(queue);
  return s;
}

// ---- per step ----------------------------------------------------------------------------------
std::vector<StepStats> per_step(const TraceData& data, const std::vector<GpuLink>& links) {
  DAY18_REQUIRE(links.size() == data.activities.size(), "per_step: ", links.size(), " links for ",
                data.activities.size(), " activities (use link_gpu_activities)");
  std::map<int64_t, StepStats> by;
  std::map<int64_t, std::vector<Interval>> kernels;
  for (const EngineRange& r : data.ranges) {
    if (r.depth != 0 || r.step < 0) continue;
    StepStats& s = by[r.step];
    const bool first = s.stage_ns.empty();
    s.step = r.step;
    s.cpu_start_ns = first ? r.start_ns : std::min(s.cpu_start_ns, r.start_ns);
    s.cpu_end_ns = first ? r.end_ns : std::max(s.cpu_end_ns, r.end_ns);
    s.stage_ns[r.name] += r.duration();
  }
  for (size_t i = 0; i < data.activities.size(); ++i) {
    const Activity& a = data.activities[i];
    if (!a.on_gpu() || links[i].step < 0) continue;
    StepStats& s = by[links[i].step];
    s.step = links[i].step;
    if (a.kind == ActivityKind::kernel) {
      s.gpu_start_ns = s.kernels ? std::min(s.gpu_start_ns, a.start_ns) : a.start_ns;
      s.gpu_end_ns = s.kernels ? std::max(s.gpu_end_ns, a.end_ns) : a.end_ns;
      ++s.kernels;
      kernels[s.step].push_back({a.start_ns, a.end_ns});
    } else if (a.kind == ActivityKind::memcpy && a.copy_kind == "HtoD") {
      s.h2d_ns += a.duration();
    } else if (a.kind == ActivityKind::memcpy && a.copy_kind == "DtoH") {
      s.d2h_ns += a.duration();
    }
  }
  std::vector<StepStats> out;
  for (auto& [step, s] : by) {
    s.kernel_ns = total_ns(merge_intervals(std::move(kernels[step])));
    s.complete = std::all_of(std::begin(kStepStages), std::end(kStepStages),
                             [&](const char* n) { return s.stage_ns.count(n) > 0; });
    out.push_back(s);
  }
  return out;
}

// ---- all of it ---------------------------------------------------------------------------------
TraceMetrics compute_metrics(const TraceData& data, const MetricsOptions& opt) {
  TraceMetrics m;
  const std::vector<GpuLink> links = link_gpu_activities(data);
  m.ranges = static_cast<int64_t>(data.ranges.size());
  m.activities = static_cast<int64_t>(data.activities.size());
  m.dropped_records = data.dropped_records;
  m.kernel_gap_threshold_ns = opt.kernel_gap_threshold_ns;
  const std::vector<uint32_t> devices = devices_with_activity(data);
  m.has_gpu = !devices.empty();
  for (uint32_t d : devices) m.busy.push_back(gpu_busy(data, d));
  if (m.has_gpu) {
    m.idle = idle_by_cause(data, links, opt.kernel_gap_threshold_ns);
    m.overlap = h2d_compute_overlap(data, links);
  }
  m.profile = time_per_range(data, links);
  m.kernels = top_kernels(data, opt.top_kernels);
  m.launch = launch_overhead(data, links);
  m.steps = per_step(data, links);
  return m;
}

nlohmann::json to_json(const TraceMetrics& m) {
  using nlohmann::json;
  auto ms = [](int64_t ns) { return static_cast<double>(ns) / 1e6; };
  json j;
  j["has_gpu"] = m.has_gpu;
  j["ranges"] = m.ranges;
  j["activities"] = m.activities;
  j["dropped_records"] = m.dropped_records;
  j["units"] = "times in ms, fractions in [0, 1]";
  json busy = json::array();
  for (const BusyStats& b : m.busy)
    busy.push_back({{"device", b.device},
                    {"window_ms", ms(b.window_ns)},
                    {"kernel_ms", ms(b.kernel_ns)},
                    {"active_ms", ms(b.active_ns)},
                    {"busy_fraction", b.busy_fraction},
                    {"active_fraction", b.active_fraction}});
  j["gpu_busy"] = busy;
  json idle = json::array();
  for (const StreamIdle& s : m.idle)
    idle.push_back({{"device", s.device},
                    {"stream", s.stream},
                    {"name", s.name},
                    {"ops", s.ops},
                    {"span_ms", ms(s.span_ns)},
                    {"busy_ms", ms(s.busy_ns)},
                    {"idle_ms", ms(s.idle_ns)},
                    {"host_wait_ms", ms(s.host_wait_ns)},
                    {"kernel_gap_ms", ms(s.kernel_gap_ns)},
                    {"other_ms", ms(s.other_ns)},
                    {"gaps", s.gaps}});
  j["idle_by_stream"] = idle;
  j["kernel_gap_threshold_us"] = static_cast<double>(m.kernel_gap_threshold_ns) / 1e3;
  const Overlap& o = m.overlap;
  j["h2d_compute_overlap"] = {{"h2d_copies", o.h2d_copies},
                              {"h2d_ms", ms(o.h2d_ns)},
                              {"h2d_under_compute_ms", ms(o.h2d_under_compute_ns)},
                              {"fraction", o.fraction},
                              {"step_pairs", o.step_pairs},
                              {"step_pairs_overlapped", o.step_pairs_overlapped}};
  json prof = json::array();
  for (const RangeShare& r : m.profile.ranges) {
    json x = {{"name", r.name},
              {"count", r.count},
              {"cpu_ms", ms(r.cpu_ns)},
              {"gpu_ms", ms(r.gpu_ns)},
              {"basis", r.on_gpu ? "gpu" : "cpu"},
              {"share", r.share}};
    x["model_share"] = r.model_share >= 0 ? json(r.model_share) : json();
    if (r.ideal_lo >= 0) {
      x["ideal_percent"] = {r.ideal_lo, r.ideal_hi};
      x["ideal_of"] = r.ideal_of_model ? "ModelExecutor" : "wall";
      x["verdict"] = r.verdict;
    }
    prof.push_back(x);
  }
  j["profile"] = {{"wall_ms", ms(m.profile.wall_ns)}, {"ranges", prof}};
  json kernels = json::array();
  for (const KernelStat& k : m.kernels)
    kernels.push_back({{"name", k.name},
                       {"count", k.count},
                       {"total_ms", ms(k.total_ns)},
                       {"mean_us", k.mean_ns / 1e3},
                       {"min_us", static_cast<double>(k.min_ns) / 1e3},
                       {"max_us", static_cast<double>(k.max_ns) / 1e3},
                       {"share", k.share}});
  j["top_kernels"] = kernels;
  const LaunchStats& l = m.launch;
  j["launch_overhead"] = {{"kernels", l.kernels},
                          {"launched", l.launched},
                          {"shorter_than_launch", l.shorter_than_launch},
                          {"fraction", l.fraction},
                          {"median_launch_us", l.median_launch_ns / 1e3},
                          {"median_kernel_us", l.median_kernel_ns / 1e3},
                          {"median_queue_us", l.median_queue_ns / 1e3}};
  json steps = json::array();
  for (const StepStats& s : m.steps) {
    json stages = json::object();
    for (const auto& [n, ns] : s.stage_ns) stages[n] = ms(ns);
    steps.push_back({{"step", s.step},
                     {"complete", s.complete},
                     {"cpu_ms", ms(s.cpu_end_ns - s.cpu_start_ns)},
                     {"stages_ms", stages},
                     {"kernels", s.kernels},
                     {"gpu_span_ms", ms(s.gpu_end_ns - s.gpu_start_ns)},
                     {"kernel_ms", ms(s.kernel_ns)},
                     {"h2d_ms", ms(s.h2d_ns)},
                     {"d2h_ms", ms(s.d2h_ns)}});
  }
  j["steps"] = steps;
  return j;
}

std::string format_metrics(const TraceMetrics& m) {
  std::ostringstream os;
  char line[512];
  auto ms = [](int64_t ns) { return static_cast<double>(ns) / 1e6; };
  const Profile& p = m.profile;
  std::snprintf(line, sizeof line,
                "\nwhere the time goes: share of the traced wall time (%.2f ms)%s\n", ms(p.wall_ns),
                m.has_gpu ? "; GPU work counted for the range that launched it" : "");
  os << line;
  std::snprintf(line, sizeof line, "  %-16s %6s %11s %11s %7s %-4s %-20s\n", "range", "count",
                "cpu ms", "gpu ms", "share", "of", "seed's ideal profile");
  os << line;
  for (const RangeShare& r : p.ranges) {
    std::string ideal;
    if (r.ideal_lo >= 0) {
      const bool of_model = r.ideal_of_model;
      char buf[96];
      std::snprintf(buf, sizeof buf, "%g-%g%%%s: %s", r.ideal_lo, r.ideal_hi,
                    of_model ? " of model" : "", r.verdict.c_str());
      ideal = buf;
      if (of_model) {
        std::snprintf(buf, sizeof buf, " (%.1f%% of model)", 100 * r.model_share);
        ideal += buf;
      }
    }
    const std::string count = r.name == kModelOther ? "-" : std::to_string(r.count);
    std::snprintf(line, sizeof line, "  %-16s %6s %11.3f %11.3f %6.1f%% %-4s %s\n", r.name.c_str(),
                  count.c_str(), ms(r.cpu_ns), ms(r.gpu_ns), 100 * r.share,
                  r.on_gpu ? "gpu" : "cpu", ideal.c_str());
    os << line;
  }
  os << "  (share of: cpu = the range's own CPU time, gpu = the GPU time of the work launched\n"
        "   inside it; CPU stages overlap the GPU in async mode, so shares need not add to 100%)\n";
  if (!m.has_gpu) {
    os << "\nno GPU records: CPU ranges only (CPU backend, or CUPTI unavailable)\n";
  } else {
    for (const BusyStats& b : m.busy) {
      std::snprintf(line, sizeof line,
                    "\nGPU %u busy: %.1f%% of the %.3f ms window (kernels on any stream); any op "
                    "(kernels, copies, memsets): %.1f%%\n",
                    b.device, 100 * b.busy_fraction, ms(b.window_ns), 100 * b.active_fraction);
      os << line;
    }
    std::snprintf(line, sizeof line,
                  "idle per stream, by cause (kernel gap: queued in time, gap <= %.1f us)\n",
                  static_cast<double>(m.kernel_gap_threshold_ns) / 1e3);
    os << line;
    std::snprintf(line, sizeof line, "  %-10s %6s %10s %10s %11s %11s %10s\n", "stream", "ops",
                  "busy ms", "idle ms", "host wait", "kernel gap", "other");
    os << line;
    for (const StreamIdle& s : m.idle) {
      std::snprintf(line, sizeof line, "  %-10s %6lld %10.3f %10.3f %11.3f %11.3f %10.3f\n",
                    s.name.c_str(), static_cast<long long>(s.ops), ms(s.busy_ns), ms(s.idle_ns),
                    ms(s.host_wait_ns), ms(s.kernel_gap_ns), ms(s.other_ns));
      os << line;
    }
    const Overlap& o = m.overlap;
    std::snprintf(line, sizeof line,
                  "H2D/compute overlap: %.1f%% of %lld H2D copies' time (%.3f ms) ran under a "
                  "kernel; step N+1's H2D during step N's compute in %lld of %lld step pairs\n",
                  100 * o.fraction, static_cast<long long>(o.h2d_copies), ms(o.h2d_ns),
                  static_cast<long long>(o.step_pairs_overlapped),
                  static_cast<long long>(o.step_pairs));
    os << line;
    const LaunchStats& l = m.launch;
    std::snprintf(line, sizeof line,
                  "launch overhead: %lld of %lld launched kernels (%.1f%%) ran shorter than their "
                  "launch call (median call %.1f us, kernel %.1f us, call start -> kernel start "
                  "%.1f us)\n",
                  static_cast<long long>(l.shorter_than_launch), static_cast<long long>(l.launched),
                  100 * l.fraction, l.median_launch_ns / 1e3, l.median_kernel_ns / 1e3,
                  l.median_queue_ns / 1e3);
    os << line;
    os << "top kernels by time\n";
    for (const KernelStat& k : m.kernels) {
      std::string name = k.name.size() > 70 ? k.name.substr(0, 67) + "..." : k.name;
      std::snprintf(line, sizeof line, "  %5.1f%% %9.3f ms %6lld x %8.1f us  %s\n", 100 * k.share,
                    ms(k.total_ns), static_cast<long long>(k.count), k.mean_ns / 1e3, name.c_str());
      os << line;
    }
  }
  int64_t complete = 0;
  for (const StepStats& s : m.steps) complete += s.complete;
  std::snprintf(line, sizeof line, "%zu steps in the trace (%lld with all five CPU stages)%s\n",
                m.steps.size(), static_cast<long long>(complete),
                m.has_gpu && !m.dropped_records ? "; no CUPTI records dropped" : "");
  os << line;
  if (m.dropped_records) {
    std::snprintf(line, sizeof line,
                  "WARNING: CUPTI dropped %lld records (buffers full): the GPU lanes have holes\n",
                  static_cast<long long>(m.dropped_records));
    os << line;
  }
  return os.str();
}

}  // namespace day18::trace
