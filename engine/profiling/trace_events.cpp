#include "engine/profiling/trace_events.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <unordered_map>

#include "engine/core/error.h"
#include "engine/core/file_io.h"

namespace day18::trace {

const char* kind_name(ActivityKind k) {
  switch (k) {
    case ActivityKind::kernel:
      return "kernel";
    case ActivityKind::memcpy:
      return "memcpy";
    case ActivityKind::memset:
      return "memset";
    case ActivityKind::sync:
      return "sync";
    case ActivityKind::runtime_api:
      return "runtime_api";
    case ActivityKind::driver_api:
      return "driver_api";
  }
  return "?";
}

ActivityKind parse_kind(const std::string& s) {
  for (ActivityKind k : {ActivityKind::kernel, ActivityKind::memcpy, ActivityKind::memset,
                         ActivityKind::sync, ActivityKind::runtime_api, ActivityKind::driver_api})
    if (s == kind_name(k)) return k;
  throw InvalidArgument("trace records: activity kind '" + s +
                        "' is not one of kernel, memcpy, memset, sync, runtime_api, driver_api");
}

// ---- links --------------------------------------------------------------------------------------
namespace {

// The ranges of each thread, sorted by start (a parent before its children).
class RangeIndex {
 public:
  explicit RangeIndex(const TraceData& d) : d_(d) {
    for (int i = 0; i < static_cast<int>(d.ranges.size()); ++i)
      by_thread_[d.ranges[i].thread].push_back(i);
    for (auto& [t, v] : by_thread_)
      std::stable_sort(v.begin(), v.end(), [&](int a, int b) {
        const EngineRange &x = d.ranges[a], &y = d.ranges[b];
        return x.start_ns != y.start_ns ? x.start_ns < y.start_ns : x.depth < y.depth;
      });
  }

  // Ranges are properly nested, so the ranges around an interval form a chain, and the innermost
  // is the one with the latest start that still contains it: walk back from the last range that
  // starts at or before it.
  int innermost(uint32_t thread, int64_t s, int64_t e) const {
    const auto it = by_thread_.find(thread);
    if (it == by_thread_.end()) return -1;
    const std::vector<int>& v = it->second;
    auto pos = std::upper_bound(v.begin(), v.end(), s,
                                [&](int64_t t, int i) { return t < d_.ranges[i].start_ns; });
    while (pos != v.begin()) {
      --pos;
      const EngineRange& r = d_.ranges[*pos];
      if (r.start_ns <= s && e <= r.end_ns) return *pos;
    }
    return -1;
  }

