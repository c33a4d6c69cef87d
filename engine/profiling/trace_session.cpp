#include "engine/profiling/trace_session.h"

#include <unistd.h>

#include <cstdio>

#include "engine/core/error.h"
#include "engine/core/memory.h"
#include "engine/profiling/range_recorder.h"

namespace day18::trace {

TraceSession::TraceSession(const Options& o) : cuda_(o.cuda) {
  if (o.cuda) {
    std::string why;
    if (!cuda_available())
      why = "no usable CUDA device: " + cuda_unavailable_reason();
    else
      tracer_ = CuptiTracer::start(&why, o.cupti_buffer_bytes);
    status_ = tracer_
                  ? "CUPTI: kernels, copies, memsets, syncs, runtime and driver calls, on the "
                    "engine's clock"
                  : "CUPTI unavailable (" + why + "): CPU ranges only, the run goes on untraced";
  } else {
    status_ =
        "CPU backend: CPU ranges only (no CUPTI: the model runs on the host, there are no "
        "GPU lanes)";
  }
  start_recording();
  running_ = true;
}

TraceSession::~TraceSession() {
  if (!running_) return;
  (void)stop_recording();  // discarded; ~CuptiTracer gives CUPTI's buffers back
}

TraceData TraceSession::stop() {
  DAY18_REQUIRE(running_, "TraceSession::stop: already stopped");
  // The GPU first (the ranges are already closed): CuptiTracer::stop synchronizes the device.
  CuptiTracer::Result gpu;
  if (tracer_) gpu = tracer_->stop();
  Recording rec = stop_recording();
  running_ = false;

  TraceData d;
  d.origin_ns = rec.start_ns;
  for (const RecordedThread& t : rec.threads)
    d.threads.push_back(ThreadInfo{t.tid, t.pthread_id, t.name});
  for (const RecordedRange& r : rec.ranges)
    d.ranges.push_back(
        EngineRange{r.name ? r.name : "?", r.thread, r.start_ns, r.end_ns, r.depth, r.step});
  d.activities = std::move(gpu.activities);
  d.streams = std::move(gpu.streams);
  d.devices = std::move(gpu.devices);
  d.dropped_records = gpu.dropped_records;
  d.meta["pid"] = static_cast<int64_t>(::getpid());
  d.meta["backend"] = cuda_ ? "cuda" : "cpu";
  d.meta["gpu_trace"] = status_;
  d.meta["unclosed_ranges"] = rec.unclosed;
  d.meta["cupti_buffers"] = gpu.buffers;
  d.meta["untimed_records"] = gpu.untimed_records;
  return d;
}

}  // namespace day18::trace
