// Timing GPU work: the one helper the kernel tour, the benchmarks and the bandwidth probe share.
//
// Done right (each part is a way a timing can lie):
//   - CUDA events recorded on the work's own stream, just before and after it: GPU time, not the
//     launch overhead or whatever the CPU did meanwhile;
//   - the L2 flushed before every timed repeat, OUTSIDE the events (a memset of a buffer twice the
//     L2's size, on the same stream): a kernel never finds its inputs in a warm L2 and reports
//     more bandwidth than the memory has;
//   - warm-up runs first (module load, first-touch page faults, clocks ramping up), not timed;
//   - many repeats, reported as median and p20/p80 (stats.h), never one sample.
//
//   TimingOptions t;
//   t.stream = stream;
//   Stats ms = time_gpu([&](cudaStream_t s) { rms_norm(out, x, w, 1e-6, s); }, t);
//   std::printf("%.1f us (p20 %.1f, p80 %.1f)\n", ms.median * 1e3, ms.p20 * 1e3, ms.p80 * 1e3);
//
// Google Benchmark drives its own loop: GpuTimer::time_once() is one repeat of time_gpu(), for
// state.SetIterationTime() (engine/benchmarks/bench_support.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <functional>

#include "engine/core/memory.h"
#include "engine/profiling/stats.h"

namespace day18 {

// A device buffer larger than the L2, written on a stream to evict whatever the next kernel would
// otherwise find in L2. Sized 2 x cudaDevAttrL2CacheSize (a margin: the L2 does not evict in
// strict order, so writing exactly its size can leave old lines behind), at least 64 MiB (a
// device that reports no L2 size still gets a real flush).
class L2Flusher {
 public:
  // For the current device.
  L2Flusher();
  // The process-wide flusher of the device current at its first use (allocated once, freed at
  // exit), so that timing many ops does not cudaMalloc a scratch buffer for each.
  static const L2Flusher& shared();

  // Asynchronous: cudaMemsetAsync over the whole buffer on `stream`.
  void flush(cudaStream_t stream) const;
  size_t bytes() const { return scratch_.size(); }
  size_t l2_bytes() const { return l2_bytes_; }  // the device's L2, as the attribute says

 private:
  size_t l2_bytes_ = 0;
  Buffer scratch_;
};

// L2Flusher::shared().flush(stream).
void flush_l2(cudaStream_t stream);

struct TimingOptions {
  int warmup = 1;                 // untimed runs of fn before the first timed one
  int repeats = 20;               // timed runs, one sample each
  bool flush_l2 = true;           // flush the L2 before each timed run (outside the events)
  cudaStream_t stream = nullptr;  // the stream fn is given and the events are recorded on
                                  // (nullptr: the legacy default stream)
};

// Times one run of fn(stream) at a time between two CUDA events on `stream`.
class GpuTimer {
 public:
  explicit GpuTimer(cudaStream_t stream, bool flush_l2 = true)
      : stream_(stream), flush_(flush_l2) {}

  // Flushes the L2 (if asked), records the start event, runs fn(stream), records the stop event,
  // waits for it and returns the milliseconds between the two events.
  double time_once(const std::function<void(cudaStream_t)>& fn);

 private:
  cudaStream_t stream_;
  bool flush_;
  Event start_, stop_;
};

// options.warmup untimed runs of fn(options.stream), then options.repeats timed ones (GpuTimer).
// Returns the samples in milliseconds and their summary. fn must only enqueue work on the stream
// it is given (and not synchronize the device, which would time the host as well).
Stats time_gpu(const std::function<void(cudaStream_t)>& fn, const TimingOptions& options = {});

// The host-clock counterpart for CPU work (the CPU backend): `warmup` untimed calls of fn, then
// `repeats` timed ones with std::chrono::steady_clock; samples in milliseconds.
Stats time_cpu(const std::function<void()>& fn, int warmup = 1, int repeats = 20);

}  // namespace day18
