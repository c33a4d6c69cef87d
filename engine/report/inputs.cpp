#include "engine/report/inputs.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/profiling/kernel_analysis.h"

namespace day18::report {
namespace {

using nlohmann::json;

// Field access that names the flag, the file and the place of the field when something is off:
//   --tune t.json: groups[0].points[2]: no "median_us" (required)
class Fields {
 public:
  Fields(std::string flag, std::string file) : flag_(std::move(flag)), file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw InvalidArgument(flag_ + " " + file_ + ": " + (where.empty() ? "" : where + ": ") + what);
  }
  json load(const char* made_by) const {
    const std::string why = unreadable_reason(file_);
    if (!why.empty()) fail("", "cannot open it: " + why + " (write it with " + made_by + ")");
    std::ifstream f(file_);
    json j;
    try {
      j = json::parse(f);
    } catch (const json::parse_error& e) {
      fail("", "not JSON: " + json_library_message(e.what()));
    }
    if (!j.is_object()) fail("", "expected a JSON object, got " + std::string(j.type_name()));
    return j;
  }
  const json& field(const json& o, const char* key, const std::string& where) const {
    if (!o.is_object()) fail(where, "expected an object");
    auto it = o.find(key);
    if (it == o.end()) fail(where, std::string("no \"") + key + "\" (required)");
    return *it;
  }
  double num(const json& o, const char* key, const std::string& where) const {
    const json& v = field(o, key, where);
    if (!v.is_number()) fail(where, std::string("\"") + key + "\" is not a number: " + v.dump());
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(where, std::string("\"") + key + "\" is not finite");
    return d;
  }
  double opt_num(const json& o, const char* key, const std::string& where, double dflt) const {
    if (!o.is_object() || !o.contains(key) || o.at(key).is_null()) return dflt;
    return num(o, key, where);
  }
  double non_negative(const json& o, const char* key, const std::string& where) const {
    const double d = num(o, key, where);
    if (d < 0) fail(where, std::string("\"") + key + "\" is negative: " + o.at(key).dump());
    return d;
  }
  int64_t integer(const json& o, const char* key, const std::string& where) const {
    const json& v = field(o, key, where);
    if (!v.is_number_integer())
      fail(where, std::string("\"") + key + "\" is not an integer: " + v.dump());
    return v.get<int64_t>();
  }
  std::string str(const json& o, const char* key, const std::string& where) const {
    const json& v = field(o, key, where);
    if (!v.is_string()) fail(where, std::string("\"") + key + "\" is not a string: " + v.dump());
    return v.get<std::string>();
  }
  std::string opt_str(const json& o, const char* key) const {
    if (!o.is_object() || !o.contains(key) || !o.at(key).is_string()) return "";
    return o.at(key).get<std::string>();
  }
  bool boolean(const json& o, const char* key, const std::string& where) const {
    const json& v = field(o, key, where);
    if (!v.is_boolean()) fail(where, std::string("\"") + key + "\" is not true/false: " + v.dump());
    return v.get<bool>();
  }
  const json& array(const json& o, const char* key, const std::string& where) const {
    const json& v = field(o, key, where);
    if (!v.is_array()) fail(where, std::string("\"") + key + "\" is not an array: " + v.dump());
    return v;
  }
  const json& object(const json& o, const char* key, const std::string& where) const {
    const json& v = field(o, key, where);
    if (!v.is_object()) fail(where, std::string("\"") + key + "\" is not an object: " + v.dump());
    return v;
  }
  std::vector<std::string> strings(const json& o, const char* key, const std::string& where) const {
    std::vector<std::string> out;
    const json& a = array(o, key, where);
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_string())
        fail(where, std::string("\"") + key + "\"[" + std::to_string(i) + "] is not a string");
      out.push_back(a[i].get<std::string>());
    }
    return out;
  }

 private:
  std::string flag_, file_;
};

