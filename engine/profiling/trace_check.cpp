#include "engine/profiling/trace_check.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace day18::trace {
namespace {
using nlohmann::json;

std::string at_us(int64_t ns, int64_t origin) {
  std::ostringstream os;
  os << static_cast<double>(ns - origin) / 1e3 << " us";
  return os.str();
}

struct Slice {
  double ts, end;
  std::string name;
};
}  // namespace

std::vector<std::string> check_nesting(const TraceData& d) {
  std::vector<std::string> out;
  std::map<uint32_t, std::vector<const EngineRange*>> by_thread;
  for (const EngineRange& r : d.ranges) {
    if (r.end_ns < r.start_ns)
      out.push_back("range " + r.name + " at " + at_us(r.start_ns, d.origin_ns) +
                    " ends before it starts");
    by_thread[r.thread].push_back(&r);
  }
  for (auto& [t, v] : by_thread) {
    std::stable_sort(v.begin(), v.end(), [](const EngineRange* a, const EngineRange* b) {
      return a->start_ns != b->start_ns ? a->start_ns < b->start_ns : a->depth < b->depth;
    });
    std::vector<const EngineRange*> open;
    for (const EngineRange* r : v) {
      // Ranges that ended by r's start are closed (a parent that starts with r stays open).
      while (!open.empty() && open.back()->end_ns <= r->start_ns &&
             !(open.back()->start_ns == r->start_ns && open.back()->depth < r->depth))
        open.pop_back();
      if (!open.empty() && r->end_ns > open.back()->end_ns)
        out.push_back("thread " + std::to_string(t) + ": range " + r->name + " [" +
                      at_us(r->start_ns, d.origin_ns) + ", " + at_us(r->end_ns, d.origin_ns) +
                      "] crosses the end of " + open.back()->name + " (" +
                      at_us(open.back()->end_ns, d.origin_ns) + ")");
      if (static_cast<size_t>(r->depth) != open.size())
        out.push_back("thread " + std::to_string(t) + ": range " + r->name + " at " +
                      at_us(r->start_ns, d.origin_ns) + " says depth " + std::to_string(r->depth) +
                      " but " + std::to_string(open.size()) + " ranges are open around it" +
                      (open.empty() ? "" : " (innermost " + open.back()->name + ")"));
      open.push_back(r);
    }
  }
  return out;
}

