// The plain record model of a `day18 trace`: what the range recorder (CPU) and the CUPTI tracer
// (GPU) collected, on one clock, before anything is written. Everything downstream is a pure
// function of a TraceData, so it is tested on hand-made lists and on recorded fixtures without a
// GPU:
//
//   TraceData data = session.stop();                 // trace_session.h (or read_trace_data(path))
//   nlohmann::json chrome = to_chrome_trace(data);   // chrome_trace.h: what Perfetto opens
//   TraceMetrics m = compute_metrics(data);          // trace_metrics.h: busy %, idle by cause, ...
//
// Records:
//   EngineRange  an engine range on a CPU thread (Scheduler, Launch > ModelExecutor > ...), with
//                its nesting depth and the engine step it belongs to
//   Activity     a CUPTI record: a kernel, memcpy or memset on a GPU stream; a runtime / driver API
//                call on a CPU thread; a synchronization (the CPU blocked in cudaEventSynchronize
//                ...). `correlation` ties an API call to the GPU work it launched.
// Times are nanoseconds of trace::now_ns() (CLOCK_MONOTONIC); a written trace counts from
// origin_ns.
//
// This file also holds the links between them (which API call launched a kernel; which engine
// range that call ran in) and the fixture format (JSON of the records).
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace day18::trace {

struct EngineRange {
  std::string name;
  uint32_t thread = 0;  // ThreadInfo::tid
  int64_t start_ns = 0, end_ns = 0;
  int32_t depth = 0;  // enclosing ranges on its thread (0 = top level: a stage of the step)
  int64_t step = -1;  // the engine step it worked on (-1: none)
  int64_t duration() const { return end_ns - start_ns; }
};

struct ThreadInfo {
  uint32_t tid = 0;      // OS thread id
  uint32_t api_tid = 0;  // the id CUPTI's API records carry for it (pthread_self, 32 bits)
  std::string name;
};

enum class ActivityKind { kernel, memcpy, memset, sync, runtime_api, driver_api };
const char* kind_name(ActivityKind k);  // "kernel", "memcpy", ..., "runtime_api", "driver_api"
ActivityKind parse_kind(const std::string& s);  // throws InvalidArgument naming the value

struct Activity {
  ActivityKind kind = ActivityKind::kernel;
  // kernel: its (demangled) name; memcpy: "Memcpy HtoD" etc.; memset: "Memset"; API call: the
  // function ("cudaLaunchKernel"); sync: the kind of wait ("cudaEventSynchronize").
  std::string name;
  int64_t start_ns = 0, end_ns = 0;
  uint32_t correlation = 0;         // API call <-> the GPU work it launched (0: none)
  uint32_t device = 0, stream = 0;  // GPU work and sync records
  uint32_t thread = 0;              // API calls: CUPTI's thread id of the caller
  std::array<int32_t, 3> grid{0, 0, 0}, block{0, 0, 0};  // kernels
  uint64_t bytes = 0;                                    // memcpy / memset
  std::string copy_kind;  // memcpy: "HtoD", "DtoH", "DtoD", "HtoH", "PtoP"
  std::string memory;     // memcpy: host side "Pinned" / "Pageable" ("" if none)
  int64_t duration() const { return end_ns - start_ns; }
  bool on_gpu() const {  // runs on a GPU stream
    return kind == ActivityKind::kernel || kind == ActivityKind::memcpy ||
           kind == ActivityKind::memset;
  }
  bool is_api() const {
    return kind == ActivityKind::runtime_api || kind == ActivityKind::driver_api;
  }
};

struct StreamInfo {
  uint32_t device = 0, stream = 0;  // CUPTI's ids
  std::string name;                 // "h2d", "compute", "d2h", "cache"
};

struct DeviceInfo {
  uint32_t id = 0;
  std::string name;  // "NVIDIA H200"
};

struct TraceData {
  std::vector<ThreadInfo> threads;
  std::vector<EngineRange> ranges;
  std::vector<Activity> activities;
  std::vector<StreamInfo> streams;
  std::vector<DeviceInfo> devices;
  int64_t origin_ns = 0;  // ts 0 of the written trace
  int64_t dropped_records =
      0;  // CUPTI records lost for want of buffer space (reported, never 0 by silence)
  nlohmann::json meta =
      nlohmann::json::object();  // provenance: command, commit, backend, why untraced
};

// ---- links --------------------------------------------------------------------------------------
// For each GPU activity: the API call that launched it (same correlation id; a runtime call rather
// than the driver call inside it), the innermost engine range that call ran in, the names of all
// ranges around it (outermost first: "Launch", "ModelExecutor", "Attention") and its step.
struct GpuLink {
  int launch = -1;  // index into activities, or -1
  int range = -1;   // index into ranges, or -1
  std::vector<std::string> range_path;
  int64_t step = -1;
};
// One entry per activity (empty links for non-GPU records).
std::vector<GpuLink> link_gpu_activities(const TraceData& data);
// The index of the API call of each correlation id (-1 if none), as link_gpu_activities uses it.
int launch_of(const TraceData& data, uint32_t correlation);
// The ThreadInfo::tid that CUPTI thread id `api_tid` is (tid or api_tid match; with one recorded
// thread, that one); `api_tid` itself if unknown.
uint32_t cpu_thread_of(const TraceData& data, uint32_t api_tid);
// The innermost range of `thread` that contains [start_ns, end_ns], or -1.
int innermost_range(const TraceData& data, uint32_t thread, int64_t start_ns, int64_t end_ns);

// The name of a stream ("compute"; "stream 7" if it has none).
std::string stream_name(const TraceData& data, uint32_t device, uint32_t stream);

// ---- the record fixture format ------------------------------------------------------------------
nlohmann::json to_json(const TraceData& data);
TraceData trace_data_from_json(const nlohmann::json& j);  // throws InvalidArgument naming the field
TraceData read_trace_data(const std::string& path);

}  // namespace day18::trace
