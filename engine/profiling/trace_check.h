// Checks of a trace, as the tests (CPU and GPU) and `day18 trace` use them. Each returns the
// problems it found, one sentence each (empty: none), so a failure says what is wrong where.
//
//   check_nesting        the engine's ranges nest properly on every thread (a child inside its
//                        parent, depth = number of enclosing ranges)
//   check_chrome_trace   a written trace has what Perfetto's JSON importer needs: ph, ts, pid,
//                        tid, name on every event; dur >= 0 on "X"; the metadata events; each
//                        flow "s" paired with one "f" (bp "e", same id, not earlier), each end
//                        bound to a slice; the slices of a track nested, never crossing
//   check_gpu_records    a real CUPTI trace: every kernel, copy and memset has its launch call and
//                        starts after that call began; no record dropped
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "engine/profiling/trace_events.h"

namespace day18::trace {

std::vector<std::string> check_nesting(const TraceData& data);
std::vector<std::string> check_chrome_trace(const nlohmann::json& trace);
std::vector<std::string> check_gpu_records(const TraceData& data);

// The problems as one message (at most `max` of them, then "... and K more").
std::string join_problems(const std::vector<std::string>& problems, size_t max = 10);

}  // namespace day18::trace