std::vector<std::string> check_chrome_trace(const json& trace) {
  std::vector<std::string> out;
  if (!trace.is_object() || !trace.contains("traceEvents") || !trace["traceEvents"].is_array())
    return {"not a Trace Event Format object: no \"traceEvents\" array"};
  static const std::set<std::string> meta_names = {"process_name", "thread_name",
                                                   "process_sort_index", "thread_sort_index"};
  std::map<std::pair<int64_t, int64_t>, std::vector<Slice>> slices;  // (pid, tid) -> X
  std::set<int64_t> named_pids;
  std::set<std::pair<int64_t, int64_t>> named_tids;
  std::map<int64_t, std::vector<const json*>> starts, finishes;
  size_t i = 0;
  for (const json& e : trace["traceEvents"]) {
    const std::string where = "event " + std::to_string(i++);
    if (!e.is_object()) {
      out.push_back(where + " is not an object");
      continue;
    }
    bool ok = true;
    for (const char* k : {"ph", "name"})
      if (!e.contains(k) || !e[k].is_string()) {
        out.push_back(where + ": \"" + k + "\" missing or not a string");
        ok = false;
      }
    for (const char* k : {"pid", "tid"})
      if (!e.contains(k) || !e[k].is_number_integer()) {
        out.push_back(where + ": \"" + k + "\" missing or not an integer");
        ok = false;
      }
    if (!ok) continue;
    const std::string ph = e["ph"], name = e["name"];
    const int64_t pid = e["pid"], tid = e["tid"];
    if (ph != "M" && (!e.contains("ts") || !e["ts"].is_number())) {
      out.push_back(where + " (" + name + "): \"ts\" missing or not a number");
      continue;
    }
    if (ph == "M") {
      if (!meta_names.count(name)) {
        out.push_back(where + ": unknown metadata event " + name);
        continue;
      }
      const bool sort = name.find("sort_index") != std::string::npos;
      const char* key = sort ? "sort_index" : "name";
      if (!e.contains("args") || !e["args"].contains(key) ||
          !(sort ? e["args"][key].is_number_integer() : e["args"][key].is_string()))
        out.push_back(where + ": " + name + " without args." + key);
      if (name == "process_name") named_pids.insert(pid);
      if (name == "thread_name") named_tids.insert({pid, tid});
    } else if (ph == "X") {
      if (!e.contains("dur") || !e["dur"].is_number() || e["dur"].get<double>() < 0) {
        out.push_back(where + " (" + name + "): \"X\" needs a dur >= 0");
        continue;
      }
      const double ts = e["ts"];
      slices[{pid, tid}].push_back({ts, ts + e["dur"].get<double>(), name});
    } else if (ph == "s" || ph == "f") {
      if (!e.contains("id") || !e["id"].is_number_integer()) {
        out.push_back(where + ": flow event without an integer id");
        continue;
      }
      (ph == "s" ? starts : finishes)[e["id"].get<int64_t>()].push_back(&e);
    } else {
      out.push_back(where + ": phase '" + ph + "' is not one this writer makes (M, X, s, f)");
    }
  }
  for (const auto& [track, v] : slices) {
    if (!named_pids.count(track.first))
      out.push_back("pid " + std::to_string(track.first) + " has slices but no process_name");
    if (!named_tids.count(track))
      out.push_back("pid " + std::to_string(track.first) + " tid " + std::to_string(track.second) +
                    " has slices but no thread_name");
  }
  // Slices of one track nest: each one ends within the one it starts in.
  constexpr double eps = 5e-4;  // us: half a nanosecond of rounding
  for (auto& [track, v] : slices) {
    std::stable_sort(v.begin(), v.end(), [](const Slice& a, const Slice& b) {
      return a.ts != b.ts ? a.ts < b.ts : a.end > b.end;
    });
    std::vector<const Slice*> open;
    for (const Slice& s : v) {
      while (!open.empty() && open.back()->end <= s.ts + eps) open.pop_back();
      if (!open.empty() && s.end > open.back()->end + eps) {
        out.push_back("pid " + std::to_string(track.first) + " tid " +
                      std::to_string(track.second) + ": slice " + s.name + " crosses the end of " +
                      open.back()->name);
        continue;
      }
      open.push_back(&s);
    }
  }
  auto bound = [&](const json& e) {
    const auto it = slices.find({e["pid"].get<int64_t>(), e["tid"].get<int64_t>()});
    if (it == slices.end()) return false;
    const double ts = e["ts"];
    return std::any_of(it->second.begin(), it->second.end(),
                       [&](const Slice& s) { return s.ts - eps <= ts && ts <= s.end + eps; });
  };
  std::set<int64_t> ids;
  for (const auto& [id, v] : starts) ids.insert(id);
  for (const auto& [id, v] : finishes) ids.insert(id);
  for (int64_t id : ids) {
    const auto s = starts.find(id), f = finishes.find(id);
    const std::string flow = "flow " + std::to_string(id);
    if (s == starts.end() || f == finishes.end() || s->second.size() != 1 ||
        f->second.size() != 1) {
      out.push_back(flow + ": " + std::to_string(s == starts.end() ? 0 : s->second.size()) +
                    " \"s\" and " + std::to_string(f == finishes.end() ? 0 : f->second.size()) +
                    " \"f\" events (needs one of each)");
      continue;
    }
    const json &a = *s->second[0], &b = *f->second[0];
    if (!b.contains("bp") || b["bp"] != "e")
      out.push_back(flow + ": its \"f\" has no bp \"e\" (binds to the next slice, not its own)");
    if (b["ts"].get<double>() + eps < a["ts"].get<double>())
      out.push_back(flow + ": ends before it starts");
    if (!bound(a)) out.push_back(flow + ": its \"s\" is inside no slice of its thread");
    if (!bound(b)) out.push_back(flow + ": its \"f\" is inside no slice of its thread");
  }
  return out;
}

std::vector<std::string> check_gpu_records(const TraceData& d) {
  std::vector<std::string> out;
  if (d.dropped_records > 0)
    out.push_back("CUPTI dropped " + std::to_string(d.dropped_records) +
                  " records (no buffer space): raise the buffer size");
  const std::vector<GpuLink> links = link_gpu_activities(d);
  for (size_t i = 0; i < d.activities.size(); ++i) {
    const Activity& a = d.activities[i];
    if (!a.on_gpu()) continue;
    const std::string what = std::string(kind_name(a.kind)) + " " + a.name + " (correlation " +
                             std::to_string(a.correlation) + ", at " +
                             at_us(a.start_ns, d.origin_ns) + ")";
    if (links[i].launch < 0) {
      out.push_back(what + " has no launch call in the trace");
      continue;
    }
    const Activity& call = d.activities[links[i].launch];
    if (a.start_ns < call.start_ns)
      out.push_back(what + " starts before its launch call " + call.name + " began (" +
                    at_us(call.start_ns, d.origin_ns) + "): the clocks disagree");
  }
  return out;
}

std::string join_problems(const std::vector<std::string>& problems, size_t max) {
  std::string s;
  for (size_t i = 0; i < problems.size() && i < max; ++i) s += "\n  " + problems[i];
  if (problems.size() > max) s += "\n  ... and " + std::to_string(problems.size() - max) + " more";
  return s;
}

}  // namespace day18::trace
