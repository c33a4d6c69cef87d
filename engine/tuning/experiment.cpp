// The "day18.tune.v1" JSON: writing, reading with validation, and the tables (experiment.h).
#include "engine/tuning/experiment.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/file_io.h"

namespace day18::tuning {

bool is_experiment(const std::string& name) {
  for (const char* e : kExperiments)
    if (name == e) return true;
  return false;
}

nlohmann::json to_json(const Point& p) {
  nlohmann::json j = {{"config", p.config},
                      {"label", p.label},
                      {"correct", p.correct},
                      {"max_abs_err", p.max_abs_err},
                      {"tolerance", p.tolerance}};
  if (!p.correct && !p.check_report.empty()) j["error"] = p.check_report;
  // Timing and what rests on it only for a point that was timed: a point that failed its check
  // has none of median/p20/p80/repeats/bytes/flops/pct_of_p/occupancy/verdict (day18 report
  // rejects a file where it does).
  if (p.timed) {
    j["median_us"] = p.median_us;
    j["p20_us"] = p.p20_us;
    j["p80_us"] = p.p80_us;
    j["repeats"] = p.repeats;
    j["bytes"] = p.bytes;
    j["flops"] = p.flops;
    j["pct_of_p"] = p.pct_of_p;
    j["verdict"] = p.verdict;
    const Occupancy o = p.occupancy.value_or(Occupancy{});  // zeros: not one kernel (a step)
    j["occupancy"] = {{"theoretical_pct", o.theoretical_pct},
                      {"blocks_per_sm", o.blocks_per_sm},
                      {"registers", o.registers},
                      {"shared_bytes", o.shared_bytes},
                      {"waves", o.waves},
                      {"threads", o.threads},
                      {"grid", o.grid}};
  }
  j["extra"] = p.extra;
  return j;
}

nlohmann::json to_json(const Group& g) {
  nlohmann::json pts = nlohmann::json::array();
  for (const Point& p : g.points) pts.push_back(to_json(p));
  return {{"name", g.name},
          {"kernel", g.kernel},
          {"shape", g.shape},
          {"baseline", g.baseline},
          {"best", g.best},
          {"speedup", g.speedup},
          {"within_noise", g.within_noise},
          {"points", pts}};
}

nlohmann::json to_json(const Experiment& e) {
  nlohmann::json groups = nlohmann::json::array();
  for (const Group& g : e.groups) groups.push_back(to_json(g));
  const Provenance& p = e.provenance;
  return {{"schema", kSchema},
          {"experiment", e.experiment},
          {"provenance",
           {{"gpu", p.gpu},
            {"driver", p.driver},
            {"cuda_runtime", p.cuda_runtime},
            {"commit", p.commit},
            {"date", p.date},
            {"command", p.command},
            {"sm_count", p.sm_count}}},
          {"roof",
           {{"p_gbps", e.roof.p_gbps},
            {"p_source", e.roof.p_source},
            {"peak_tflops", e.roof.peak_tflops},
            {"peak_fma_tflops", e.roof.peak_fma_tflops}}},
          {"hypothesis", e.hypothesis},
          {"parameters", e.parameters},
          {"groups", groups},
          {"notes", e.notes}};
}

// ---- reading -----------------------------------------------------------------------------------
namespace {

// A JSON object with the path that led to it, for errors: "f.json: groups[0].points[2].median_us".
struct Node {
  const nlohmann::json& j;
  std::string path;
  const std::string& where;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw InvalidArgument(detail::concat(where, ": ", path.empty() ? "" : path + ".", field, ": ",
                                         what, " (schema ", kSchema, ", docs/tuning.md)"));
  }
  const nlohmann::json& need(const std::string& field) const {
    const auto it = j.find(field);
    if (it == j.end()) fail(field, "missing");
    return *it;
  }
  bool has(const std::string& field) const { return j.contains(field); }
  double number(const std::string& field) const {
    const nlohmann::json& v = need(field);
    if (!v.is_number()) fail(field, "must be a number, got " + v.dump());
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(field, "must be finite");
    return d;
  }
  double number_or(const std::string& field, double dflt) const {
    return has(field) ? number(field) : dflt;
  }
  int integer(const std::string& field) const {
    const nlohmann::json& v = need(field);
    if (!v.is_number_integer()) fail(field, "must be an integer, got " + v.dump());
    return v.get<int>();
  }
  std::string string(const std::string& field) const {
    const nlohmann::json& v = need(field);
    if (!v.is_string()) fail(field, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }
  std::string string_or(const std::string& field, const std::string& dflt) const {
    return has(field) ? string(field) : dflt;
  }
  bool boolean(const std::string& field) const {
    const nlohmann::json& v = need(field);
    if (!v.is_boolean()) fail(field, "must be true or false, got " + v.dump());
    return v.get<bool>();
  }
  const nlohmann::json& object(const std::string& field) const {
    const nlohmann::json& v = need(field);
    if (!v.is_object()) fail(field, "must be an object");
    return v;
  }
  const nlohmann::json& array(const std::string& field) const {
    const nlohmann::json& v = need(field);
    if (!v.is_array()) fail(field, "must be an array");
    return v;
  }
  Node child(const std::string& field, const nlohmann::json& v) const {
    return {v, path.empty() ? field : path + "." + field, where};
  }
};

Point point_from(const Node& n) {
  Point p;
  p.config = n.object("config");
  p.label = n.string("label");
  p.correct = n.boolean("correct");
  p.max_abs_err = n.number("max_abs_err");
  p.tolerance = n.number("tolerance");
  p.check_report = n.string_or("error", "");
  static const char* kTiming[] = {"median_us", "p20_us", "p80_us", "repeats"};
  static const char* kTimedOnly[] = {"median_us", "p20_us",   "p80_us",    "repeats", "bytes",
                                     "flops",     "pct_of_p", "occupancy", "verdict"};
  int timing_fields = 0;
  for (const char* f : kTiming) timing_fields += n.has(f) ? 1 : 0;
  if (!p.correct)
    for (const char* f : kTimedOnly)
      if (n.has(f))
        n.fail(f, "a point that is not correct was not timed: it must have no timing fields");
  if (p.correct && timing_fields < 4)
    n.fail("median_us",
           "a correct point was timed: it needs all of median_us, p20_us, p80_us, repeats");
  if (timing_fields == 4) {
    p.timed = true;
    p.median_us = n.number("median_us");
    p.p20_us = n.number("p20_us");
    p.p80_us = n.number("p80_us");
    p.repeats = n.integer("repeats");
    if (!(p.p20_us <= p.median_us && p.median_us <= p.p80_us))
      n.fail("median_us", detail::concat("needs p20_us <= median_us <= p80_us, got ", p.p20_us,
                                         " / ", p.median_us, " / ", p.p80_us));
    if (p.repeats < 1) n.fail("repeats", "must be >= 1");
    p.pct_of_p = n.number_or("pct_of_p", 0);
    p.verdict = n.string_or("verdict", "");
  }
  if (p.timed) {
    p.bytes = n.number("bytes");
    p.flops = n.number("flops");
  }
  if (n.has("occupancy")) {
    const Node o = n.child("occupancy", n.object("occupancy"));
    Occupancy oc;
    oc.theoretical_pct = o.number("theoretical_pct");
    oc.blocks_per_sm = o.integer("blocks_per_sm");
    oc.registers = o.integer("registers");
    oc.shared_bytes = o.number("shared_bytes");
    oc.waves = o.number("waves");
    oc.threads = o.has("threads") ? o.integer("threads") : 0;
    oc.grid = o.number_or("grid", 0);
    p.occupancy = oc;
  }
  p.extra = n.has("extra") ? n.object("extra") : nlohmann::json::object();
  return p;
}

Group group_from(const Node& n) {
  Group g;
  g.name = n.string("name");
  g.kernel = n.string("kernel");
  g.shape = n.object("shape");
  g.baseline = n.integer("baseline");
  g.best = n.integer("best");
  g.speedup = n.number("speedup");
  g.within_noise = n.boolean("within_noise");
  const nlohmann::json& pts = n.array("points");
  for (size_t i = 0; i < pts.size(); ++i) {
    if (!pts[i].is_object()) n.fail(detail::concat("points[", i, "]"), "must be an object");
    g.points.push_back(point_from(n.child(detail::concat("points[", i, "]"), pts[i])));
  }
  const int np = static_cast<int>(g.points.size());
  if (np == 0) n.fail("points", "a group needs at least one point");
  if (g.baseline < 0 || g.baseline >= np)
    n.fail("baseline", detail::concat(g.baseline, " is not an index of the ", np, " points"));
  if (g.best < -1 || g.best >= np)
    n.fail("best", detail::concat(g.best, " is not -1 or an index of the ", np, " points"));
  return g;
}

}  // namespace

Experiment experiment_from_json(const nlohmann::json& j, const std::string& where) {
  static const std::string kNone;
  if (!j.is_object()) throw InvalidArgument(where + ": not a JSON object (schema day18.tune.v1)");
  const Node n{j, "", where};
  const std::string schema = n.string("schema");
  if (schema != kSchema)
    n.fail("schema",
           "\"" + schema + "\" is not \"" + kSchema + "\" (is this a `day18 tune --json` file?)");
  Experiment e;
  e.experiment = n.string("experiment");
  if (!is_experiment(e.experiment))
    n.fail("experiment", "\"" + e.experiment + "\" is not block_size, batch_size or precision");
  const Node pv = n.child("provenance", n.object("provenance"));
  e.provenance.gpu = pv.string("gpu");
  e.provenance.driver = pv.string_or("driver", "");
  e.provenance.cuda_runtime = pv.string_or("cuda_runtime", "");
  e.provenance.commit = pv.string("commit");
  e.provenance.date = pv.string("date");
  e.provenance.command = pv.string("command");
  e.provenance.sm_count = pv.has("sm_count") ? pv.integer("sm_count") : 0;
  const Node rf = n.child("roof", n.object("roof"));
  e.roof.p_gbps = rf.number("p_gbps");
  e.roof.p_source = rf.string("p_source");
  e.roof.peak_tflops = rf.number_or("peak_tflops", 0);
  e.roof.peak_fma_tflops = rf.number_or("peak_fma_tflops", 0);
  e.hypothesis = n.string("hypothesis");
  const nlohmann::json& params = n.array("parameters");
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].is_string()) n.fail(detail::concat("parameters[", i, "]"), "must be a string");
    e.parameters.push_back(params[i].get<std::string>());
  }
  const nlohmann::json& groups = n.array("groups");
  for (size_t i = 0; i < groups.size(); ++i) {
    if (!groups[i].is_object()) n.fail(detail::concat("groups[", i, "]"), "must be an object");
    e.groups.push_back(group_from(n.child(detail::concat("groups[", i, "]"), groups[i])));
  }
  if (n.has("notes")) {
    const nlohmann::json& notes = n.array("notes");
    for (size_t i = 0; i < notes.size(); ++i) {
      if (!notes[i].is_string()) n.fail(detail::concat("notes[", i, "]"), "must be a string");
      e.notes.push_back(notes[i].get<std::string>());
    }
  }
  return e;
}

