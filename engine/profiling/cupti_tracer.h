// The CUPTI activity tracer: the GPU half of `day18 trace` (the CPU half is range_recorder.h).
// Collects, through CUPTI's activity API with asynchronous buffers:
//
//   CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL  every kernel: start/end on the GPU, stream, grid, block
//   CUPTI_ACTIVITY_KIND_MEMCPY / MEMSET    copies (kind, bytes, pinned or pageable) and memsets
//   CUPTI_ACTIVITY_KIND_SYNCHRONIZATION    the CPU blocked in cudaEventSynchronize & co.
//   CUPTI_ACTIVITY_KIND_RUNTIME            every CUDA runtime call (cudaLaunchKernel,
//                                          cudaMemcpyAsync, cudaEventSynchronize, ...)
//   CUPTI_ACTIVITY_KIND_DRIVER             driver launches/copies (cuLaunchKernel* from cuBLAS ...)
//
// each with the correlation id that ties an API call to the GPU work it launched. Timestamps are
// trace::now_ns() (CLOCK_MONOTONIC): the tracer registers it as CUPTI's timestamp source
// (cuptiActivityRegisterTimestampCallback) before enabling anything, so GPU records and the
// engine's ranges share one clock; CUPTI converts GPU timestamps to it itself. (If the callback is
// not in force, the offset between CUPTI's clock and ours is measured at start and subtracted.)
//
// Buffers as CUPTI's documentation asks: CUPTI requests them through a callback (8 MiB each,
// 8-byte aligned, as many records as fit) and hands them back full, possibly from its own thread;
// stop() waits for the GPU and calls cuptiActivityFlushAll. Records CUPTI had no buffer for are
// counted (cuptiActivityGetNumDroppedRecords) and reported, never silently lost.
//
//   std::string why;
//   if (auto t = CuptiTracer::start(&why)) { ...run...; CuptiTracer::Result r = t->stop(); }
//   else std::printf("untraced: %s\n", why.c_str());   // another profiler holds CUPTI, no GPU ...
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/profiling/trace_events.h"

namespace day18::trace {

class CuptiTracer {
 public:
  struct Result {
    std::vector<Activity> activities;
    std::vector<StreamInfo> streams;  // the named streams (name_stream) with their CUPTI ids
    std::vector<DeviceInfo> devices;  // the devices that ran something
    int64_t dropped_records = 0;
    int64_t buffers = 0;          // buffers CUPTI returned
    int64_t untimed_records = 0;  // records CUPTI could not time (start == end == 0): left out
  };

  // Starts collecting. Returns nullptr, with the reason in *why, when CUPTI cannot be used here:
  // no usable GPU, another profiler (Nsight Systems / Compute) already subscribed to CUPTI, a
  // driver that does not match this CUPTI, an unsupported device. The caller runs untraced.
  // Any other CUPTI failure throws day18::Error. One tracer at a time (CUPTI is process-wide).
  static std::unique_ptr<CuptiTracer> start(std::string* why, size_t buffer_bytes = 8u << 20);
  ~CuptiTracer();  // stops (records discarded) if stop() was not called; never throws

  // Waits for the device (cudaDeviceSynchronize), flushes every buffer, disables the activity
  // kinds and returns the records. Throws day18::Error if a buffer callback failed.
  Result stop();

  CuptiTracer(const CuptiTracer&) = delete;
  CuptiTracer& operator=(const CuptiTracer&) = delete;

 private:
  CuptiTracer() = default;
  bool running_ = false;
};

}  // namespace day18::trace