  // The names of the ranges around range i and of i itself, outermost first.
  std::vector<std::string> path(int i) const {
    std::vector<std::string> out;
    while (i >= 0) {
      const EngineRange& r = d_.ranges[i];
      out.push_back(r.name);
      i = r.depth > 0 ? parent(i) : -1;
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

 private:
  int parent(int i) const {
    const EngineRange& r = d_.ranges[i];
    const std::vector<int>& v = by_thread_.at(r.thread);
    auto pos = std::find(v.begin(), v.end(), i);
    while (pos != v.begin()) {
      --pos;
      const EngineRange& p = d_.ranges[*pos];
      if (p.depth < r.depth && p.start_ns <= r.start_ns && r.end_ns <= p.end_ns) return *pos;
    }
    return -1;
  }

  const TraceData& d_;
  std::map<uint32_t, std::vector<int>> by_thread_;
};

// Correlation id -> the API call that launched it: a runtime call is preferred to the driver call
// it makes (both may carry the id), then the earlier one.
std::unordered_map<uint32_t, int> launches(const TraceData& d) {
  std::unordered_map<uint32_t, int> out;
  for (int i = 0; i < static_cast<int>(d.activities.size()); ++i) {
    const Activity& a = d.activities[i];
    if (!a.is_api() || a.correlation == 0) continue;
    auto [it, fresh] = out.emplace(a.correlation, i);
    if (fresh) continue;
    const Activity& b = d.activities[it->second];
    const bool better =
        (a.kind == ActivityKind::runtime_api && b.kind != ActivityKind::runtime_api) ||
        (a.kind == b.kind && a.start_ns < b.start_ns);
    if (better) it->second = i;
  }
  return out;
}

}  // namespace

int launch_of(const TraceData& data, uint32_t correlation) {
  const auto m = launches(data);
  const auto it = m.find(correlation);
  return it == m.end() ? -1 : it->second;
}

uint32_t cpu_thread_of(const TraceData& data, uint32_t api_tid) {
  for (const ThreadInfo& t : data.threads)
    if (t.tid == api_tid || (t.api_tid != 0 && t.api_tid == api_tid)) return t.tid;
  if (data.threads.size() == 1) return data.threads[0].tid;
  return api_tid;
}

int innermost_range(const TraceData& data, uint32_t thread, int64_t start_ns, int64_t end_ns) {
  return RangeIndex(data).innermost(thread, start_ns, end_ns);
}

std::vector<GpuLink> link_gpu_activities(const TraceData& data) {
  const auto by_corr = launches(data);
  const RangeIndex index(data);
  std::vector<GpuLink> out(data.activities.size());
  for (size_t i = 0; i < data.activities.size(); ++i) {
    const Activity& a = data.activities[i];
    if (!a.on_gpu()) continue;
    GpuLink& l = out[i];
    const auto it = a.correlation ? by_corr.find(a.correlation) : by_corr.end();
    if (it == by_corr.end()) continue;
    l.launch = it->second;
    const Activity& call = data.activities[l.launch];
    l.range = index.innermost(cpu_thread_of(data, call.thread), call.start_ns, call.end_ns);
    if (l.range >= 0) {
      l.range_path = index.path(l.range);
      l.step = data.ranges[l.range].step;
    }
  }
  return out;
}

std::string stream_name(const TraceData& data, uint32_t device, uint32_t stream) {
  for (const StreamInfo& s : data.streams)
    if (s.device == device && s.stream == stream && !s.name.empty()) return s.name;
  return "stream " + std::to_string(stream);
}

// ---- the record fixture format ------------------------------------------------------------------
nlohmann::json to_json(const TraceData& d) {
  using nlohmann::json;
  json j;
  j["format"] = "day18-trace-records";
  j["version"] = 1;
  j["origin_ns"] = d.origin_ns;
  j["dropped_records"] = d.dropped_records;
  j["meta"] = d.meta;
  json threads = json::array();
  for (const ThreadInfo& t : d.threads)
    threads.push_back({{"tid", t.tid}, {"api_tid", t.api_tid}, {"name", t.name}});
  j["threads"] = threads;
  json ranges = json::array();
  for (const EngineRange& r : d.ranges)
    ranges.push_back({{"name", r.name},
                      {"thread", r.thread},
                      {"start_ns", r.start_ns},
                      {"end_ns", r.end_ns},
                      {"depth", r.depth},
                      {"step", r.step}});
  j["ranges"] = ranges;
  json acts = json::array();
  for (const Activity& a : d.activities) {
    json x = {{"kind", kind_name(a.kind)},
              {"name", a.name},
              {"start_ns", a.start_ns},
              {"end_ns", a.end_ns},
              {"correlation", a.correlation}};
    if (a.is_api()) {
      x["thread"] = a.thread;
    } else {
      x["device"] = a.device;
      x["stream"] = a.stream;
    }
    if (a.kind == ActivityKind::kernel) {
      x["grid"] = a.grid;
      x["block"] = a.block;
    }
    if (a.kind == ActivityKind::memcpy || a.kind == ActivityKind::memset) x["bytes"] = a.bytes;
    if (a.kind == ActivityKind::memcpy) {
      x["copy_kind"] = a.copy_kind;
      if (!a.memory.empty()) x["memory"] = a.memory;
    }
    acts.push_back(x);
  }
  j["activities"] = acts;
  json streams = json::array();
  for (const StreamInfo& s : d.streams)
    streams.push_back({{"device", s.device}, {"stream", s.stream}, {"name", s.name}});
  j["streams"] = streams;
  json devices = json::array();
  for (const DeviceInfo& v : d.devices) devices.push_back({{"id", v.id}, {"name", v.name}});
  j["devices"] = devices;
  return j;
}

namespace {
template <typename T>
T field(const nlohmann::json& j, const std::string& where, const char* key) {
  if (!j.is_object() || !j.contains(key))
    throw InvalidArgument("trace records: " + where + "." + key + " is missing");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument("trace records: " + where + "." + key + " = " + j.at(key).dump() +
                          " has the wrong type (" + e.what() + ")");
  }
}
template <typename T>
T field_or(const nlohmann::json& j, const std::string& where, const char* key, T fallback) {
  return j.contains(key) ? field<T>(j, where, key) : fallback;
}
const nlohmann::json& array_of(const nlohmann::json& j, const char* key) {
  static const nlohmann::json empty = nlohmann::json::array();
  if (!j.contains(key)) return empty;
  if (!j.at(key).is_array())
    throw InvalidArgument(std::string("trace records: '") + key + "' must be an array");
  return j.at(key);
}
}  // namespace

TraceData trace_data_from_json(const nlohmann::json& j) {
  if (!j.is_object())
    throw InvalidArgument("trace records: expected a JSON object (to_json(TraceData))");
  TraceData d;
  d.origin_ns = field_or<int64_t>(j, "records", "origin_ns", 0);
  d.dropped_records = field_or<int64_t>(j, "records", "dropped_records", 0);
  if (j.contains("meta")) d.meta = j.at("meta");
  const nlohmann::json& threads = array_of(j, "threads");
  for (size_t i = 0; i < threads.size(); ++i) {
    const std::string w = "threads[" + std::to_string(i) + "]";
    d.threads.push_back(ThreadInfo{field<uint32_t>(threads[i], w, "tid"),
                                   field_or<uint32_t>(threads[i], w, "api_tid", 0),
                                   field_or<std::string>(threads[i], w, "name", "")});
  }
  const nlohmann::json& ranges = array_of(j, "ranges");
  for (size_t i = 0; i < ranges.size(); ++i) {
    const std::string w = "ranges[" + std::to_string(i) + "]";
    const nlohmann::json& r = ranges[i];
    EngineRange x;
    x.name = field<std::string>(r, w, "name");
    x.thread = field<uint32_t>(r, w, "thread");
    x.start_ns = field<int64_t>(r, w, "start_ns");
    x.end_ns = field<int64_t>(r, w, "end_ns");
    x.depth = field_or<int32_t>(r, w, "depth", 0);
    x.step = field_or<int64_t>(r, w, "step", -1);
    d.ranges.push_back(x);
  }
  const nlohmann::json& acts = array_of(j, "activities");
  for (size_t i = 0; i < acts.size(); ++i) {
    const std::string w = "activities[" + std::to_string(i) + "]";
    const nlohmann::json& a = acts[i];
    Activity x;
    x.kind = parse_kind(field<std::string>(a, w, "kind"));
    x.name = field<std::string>(a, w, "name");
    x.start_ns = field<int64_t>(a, w, "start_ns");
    x.end_ns = field<int64_t>(a, w, "end_ns");
    x.correlation = field_or<uint32_t>(a, w, "correlation", 0);
    x.device = field_or<uint32_t>(a, w, "device", 0);
    x.stream = field_or<uint32_t>(a, w, "stream", 0);
    x.thread = field_or<uint32_t>(a, w, "thread", 0);
    x.grid = field_or<std::array<int32_t, 3>>(a, w, "grid", {0, 0, 0});
    x.block = field_or<std::array<int32_t, 3>>(a, w, "block", {0, 0, 0});
    x.bytes = field_or<uint64_t>(a, w, "bytes", 0);
    x.copy_kind = field_or<std::string>(a, w, "copy_kind", "");
    x.memory = field_or<std::string>(a, w, "memory", "");
    if (x.end_ns < x.start_ns)
      throw InvalidArgument("trace records: " + w + " ends (" + std::to_string(x.end_ns) +
                            ") before it starts (" + std::to_string(x.start_ns) + ")");
    d.activities.push_back(x);
  }
  const nlohmann::json& streams = array_of(j, "streams");
  for (size_t i = 0; i < streams.size(); ++i) {
    const std::string w = "streams[" + std::to_string(i) + "]";
    d.streams.push_back(StreamInfo{field_or<uint32_t>(streams[i], w, "device", 0),
                                   field<uint32_t>(streams[i], w, "stream"),
                                   field<std::string>(streams[i], w, "name")});
  }
  const nlohmann::json& devices = array_of(j, "devices");
  for (size_t i = 0; i < devices.size(); ++i) {
    const std::string w = "devices[" + std::to_string(i) + "]";
    d.devices.push_back(DeviceInfo{field<uint32_t>(devices[i], w, "id"),
                                   field_or<std::string>(devices[i], w, "name", "")});
  }
  return d;
}

TraceData read_trace_data(const std::string& path) {
  const std::string why = unreadable_reason(path);
  if (!why.empty())
    throw InvalidArgument("trace records: cannot open '" + path + "' (" + why + ")");
  std::ifstream f(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::parse_error& e) {
    throw InvalidArgument("trace records: '" + path +
                          "' is not JSON: " + json_library_message(e.what()));
  }
  return trace_data_from_json(j);
}

}  // namespace day18::trace