std::string at(const std::string& base, size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// A JSON value as the report prints it in a config cell: strings without quotes, numbers as
// nlohmann writes them (1, 2.5, 1e-05).
std::string plain(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

void flatten_numbers(const json& o, const std::string& prefix, std::map<std::string, double>& out) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_number()) {
      const double d = it->get<double>();
      if (std::isfinite(d)) out[key] = d;
    } else if (it->is_object()) {
      flatten_numbers(*it, key, out);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- the probe

ProbeInput read_probe(const std::string& path) {
  const Fields f("--probe", path);
  const json j = f.load("day18 probe --json FILE");
  if (!j.contains("schema"))
    f.fail("",
           "no \"schema\": expected \"day18-bandwidth-probe/1\" (the file of day18 probe "
           "--json)");
  const std::string schema = f.str(j, "schema", "");
  if (schema != "day18-bandwidth-probe/1")
    f.fail("", "schema is \"" + schema +
                   "\", expected \"day18-bandwidth-probe/1\" (the file of "
                   "day18 probe --json)");
  ProbeInput p;
  p.file = path;
  const json& prov = f.object(j, "provenance", "");
  p.gpu = f.str(prov, "gpu", "provenance");
  p.sm = f.opt_str(prov, "sm");
  p.nvidia_driver = f.opt_str(prov, "nvidia_driver");
  p.cuda_runtime = f.opt_str(prov, "cuda_runtime");
  p.commit = f.opt_str(prov, "commit");
  p.time_utc = f.opt_str(prov, "time_utc");
  p.sm_count = static_cast<int>(f.opt_num(prov, "sm_count", "provenance", 0));
  p.p_gbps = f.num(j, "p_gbps", "");
  if (p.p_gbps <= 0) f.fail("", "\"p_gbps\" must be > 0, got " + j.at("p_gbps").dump());
  if (j.contains("datasheet") && j.at("datasheet").is_object()) {
    const json& d = j.at("datasheet");
    p.hbm_gbps = f.opt_num(d, "hbm_gbps", "datasheet", 0);
    if (d.contains("link") && d.at("link").is_object()) {
      p.link = f.opt_str(d.at("link"), "name");
      p.link_gbps = f.opt_num(d.at("link"), "gbps_per_direction", "datasheet.link", 0);
    }
  }
  if (j.contains("summaries")) {
    const json& s = f.array(j, "summaries", "");
    for (size_t i = 0; i < s.size(); ++i) {
      const std::string w = at("summaries", i);
      const std::string kind = f.str(s[i], "kind", w);
      const double g = f.num(s[i], "largest_gbps", w);
      if (kind == "h2d_pinned") p.h2d_pinned_gbps = g;
      if (kind == "d2h_pinned") p.d2h_pinned_gbps = g;
      if (kind == "h2d_pageable") p.h2d_pageable_gbps = g;
      if (kind == "d2h_pageable") p.d2h_pageable_gbps = g;
    }
  }
  return p;
}

// ---------------------------------------------------------------- the roof

RoofInput read_roof(const std::string& path) {
  const Roof r = read_roof_json(path);  // its errors name --roof and the file
  RoofInput out;
  out.file = path;
  out.p_gbps = r.peak_bw / 1e9;
  out.peak_tensor_tflops = r.peak_flops / 1e12;
  out.peak_fma_tflops = r.peak_fma_flops / 1e12;
  const std::string prefix = path + " (";
  if (r.source.rfind(prefix, 0) == 0 && r.source.back() == ')')
    out.gpu = r.source.substr(prefix.size(), r.source.size() - prefix.size() - 1);
  return out;
}

// ---------------------------------------------------------------- the trace's metrics

TraceInput read_trace_metrics(const std::string& path) {
  const Fields f("--trace-metrics", path);
  const json j = f.load("day18 trace --out T.json, which writes T.metrics.json");
  const std::string units = f.str(j, "units", "");
  if (units != "times in ms, fractions in [0, 1]")
    f.fail("", "\"units\" is \"" + units +
                   "\", expected \"times in ms, fractions in [0, 1]\" "
                   "(the metrics file of day18 trace)");
  TraceInput t;
  t.file = path;
  t.has_gpu = f.boolean(j, "has_gpu", "");
  if (j.contains("meta") && j.at("meta").is_object()) {
    const json& m = j.at("meta");
    t.model = f.opt_str(m, "model");
    t.dtype = f.opt_str(m, "dtype");
    t.commit = f.opt_str(m, "commit");
    t.requests = static_cast<int64_t>(f.opt_num(m, "requests", "meta", 0));
    t.traced_steps = static_cast<int64_t>(f.opt_num(m, "traced_steps", "meta", 0));
    t.cuda_graphs = m.contains("cuda_graphs") && m.at("cuda_graphs").is_boolean() &&
                    m.at("cuda_graphs").get<bool>();
  }
  const json& busy = f.array(j, "gpu_busy", "");
  if (!busy.empty()) {
    t.window_ms = f.non_negative(busy[0], "window_ms", "gpu_busy[0]");
    t.kernel_ms = f.non_negative(busy[0], "kernel_ms", "gpu_busy[0]");
    t.busy_fraction = f.non_negative(busy[0], "busy_fraction", "gpu_busy[0]");
  }
  const json& idle = f.array(j, "idle_by_stream", "");
  for (size_t i = 0; i < idle.size(); ++i) {
    const std::string w = at("idle_by_stream", i);
    StreamRow s;
    s.name = f.str(idle[i], "name", w);
    s.ops = f.integer(idle[i], "ops", w);
    s.busy_ms = f.non_negative(idle[i], "busy_ms", w);
    s.idle_ms = f.non_negative(idle[i], "idle_ms", w);
    s.host_wait_ms = f.non_negative(idle[i], "host_wait_ms", w);
    s.kernel_gap_ms = f.non_negative(idle[i], "kernel_gap_ms", w);
    s.other_ms = f.non_negative(idle[i], "other_ms", w);
    if (s.name == "compute" && s.ops > 0)
      t.gap_us_per_launch = (s.host_wait_ms + s.kernel_gap_ms) * 1e3 / double(s.ops);
    t.streams.push_back(s);
  }
  const json& ov = f.object(j, "h2d_compute_overlap", "");
  t.overlap_fraction = f.non_negative(ov, "fraction", "h2d_compute_overlap");
  t.step_pairs = f.integer(ov, "step_pairs", "h2d_compute_overlap");
  t.step_pairs_overlapped = f.integer(ov, "step_pairs_overlapped", "h2d_compute_overlap");
  const json& lo = f.object(j, "launch_overhead", "");
  t.kernels = f.integer(lo, "kernels", "launch_overhead");
  t.shorter_than_launch = f.integer(lo, "shorter_than_launch", "launch_overhead");
  t.median_launch_us = f.non_negative(lo, "median_launch_us", "launch_overhead");
  t.median_kernel_us = f.non_negative(lo, "median_kernel_us", "launch_overhead");
  const json& steps = f.array(j, "steps", "");
  std::vector<double> cpu, span, kern, nk;
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string w = at("steps", i);
    if (!f.boolean(steps[i], "complete", w)) continue;
    cpu.push_back(f.non_negative(steps[i], "cpu_ms", w));
    span.push_back(f.non_negative(steps[i], "gpu_span_ms", w));
    kern.push_back(f.non_negative(steps[i], "kernel_ms", w));
    nk.push_back(double(f.integer(steps[i], "kernels", w)));
  }
  t.complete_steps = static_cast<int64_t>(cpu.size());
  t.step_cpu_ms = median(cpu);
  t.step_gpu_span_ms = median(span);
  t.step_kernel_ms = median(kern);
  t.step_kernels = median(nk);
  const json& prof = f.object(j, "profile", "");
  const json& ranges = f.array(prof, "ranges", "profile");
  for (size_t i = 0; i < ranges.size(); ++i) {
    const std::string w = at("profile.ranges", i);
    RangeRow r;
    r.name = f.str(ranges[i], "name", w);
    r.share = f.non_negative(ranges[i], "share", w);
    if (ranges[i].contains("ideal_percent")) {
      const json& ip = f.array(ranges[i], "ideal_percent", w);
      if (ip.size() != 2 || !ip[0].is_number() || !ip[1].is_number())
        f.fail(w, "\"ideal_percent\" must be [lo, hi]");
      r.ideal_lo = ip[0].get<double>();
      r.ideal_hi = ip[1].get<double>();
      r.ideal_of = f.opt_str(ranges[i], "ideal_of");
      r.verdict = f.opt_str(ranges[i], "verdict");
    }
    t.ranges.push_back(r);
  }
  const json& top = f.array(j, "top_kernels", "");
  for (size_t i = 0; i < top.size(); ++i) {
    const std::string w = at("top_kernels", i);
    TopKernel k;
    k.name = f.str(top[i], "name", w);
    k.count = f.integer(top[i], "count", w);
    k.total_ms = f.non_negative(top[i], "total_ms", w);
    k.mean_us = f.non_negative(top[i], "mean_us", w);
    k.share = f.non_negative(top[i], "share", w);
    t.top_kernels.push_back(k);
  }
  return t;
}

// ---------------------------------------------------------------- the analysis

AnalysisInput read_analysis(const std::string& path) {
  const Fields f("--analysis", path);
  const json j = f.load("day18 analyze ... --json FILE");
  AnalysisInput a;
  a.file = path;
  a.source = f.str(j, "source", "");
  a.input = f.str(j, "input", "");
  a.plan = f.opt_str(j, "plan");
  a.launches = f.integer(j, "launches", "");
  a.total_kernel_us = f.non_negative(j, "total_kernel_us", "");
  const json& roof = f.object(j, "roof", "");
  a.peak_bw_gbps = f.num(roof, "peak_bw_gbps", "roof");
  a.peak_tflops = f.num(roof, "peak_tflops", "roof");
  a.peak_fma_tflops = f.num(roof, "peak_fma_tflops", "roof");
  a.roof_source = f.opt_str(roof, "source");
  if (j.contains("notes")) a.notes = f.strings(j, "notes", "");
  const json& ks = f.array(j, "kernels", "");
  for (size_t i = 0; i < ks.size(); ++i) {
    const std::string w = at("kernels", i);
    const json& k = ks[i];
    KernelVerdict v;
    v.name = f.str(k, "name", w);
    v.what = f.opt_str(k, "what");
    v.verdict = f.str(k, "verdict", w);
    v.detail = f.opt_str(k, "detail");
    v.label = f.str(k, "label", w);
    v.launches = f.integer(k, "launches", w);
    v.time_share = f.non_negative(k, "time_share", w);
    v.duration_us = f.opt_num(k, "duration_us", w, 0);
    v.total_us = f.opt_num(k, "total_us", w, 0);
    if (k.contains("pct_of_roof")) v.pct_of_roof = f.non_negative(k, "pct_of_roof", w);
    v.tensor_op = k.contains("tensor_op") && f.boolean(k, "tensor_op", w);
    if (k.contains("evidence")) v.evidence = f.strings(k, "evidence", w);
    if (k.contains("recommendations")) v.recommendations = f.strings(k, "recommendations", w);
    a.kernels.push_back(std::move(v));
  }
  return a;
}

// ---------------------------------------------------------------- an experiment

int TuneGroup::failed_points() const {
  return static_cast<int>(
      std::count_if(points.begin(), points.end(), [](const TunePoint& p) { return !p.correct; }));
}

TuneInput read_tune(const std::string& path) {
  const Fields f("--tune", path);
  const json j = f.load("day18 tune ... --json FILE");
  if (!j.contains("schema"))
    f.fail("", "no \"schema\": expected \"day18.tune.v1\" (the file of day18 tune --json)");
  const std::string schema = f.str(j, "schema", "");
  if (schema != "day18.tune.v1")
    f.fail("", "schema is \"" + schema +
                   "\", expected \"day18.tune.v1\" (the file of day18 "
                   "tune --json)");
  TuneInput t;
  t.file = path;
  t.experiment = f.str(j, "experiment", "");
  if (t.experiment != "block_size" && t.experiment != "batch_size" && t.experiment != "precision")
    f.fail("", "\"experiment\" is \"" + t.experiment +
                   "\", expected block_size, batch_size or precision");
  const json& prov = f.object(j, "provenance", "");
  t.gpu = f.str(prov, "gpu", "provenance");
  t.driver = f.str(prov, "driver", "provenance");
  t.cuda_runtime = f.str(prov, "cuda_runtime", "provenance");
  t.commit = f.str(prov, "commit", "provenance");
  t.date = f.str(prov, "date", "provenance");
  t.command = f.str(prov, "command", "provenance");
  t.sm_count = static_cast<int>(f.integer(prov, "sm_count", "provenance"));
  const json& roof = f.object(j, "roof", "");
  t.p_gbps = f.num(roof, "p_gbps", "roof");
  if (t.p_gbps <= 0) f.fail("roof", "\"p_gbps\" must be > 0, got " + roof.at("p_gbps").dump());
  t.p_source = f.str(roof, "p_source", "roof");
  t.peak_tflops = f.non_negative(roof, "peak_tflops", "roof");
  t.peak_fma_tflops = f.non_negative(roof, "peak_fma_tflops", "roof");
  t.hypothesis = f.str(j, "hypothesis", "");
  t.parameters = f.strings(j, "parameters", "");
  t.notes = f.strings(j, "notes", "");
  const json& groups = f.array(j, "groups", "");
  if (groups.empty()) f.fail("", "\"groups\" is empty: the experiment measured nothing");
  static const char* kTiming[] = {"median_us", "p20_us",   "p80_us",    "repeats", "bytes",
                                  "flops",     "pct_of_p", "occupancy", "verdict"};
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const std::string gw = at("groups", gi);
    const json& gj = groups[gi];
    TuneGroup g;
    g.name = f.str(gj, "name", gw);
    g.kernel = f.str(gj, "kernel", gw);
    g.shape = f.object(gj, "shape", gw).dump();
    const json& pts = f.array(gj, "points", gw);
    if (pts.empty()) f.fail(gw, "\"points\" is empty");
    for (size_t pi = 0; pi < pts.size(); ++pi) {
      const std::string w = gw + "." + at("points", pi);
      const json& pj = pts[pi];
      TunePoint p;
      const json& cfg = f.object(pj, "config", w);
      p.config = cfg.dump();
      for (auto it = cfg.begin(); it != cfg.end(); ++it) p.config_values[it.key()] = plain(*it);
      p.label = f.str(pj, "label", w);
      p.correct = f.boolean(pj, "correct", w);
      p.max_abs_err = f.non_negative(pj, "max_abs_err", w);
      p.tolerance = f.non_negative(pj, "tolerance", w);
      if (!p.correct) {
        for (const char* k : kTiming)
          if (pj.contains(k))
            f.fail(w, std::string("\"correct\" is false but it has \"") + k +
                          "\": a point that failed its check is not timed");
        g.points.push_back(std::move(p));
        continue;
      }
      p.median_us = f.non_negative(pj, "median_us", w);
      p.p20_us = f.non_negative(pj, "p20_us", w);
      p.p80_us = f.non_negative(pj, "p80_us", w);
      if (!(p.p20_us <= p.median_us && p.median_us <= p.p80_us))
        f.fail(w, "expected p20_us <= median_us <= p80_us, got " + pj.at("p20_us").dump() + ", " +
                      pj.at("median_us").dump() + ", " + pj.at("p80_us").dump());
      if (p.median_us <= 0) f.fail(w, "\"median_us\" must be > 0");
      p.repeats = f.integer(pj, "repeats", w);
      if (p.repeats < 1) f.fail(w, "\"repeats\" must be >= 1, got " + pj.at("repeats").dump());
      p.bytes = f.non_negative(pj, "bytes", w);
      p.flops = f.non_negative(pj, "flops", w);
      p.pct_of_p = f.non_negative(pj, "pct_of_p", w);
      const json& occ = f.object(pj, "occupancy", w);
      const std::string ow = w + ".occupancy";
      p.occupancy.theoretical_pct = f.non_negative(occ, "theoretical_pct", ow);
      p.occupancy.blocks_per_sm = f.non_negative(occ, "blocks_per_sm", ow);
      p.occupancy.registers = f.non_negative(occ, "registers", ow);
      p.occupancy.shared_bytes = f.non_negative(occ, "shared_bytes", ow);
      p.occupancy.waves = f.non_negative(occ, "waves", ow);
      p.verdict = f.str(pj, "verdict", w);
      if (pj.contains("extra")) {
        const json& ex = f.object(pj, "extra", w);
        flatten_numbers(ex, "", p.extra);
        p.knee_flag =
            ex.contains("knee") && ex.at("knee").is_boolean() && ex.at("knee").get<bool>();
      }
      g.points.push_back(std::move(p));
    }
    const int64_t n = static_cast<int64_t>(g.points.size());
    const int64_t base = f.integer(gj, "baseline", gw), best = f.integer(gj, "best", gw);
    if (base < 0 || base >= n)
      f.fail(gw, "\"baseline\" " + std::to_string(base) + " is not a point index (0.." +
                     std::to_string(n - 1) + ")");
    // best -1: no configuration passed its check (day18 tune writes -1 then, speedup 0).
    if (best < -1 || best >= n)
      f.fail(gw, "\"best\" " + std::to_string(best) + " is not -1 or a point index (0.." +
                     std::to_string(n - 1) + ")");
    g.baseline = static_cast<int>(base);
    g.best = static_cast<int>(best);
    const int correct = static_cast<int>(g.points.size()) - g.failed_points();
    if (g.best < 0 && correct > 0)
      f.fail(gw, "\"best\" is -1 (no configuration passed its check) but " +
                     std::to_string(correct) + " point(s) did");
    if (g.best >= 0 && !g.points[g.best].correct)
      f.fail(gw, "the best (point " + std::to_string(best) + ", " + g.points[g.best].label +
                     ") failed its correctness check: a wrong answer is no result");
    g.speedup = f.num(gj, "speedup", gw);
    // A baseline that failed its check leaves nothing to compare with (day18 tune: speedup 0).
    if (g.best >= 0 && g.points[g.baseline].correct) {
      const double expect = g.points[g.baseline].median_us / g.points[g.best].median_us;
      if (std::fabs(g.speedup - expect) > 0.01 * expect)
        f.fail(gw, "\"speedup\" is " + gj.at("speedup").dump() +
                       " but baseline median / best median is " + std::to_string(expect));
    }
    g.within_noise = f.boolean(gj, "within_noise", gw);
    t.groups.push_back(std::move(g));
  }
  return t;
}

int batch_knee(const TuneGroup& g) {
  int first = -1, knee = -1, timed = 0;
  for (size_t i = 0; i < g.points.size(); ++i) {
    if (!g.points[i].correct) continue;
    ++timed;
    if (first < 0) first = static_cast<int>(i);
    if (g.points[i].median_us <= kKneeFactor * g.points[first].median_us)
      knee = static_cast<int>(i);
  }
  return timed >= 2 ? knee : -1;
}

}  // namespace day18::report
