// One recording of the engine's timeline: the range recorder (always) and the CUPTI tracer (CUDA
// backend, when CUPTI can be used), started together and stopped into one TraceData.
//
//   TraceSession session({.cuda = true});
//   std::printf("%s\n", session.status().c_str());   // what is recorded, or why the GPU is not
//   ...run steps...
//   TraceData data = session.stop();
//
// On the CPU backend, or when CUPTI is unavailable (no GPU, another profiler holds it), the
// session records the CPU ranges only and says so in status() and data.meta["gpu_trace"].
#pragma once

#include <memory>
#include <string>

#include "engine/profiling/cupti_tracer.h"
#include "engine/profiling/trace_events.h"

namespace day18::trace {

class TraceSession {
 public:
  struct Options {
    bool cuda = false;  // try CUPTI (the CUDA backend)
    size_t cupti_buffer_bytes = 8u << 20;
  };
  explicit TraceSession(const Options& options);
  ~TraceSession();  // stops a session that was not stopped (its data discarded)

  bool gpu_traced() const { return tracer_ != nullptr; }
  // "CUPTI: kernels, copies, memsets, syncs, runtime and driver calls" / "CPU backend: CPU ranges
  // only" / "CUPTI unavailable (<why>): CPU ranges only".
  const std::string& status() const { return status_; }
  // Stops both (CUDA: after the device is done) and returns what they recorded; origin_ns is the
  // session's start. The caller adds provenance to meta.
  TraceData stop();

  TraceSession(const TraceSession&) = delete;
  TraceSession& operator=(const TraceSession&) = delete;

 private:
  std::unique_ptr<CuptiTracer> tracer_;
  std::string status_;
  bool cuda_ = false, running_ = false;
};

}  // namespace day18::trace
