#include "engine/profiling/chrome_trace.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "engine/core/error.h"
#include "engine/core/file_io.h"

namespace day18::trace {
namespace {
using nlohmann::json;

double us_since(int64_t ns, int64_t origin_ns) {
  return static_cast<double>(ns - origin_ns) / 1e3;
}

json meta_event(const char* what, int64_t pid, int64_t tid, const char* key, json value) {
  json e = {{"ph", "M"}, {"name", what}, {"pid", pid}, {"tid", tid}, {"ts", 0}};
  e["args"] = {{key, std::move(value)}};
  return e;
}

std::string device_name(const TraceData& d, uint32_t id) {
  for (const DeviceInfo& v : d.devices)
    if (v.id == id && !v.name.empty()) return v.name;
  return "CUDA device";
}
}  // namespace

int64_t stream_sort_index(const std::string& name, uint32_t stream) {
  static const char* const order[] = {"h2d", "compute", "d2h", "cache"};
  for (int i = 0; i < 4; ++i)
    if (name == order[i]) return i;
  return 10 + static_cast<int64_t>(stream);
}

json metadata_events(const TraceData& d, const TraceLayout& L) {
  json ev = json::array();
  ev.push_back(meta_event(
      "process_name", L.cpu_pid(), 0, "name",
      "CPU: day18" +
          (d.meta.contains("pid") ? " (pid " + d.meta["pid"].dump() + ")" : std::string())));
  ev.push_back(meta_event("process_sort_index", L.cpu_pid(), 0, "sort_index", 0));
  // Engine threads in the order they were recorded, then any thread that only made API calls.
  std::vector<uint32_t> tids;
  for (const ThreadInfo& t : d.threads) tids.push_back(t.tid);
  bool sync = false;
  for (const Activity& a : d.activities) {
    if (a.kind == ActivityKind::sync) sync = true;
    if (!a.is_api()) continue;
    const uint32_t t = cpu_thread_of(d, a.thread);
    if (std::find(tids.begin(), tids.end(), t) == tids.end()) tids.push_back(t);
  }
  for (size_t i = 0; i < tids.size(); ++i) {
    std::string name = "thread " + std::to_string(tids[i]);
    for (const ThreadInfo& t : d.threads)
      if (t.tid == tids[i] && !t.name.empty()) name = t.name;
    ev.push_back(meta_event("thread_name", L.cpu_pid(), tids[i], "name", name));
    ev.push_back(meta_event("thread_sort_index", L.cpu_pid(), tids[i], "sort_index",
                            static_cast<int64_t>(i)));
  }
  if (sync) {
    ev.push_back(meta_event("thread_name", L.cpu_pid(), TraceLayout::kSyncTid, "name",
                            "CUDA synchronization"));
    ev.push_back(meta_event("thread_sort_index", L.cpu_pid(), TraceLayout::kSyncTid, "sort_index",
                            static_cast<int64_t>(tids.size())));
  }
  // One process per GPU, one thread per stream that ran something (or that has a name).
  std::map<uint32_t, std::set<uint32_t>> streams;
  for (const Activity& a : d.activities)
    if (a.on_gpu()) streams[a.device].insert(a.stream);
  for (const StreamInfo& s : d.streams)
    if (streams.count(s.device)) streams[s.device].insert(s.stream);
  for (const auto& [dev, ids] : streams) {
    ev.push_back(meta_event("process_name", L.gpu_pid(dev), 0, "name",
                            "GPU " + std::to_string(dev) + ": " + device_name(d, dev)));
    ev.push_back(meta_event("process_sort_index", L.gpu_pid(dev), 0, "sort_index",
                            static_cast<int64_t>(1 + dev)));
    for (uint32_t s : ids) {
      const std::string name = stream_name(d, dev, s);
      ev.push_back(meta_event("thread_name", L.gpu_pid(dev), L.stream_tid(s), "name", name));
      ev.push_back(meta_event("thread_sort_index", L.gpu_pid(dev), L.stream_tid(s), "sort_index",
                              stream_sort_index(name, s)));
    }
  }
  return ev;
}

json range_events(const TraceData& d, const TraceLayout& L) {
  json ev = json::array();
  for (const EngineRange& r : d.ranges) {
    json e = {{"ph", "X"},
              {"cat", "engine"},
              {"name", r.name},
              {"pid", L.cpu_pid()},
              {"tid", r.thread},
              {"ts", us_since(r.start_ns, d.origin_ns)},
              {"dur", us_since(r.end_ns, r.start_ns)}};
    e["args"] = {{"step", r.step}, {"depth", r.depth}};
    ev.push_back(std::move(e));
  }
  return ev;
}

json cpu_activity_events(const TraceData& d, const TraceLayout& L) {
  json ev = json::array();
  for (const Activity& a : d.activities) {
    if (!a.is_api() && a.kind != ActivityKind::sync) continue;
    const bool api = a.is_api();
    json e = {
        {"ph", "X"},
        {"cat", a.kind == ActivityKind::runtime_api  ? "cuda_runtime"
                : a.kind == ActivityKind::driver_api ? "cuda_driver"
                                                     : "cuda_sync"},
        {"name", a.name},
        {"pid", L.cpu_pid()},
        {"tid", api ? static_cast<int64_t>(cpu_thread_of(d, a.thread)) : TraceLayout::kSyncTid},
        {"ts", us_since(a.start_ns, d.origin_ns)},
        {"dur", us_since(a.end_ns, a.start_ns)}};
    e["args"] = {{"correlation", a.correlation}};
    if (!api) e["args"]["stream"] = stream_name(d, a.device, a.stream);
    ev.push_back(std::move(e));
  }
  return ev;
}

void append_gpu_activity(json& events, const TraceData& data, const Activity& op,
                         const GpuLink& link, const TraceLayout& layout, int64_t flow_id) {
  // LAB 05 BEGIN trace_events: "X" on its track, args, arrow from its launch (about 30 lines)
  const int64_t pid = layout.gpu_pid(op.device), tid = layout.stream_tid(op.stream);
  json x = {{"ph", "X"},
            {"cat", kind_name(op.kind)},
            {"name", op.name},
            {"pid", pid},
            {"tid", tid},
            {"ts", us_since(op.start_ns, data.origin_ns)},
            {"dur", us_since(op.end_ns, op.start_ns)}};
  json args = {{"correlation", op.correlation},
               {"stream", stream_name(data, op.device, op.stream)}};
  if (op.kind == ActivityKind::kernel) {
    args["grid"] = op.grid;
    args["block"] = op.block;
  } else {
    args["bytes"] = op.bytes;
    if (op.kind == ActivityKind::memcpy) args["copy_kind"] = op.copy_kind;
    if (!op.memory.empty()) args["memory"] = op.memory;
  }
  if (link.range >= 0) {
    args["range"] = data.ranges[link.range].name;
    std::string path;
    for (const std::string& n : link.range_path) path += (path.empty() ? "" : " > ") + n;
    args["range_path"] = path;
    args["step"] = link.step;
  }
  x["args"] = std::move(args);
  events.push_back(std::move(x));
  if (link.launch < 0) return;
  const Activity& call = data.activities[link.launch];
  events.push_back({{"ph", "s"},
                    {"cat", "launch"},
                    {"name", "launch"},
                    {"id", flow_id},
                    {"pid", layout.cpu_pid()},
                    {"tid", cpu_thread_of(data, call.thread)},
                    {"ts", us_since(call.start_ns, data.origin_ns)}});
  events.push_back({{"ph", "f"},
                    {"bp", "e"},
                    {"cat", "launch"},
                    {"name", "launch"},
                    {"id", flow_id},
                    {"pid", pid},
                    {"tid", tid},
                    {"ts", us_since(op.start_ns, data.origin_ns)}});
  // LAB 05 END trace_events
}

// Programmatic dependent launch (kernels/pdl.cuh) lets a kernel start while the one before it on
// the same stream is still draining, so two slices of one stream's track can overlap without one
// holding the other. The Trace Event Format wants the slices of a track to nest (Perfetto's
// importer reports the others as misplaced), so such a kernel is drawn from the previous one's
// end, its launch arrow lands there, and its args keep how much earlier it really began
// ("pdl_early_us"). The metrics are computed from the records, never from this drawing.
std::vector<int64_t> drawn_starts(const TraceData& d) {
  std::vector<size_t> order;
  for (size_t i = 0; i < d.activities.size(); ++i)
    if (d.activities[i].on_gpu()) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Activity &x = d.activities[a], &y = d.activities[b];
    return std::tie(x.device, x.stream, x.start_ns) < std::tie(y.device, y.stream, y.start_ns);
  });
  std::vector<int64_t> start(d.activities.size());
  std::map<std::pair<uint32_t, uint32_t>, int64_t> track_end;
  for (size_t i : order) {
    const Activity& a = d.activities[i];
    start[i] = a.start_ns;
    const auto key = std::make_pair(a.device, a.stream);
    const auto it = track_end.find(key);
    if (it != track_end.end() && a.start_ns < it->second && a.end_ns > it->second)
      start[i] = it->second;  // overlaps the previous slice's end: drawn from there
    int64_t& end = track_end[key];
    end = std::max(it != track_end.end() ? end : a.end_ns, a.end_ns);
  }
  return start;
}