Experiment read_experiment(const std::string& path) {
  const std::string why = unreadable_reason(path);
  if (!why.empty()) throw InvalidArgument("tune show: cannot read '" + path + "': " + why);
  std::ifstream f(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::parse_error& err) {
    throw InvalidArgument("tune show: '" + path +
                          "' is not JSON: " + json_library_message(err.what()));
  }
  return experiment_from_json(j, path);
}

void write_experiment(const std::string& path, const Experiment& e, const char* flag) {
  const nlohmann::json j = to_json(e);
  write_file_atomically(path, flag, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
}

// ---- tables ------------------------------------------------------------------------------------
std::string experiment_tables(const Experiment& e) {
  std::ostringstream out;
  char buf[512];
  const Provenance& pv = e.provenance;
  out << "experiment " << e.experiment << " on " << pv.gpu << " (" << pv.sm_count
      << " SMs), commit " << pv.commit << ", " << pv.date << "\n";
  out << "  command: " << pv.command << "\n";
  std::snprintf(buf, sizeof buf,
                "  P = %.0f GB/s (%s), tensor peak %.0f TFLOP/s, FMA %.1f TFLOP/s\n", e.roof.p_gbps,
                e.roof.p_source.c_str(), e.roof.peak_tflops, e.roof.peak_fma_tflops);
  out << buf;
  out << "  hypothesis: " << e.hypothesis << "\n";
  for (const Group& g : e.groups) {
    out << "\n" << g.name << "  [" << g.kernel << "]\n";
    std::snprintf(buf, sizeof buf, "  %-2s %-34s %7s %10s %21s %5s %6s %6s %6s  %s\n", "", "config",
                  "correct", "median us", "p20 - p80 us", "reps", "% of P", "occ %", "waves",
                  "verdict");
    out << buf;
    for (size_t i = 0; i < g.points.size(); ++i) {
      const Point& p = g.points[i];
      const std::string mark = std::string(static_cast<int>(i) == g.baseline ? "b" : "") +
                               (static_cast<int>(i) == g.best ? "*" : "");
      char occ[32] = "-", waves[32] = "-";
      if (p.occupancy) {
        std::snprintf(occ, sizeof occ, "%.0f", p.occupancy->theoretical_pct);
        std::snprintf(waves, sizeof waves, "%.2f", p.occupancy->waves);
      }
      if (p.timed) {
        char range[64];
        std::snprintf(range, sizeof range, "%.2f - %.2f", p.p20_us, p.p80_us);
        std::snprintf(buf, sizeof buf, "  %-2s %-34s %7s %10.2f %21s %5d %6.1f %6s %6s  %s\n",
                      mark.c_str(), p.label.c_str(), "yes", p.median_us, range, p.repeats,
                      p.pct_of_p, occ, waves, p.verdict.c_str());
      } else {
        std::snprintf(
            buf, sizeof buf, "  %-2s %-34s %7s %10s %21s %5s %6s %6s %6s  %s\n", mark.c_str(),
            p.label.c_str(), p.correct ? "yes" : "NO", "-", "-", "-", "-", occ, waves,
            p.correct
                ? "(not timed)"
                : detail::concat("max err ", p.max_abs_err, " > tol ", p.tolerance, ": not timed")
                      .c_str());
      }
      out << buf;
    }
    if (g.best < 0) {
      out << "  no correct, timed configuration\n";
    } else if (g.best == g.baseline) {
      out << "  best: the baseline (" << g.points[g.baseline].label << ")\n";
    } else {
      std::snprintf(buf, sizeof buf, "  best: %s, %.3fx the baseline (%s)%s\n",
                    g.points[g.best].label.c_str(), g.speedup, g.points[g.baseline].label.c_str(),
                    g.within_noise ? "  WITHIN THE NOISE: p20-p80 ranges overlap, not a win" : "");
      out << buf;
    }
  }
  if (!e.notes.empty()) {
    out << "\nnotes:\n";
    for (const std::string& n : e.notes) out << "  - " << n << "\n";
  }
  out << "\n(b = baseline, * = best)\n";
  return out.str();
}

}  // namespace day18::tuning
