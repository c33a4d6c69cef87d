// What the lab 05 tests share. The lab replaces engine/runtime/engine.cpp,
// engine/profiling/chrome_trace.cpp and engine/profiling/trace_metrics.cpp, so the references here
// come from elsewhere: hand-computed numbers on the hand-made fixture (fixture_two_steps.json: two
// decode steps whose every time was chosen by hand; docs/labs/05-profiling.md draws it), small
// lists built in the tests, and the checkers of engine/profiling/trace_check.h (not replaced).
//
//   fixture()           the records of fixture_two_steps.json (trace_events.h's format)
//   index_of(d, k, c)   the activity of kind k with correlation id c
//   op(kind, stream, start_us, end_us, corr) / call(corr, start_us, end_us)   hand-made records
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "engine/profiling/trace_events.h"
#include "tests/labs/support/lab.h"

namespace day18::lab05 {

using trace::Activity;
using trace::ActivityKind;
using trace::TraceData;

inline constexpr int64_t us = 1000;  // the records count nanoseconds

inline TraceData fixture() {
  return trace::read_trace_data(std::string(DAY18_SOURCE_DIR) +
                                "/tests/labs/05/fixture_two_steps.json");
}

inline int index_of(const TraceData& d, ActivityKind kind, uint32_t correlation) {
  for (size_t i = 0; i < d.activities.size(); ++i)
    if (d.activities[i].kind == kind && d.activities[i].correlation == correlation)
      return static_cast<int>(i);
  ADD_FAILURE() << "the fixture has no " << trace::kind_name(kind) << " with correlation "
                << correlation;
  return 0;
}

// A kernel (or copy) on device 0, times in us.
inline Activity op(ActivityKind kind, uint32_t stream, double start_us, double end_us,
                   uint32_t correlation = 0) {
  Activity a;
  a.kind = kind;
  a.name = kind == ActivityKind::kernel ? "k" + std::to_string(correlation) : "Memcpy HtoD";
  if (kind == ActivityKind::memcpy) a.copy_kind = "HtoD";
  a.stream = stream;
  a.start_ns = static_cast<int64_t>(start_us * us);
  a.end_ns = static_cast<int64_t>(end_us * us);
  a.correlation = correlation;
  return a;
}

// The runtime call that launched `correlation`, on thread 1.
inline Activity call(uint32_t correlation, double start_us, double end_us) {
  Activity a;
  a.kind = ActivityKind::runtime_api;
  a.name = "cudaLaunchKernel";
  a.thread = 1;
  a.correlation = correlation;
  a.start_ns = static_cast<int64_t>(start_us * us);
  a.end_ns = static_cast<int64_t>(end_us * us);
  return a;
}

}  // namespace day18::lab05