json gpu_activity_events(const TraceData& d, const TraceLayout& L) {
  json ev = json::array();
  const std::vector<GpuLink> links = link_gpu_activities(d);
  const std::vector<int64_t> drawn = drawn_starts(d);
  for (size_t i = 0; i < d.activities.size(); ++i) {
    const Activity& a = d.activities[i];
    if (!a.on_gpu()) continue;
    if (drawn[i] == a.start_ns) {
      append_gpu_activity(ev, d, a, links[i], L, static_cast<int64_t>(i) + 1);
      continue;
    }
    Activity shown = a;
    shown.start_ns = drawn[i];
    const size_t at = ev.size();
    append_gpu_activity(ev, d, shown, links[i], L, static_cast<int64_t>(i) + 1);
    if (at < ev.size()) ev[at]["args"]["pdl_early_us"] = (drawn[i] - a.start_ns) * 1e-3;
  }
  return ev;
}

json to_chrome_trace(const TraceData& d) {
  const TraceLayout L;
  json events = metadata_events(d, L);
  const size_t n_meta = events.size();
  for (json part : {range_events(d, L), cpu_activity_events(d, L), gpu_activity_events(d, L)})
    for (json& e : part) events.push_back(std::move(e));
  // By time; at one ts a longer slice (the parent) first, and a flow after the slice it binds to.
  auto rank = [](const json& e) { return e["ph"] == "X" ? 0 : 1; };
  std::stable_sort(events.begin() + static_cast<std::ptrdiff_t>(n_meta), events.end(),
                   [&](const json& a, const json& b) {
                     const double ta = a["ts"].get<double>(), tb = b["ts"].get<double>();
                     if (ta != tb) return ta < tb;
                     if (rank(a) != rank(b)) return rank(a) < rank(b);
                     return a.value("dur", 0.0) > b.value("dur", 0.0);
                   });
  json other = d.meta;
  other["clock"] = "CLOCK_MONOTONIC (std::chrono::steady_clock), ts in us since origin_ns";
  other["origin_ns"] = d.origin_ns;
  other["dropped_records"] = d.dropped_records;
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}, {"otherData", other}};
}

void write_chrome_trace(const TraceData& d, const std::string& path, const std::string& what) {
  const json j = to_chrome_trace(d);
  write_file_atomically(path, what, [&](std::ostream& out) { out << j.dump() << "\n"; });
}

}  // namespace day18::trace
