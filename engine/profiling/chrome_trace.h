// The Chrome Trace Event Format writer: a TraceData (trace_events.h) as the JSON that Perfetto
// (ui.perfetto.dev) and chrome://tracing open.
//
//   process "CPU: day18 (pid N)"   one thread per engine thread: the engine's ranges ("X" slices,
//                                  nested: Launch > ModelExecutor > Attention > Norm) and the CUDA
//                                  API calls made inside them; one thread "CUDA synchronization"
//   process "GPU 0: <name>"        one thread per stream, named h2d / compute / d2h / cache: the
//                                  kernels, copies and memsets
//   flow arrows                    "s" on the launch call -> "f" (bp "e") on its kernel, one id
//   each metadata ("M")                 process_name, process_sort_index, thread_name,
//   thread_sort_index
//
// ts and dur are microseconds (fractional: the nanoseconds are kept) since TraceData::origin_ns.
// Each idea is its own function, so that each can be tested alone; lab 05 task 2 is
// append_gpu_activity (the GPU op, its track, its args and its launch arrow).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "engine/profiling/trace_events.h"

namespace day18::trace {

// Where each record goes: the (pid, tid) of its track.
struct TraceLayout {
  static constexpr int64_t kCpuPid = 1;
  static constexpr int64_t kGpuPidBase = 100;      // GPU d is pid 100 + d
  static constexpr int64_t kSyncTid = 0x7fff0000;  // the CPU process's "CUDA synchronization"
  int64_t cpu_pid() const { return kCpuPid; }
  int64_t gpu_pid(uint32_t device) const { return kGpuPidBase + device; }
  int64_t stream_tid(uint32_t stream) const { return stream; }
};

// Where a stream's track goes among its GPU's: h2d, compute, d2h, cache first (the order of one
// step), then the others by id.
int64_t stream_sort_index(const std::string& name, uint32_t stream);

// The "M" events: names and sort order of every process and thread the trace uses.
nlohmann::json metadata_events(const TraceData& data, const TraceLayout& layout);
// One "X" slice per engine range, on its thread; args: step, depth.
nlohmann::json range_events(const TraceData& data, const TraceLayout& layout);
// One "X" slice per CUDA API call (on the caller's thread) and per synchronization record.
nlohmann::json cpu_activity_events(const TraceData& data, const TraceLayout& layout);
// Appends the events of one GPU op `op` (kernel, memcpy or memset) to `events`: an "X" slice on
// its GPU's process, on its stream's thread, ts/dur in us since data.origin_ns, named after it,
// args {correlation, stream (its name), kernels: grid, block; copies and memsets: bytes (and
// copy_kind, memory); range and step when linked}; and, when `link` has its launch call, a flow
// from the call to it: "s" (on the call's thread, at the call's start) and "f" with bp "e" (on the
// op's track, at its start), both with id `flow_id`.
void append_gpu_activity(nlohmann::json& events, const TraceData& data, const Activity& op,
                         const GpuLink& link, const TraceLayout& layout, int64_t flow_id);
// Every GPU op's events (append_gpu_activity with flow id = index + 1).
nlohmann::json gpu_activity_events(const TraceData& data, const TraceLayout& layout);

// The whole trace: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}, the
// events sorted (metadata first, then by time, a parent slice before its children).
nlohmann::json to_chrome_trace(const TraceData& data);
// to_chrome_trace, written through a temporary file and a rename (engine/core/file_io.h), so a
// reader never sees half a trace. `what` names the flag that chose the path in errors ("--out").
void write_chrome_trace(const TraceData& data, const std::string& path,
                        const std::string& what = "trace");

}  // namespace day18::trace
