// The engine's own range recorder: the CPU half of `day18 trace`. Every DAY18_NVTX_RANGE
// (engine/core/nvtx.h) is an NVTX range for Nsight Systems AND, while a recording is on, a
// begin/end pair in this recorder, so the same ranges (Scheduler, PrepareInputs, Launch >
// ModelExecutor > Attention / MLP / Norm, Sampling, Wait, ProcessOutputs) reach our trace on both
// backends: the CPU backend has no CUPTI, and CUPTI's NVTX activity would need a profiler library.
//
//   trace::start_recording();            // clears, then records on every thread
//   { DAY18_NVTX_RANGE("Scheduler"); ...; trace::mark_step(out.step); }
//   trace::Recording r = trace::stop_recording();
//
// Cost: with no recording on, a range costs one relaxed atomic load (plus NVTX's own check). While
// recording, each thread appends to its own log under its own (uncontended) mutex: threads never
// wait for each other, and stop_recording() can read the logs safely.
//
// One clock: now_ns() is std::chrono::steady_clock in nanoseconds, i.e. CLOCK_MONOTONIC on Linux
// (libstdc++). The CUPTI tracer hands CUPTI this same function as its timestamp source
// (cuptiActivityRegisterTimestampCallback, cupti_tracer.cpp), so kernel and API records land on the
// ranges' timeline without conversion.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace day18::trace {

// The trace clock (ns, CLOCK_MONOTONIC): ranges, and CUPTI's records through its callback.
int64_t now_ns();

namespace detail {
inline std::atomic<bool> g_recording{false};
// Begin returns a token (session << 32 | index into this thread's log), or -1.
int64_t begin_range(const char* name);
void end_range(int64_t token);
}  // namespace detail

// True while a recording is on (ranges are being recorded).
inline bool recording() {
  return detail::g_recording.load(std::memory_order_relaxed);
}

// One range on this thread, recorded only if a recording is on when it opens. `name` must outlive
// the recording (a string literal: the engine's range names are).
class ScopedRange {
 public:
  explicit ScopedRange(const char* name) : token_(recording() ? detail::begin_range(name) : -1) {}
  ~ScopedRange() {
    if (token_ >= 0) detail::end_range(token_);
  }
  ScopedRange(const ScopedRange&) = delete;
  ScopedRange& operator=(const ScopedRange&) = delete;

 private:
  int64_t token_;
};

// This thread's current engine step. A range belongs to the step current when it ENDS: the
// Scheduler range ends after the scheduler numbered the step it made (schedule() marks it inside
// the range), and Wait / ProcessOutputs of step N follow a mark_step(N) (LLMEngine::finish_step).
void mark_step(int64_t step);
// This thread's name in the trace ("engine", "main"); default "thread <tid>".
void set_thread_name(std::string name);

struct RecordedRange {
  const char* name = nullptr;
  int64_t start_ns = 0, end_ns = 0;  // now_ns()
  int32_t depth = 0;                 // ranges open around it on its thread (0 = top level)
  int64_t step = -1;                 // mark_step() in force when it ended (-1: none)
  uint32_t thread = 0;               // RecordedThread::tid
};
struct RecordedThread {
  uint32_t tid = 0;         // the OS thread id (gettid)
  uint32_t pthread_id = 0;  // pthread_self() truncated to 32 bits (what CUPTI's API records carry)
  std::string name;
};
struct Recording {
  std::vector<RecordedRange> ranges;    // closed ranges, per thread in the order they ended
  std::vector<RecordedThread> threads;  // the threads that recorded at least one range
  int64_t start_ns = 0, end_ns = 0;     // the recording's own span
  int64_t unclosed = 0;                 // ranges still open at stop_recording() (left out)
};

// Clears every thread's log and starts recording. Throws day18::Error if one is already on.
void start_recording();
// Stops and returns what was recorded (ranges closed before the stop).
Recording stop_recording();

// ---- Stream names: the executor's streams (h2d, compute, d2h, cache), so that the trace shows one
// track per stream under its name. The CUPTI tracer maps handles to its stream ids.
void name_stream(cudaStream_t stream, std::string name);
void forget_stream(cudaStream_t stream);
std::vector<std::pair<cudaStream_t, std::string>> named_streams();

// Names streams for as long as it lives (a member declared AFTER the streams it names, so that it
// forgets them before they are destroyed).
class StreamNames {
 public:
  StreamNames() = default;
  explicit StreamNames(std::vector<std::pair<cudaStream_t, std::string>> streams);
  ~StreamNames();
  StreamNames(StreamNames&& o) noexcept : streams_(std::exchange(o.streams_, {})) {}
  StreamNames& operator=(StreamNames&& o) noexcept;
  StreamNames(const StreamNames&) = delete;
  StreamNames& operator=(const StreamNames&) = delete;

 private:
  std::vector<std::pair<cudaStream_t, std::string>> streams_;
};

}  // namespace day18::trace
