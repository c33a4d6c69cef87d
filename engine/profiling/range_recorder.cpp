#include "engine/profiling/range_recorder.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "engine/core/error.h"

namespace day18::trace {
namespace {

// One thread's log. Only its own thread appends; stop_recording() reads it under the same mutex.
struct ThreadLog {
  std::mutex m;
  uint32_t tid = 0, pthread_id = 0;
  std::string name;
  uint32_t session = 0;  // the recording its ranges belong to
  int32_t depth = 0;     // ranges of this session open now
  int64_t step = -1;
  std::vector<RecordedRange> ranges;  // end_ns == -1 while open
};

struct Registry {
  std::mutex m;
  std::vector<std::shared_ptr<ThreadLog>>
      logs;  // every thread that ever recorded (kept after exit)
  uint32_t session = 0;
  int64_t start_ns = 0;
  std::map<cudaStream_t, std::string> streams;
};

Registry& registry() {
  static Registry r;
  return r;
}

ThreadLog& my_log() {
  thread_local std::shared_ptr<ThreadLog> log = [] {
    auto l = std::make_shared<ThreadLog>();
    l->tid = static_cast<uint32_t>(::syscall(SYS_gettid));
    l->pthread_id = static_cast<uint32_t>(pthread_self());
    l->name = "thread " + std::to_string(l->tid);
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.m);
    l->session = r.session;
    r.logs.push_back(l);
    return l;
  }();
  return *log;
}

}  // namespace

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace detail {

int64_t begin_range(const char* name) {
  const int64_t t = now_ns();
  ThreadLog& log = my_log();
  // start_recording() reset this log (under its mutex) to the new session: no registry lock here.
  std::lock_guard<std::mutex> g(log.m);
  RecordedRange r;
  r.name = name;
  r.start_ns = t;
  r.end_ns = -1;
  r.depth = log.depth++;
  r.thread = log.tid;
  log.ranges.push_back(r);
  return (int64_t{log.session} << 32) | static_cast<int64_t>(log.ranges.size() - 1);
}

void end_range(int64_t token) {
  const int64_t t = now_ns();
  ThreadLog& log = my_log();
  std::lock_guard<std::mutex> g(log.m);
  const auto session = static_cast<uint32_t>(token >> 32);
  const auto index = static_cast<size_t>(token & 0xffffffff);
  // Opened in an earlier recording, or the log was cleared since: nothing to close.
  if (session != log.session || index >= log.ranges.size()) return;
  RecordedRange& r = log.ranges[index];
  r.end_ns = t;
  r.step = log.step;
  --log.depth;
}

}  // namespace detail

void mark_step(int64_t step) {
  if (!recording()) return;
  ThreadLog& log = my_log();
  std::lock_guard<std::mutex> g(log.m);
  log.step = step;
}

void set_thread_name(std::string name) {
  ThreadLog& log = my_log();
  std::lock_guard<std::mutex> g(log.m);
  log.name = std::move(name);
}

void start_recording() {
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> g(r.m);
    if (detail::g_recording.load())
      throw Error("trace::start_recording: a recording is already on (stop_recording() first)");
    ++r.session;  // ranges of an earlier session that close later are ignored (end_range)
    for (auto& l : r.logs) {
      std::lock_guard<std::mutex> lg(l->m);
      l->session = r.session;
      l->ranges.clear();
      l->depth = 0;
      l->step = -1;
    }
    r.start_ns = now_ns();
  }
  detail::g_recording.store(true);
}

Recording stop_recording() {
  detail::g_recording.store(false);
  Recording out;
  out.end_ns = now_ns();
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.m);
  out.start_ns = r.start_ns;
  for (auto& l : r.logs) {
    std::lock_guard<std::mutex> lg(l->m);
    if (l->session != r.session) continue;
    bool any = false;
    for (const RecordedRange& x : l->ranges) {
      if (x.end_ns < 0) {
        ++out.unclosed;
        continue;
      }
      out.ranges.push_back(x);
      any = true;
    }
    if (any) out.threads.push_back(RecordedThread{l->tid, l->pthread_id, l->name});
  }
  // Per thread, in start order (a parent before its children).
  std::stable_sort(out.ranges.begin(), out.ranges.end(),
                   [](const RecordedRange& a, const RecordedRange& b) {
                     return a.thread != b.thread ? a.thread < b.thread : a.start_ns < b.start_ns;
                   });
  return out;
}

// ---- stream names
void name_stream(cudaStream_t stream, std::string name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.m);
  r.streams[stream] = std::move(name);
}

void forget_stream(cudaStream_t stream) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.m);
  r.streams.erase(stream);
}

std::vector<std::pair<cudaStream_t, std::string>> named_streams() {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.m);
  return {r.streams.begin(), r.streams.end()};
}

StreamNames::StreamNames(std::vector<std::pair<cudaStream_t, std::string>> streams)
    : streams_(std::move(streams)) {
  for (const auto& [s, name] : streams_) name_stream(s, name);
}

StreamNames::~StreamNames() {
  for (const auto& [s, name] : streams_) forget_stream(s);
}

StreamNames& StreamNames::operator=(StreamNames&& o) noexcept {
  if (this != &o) {
    for (const auto& [s, name] : streams_) forget_stream(s);
    streams_ = std::exchange(o.streams_, {});
  }
  return *this;
}

}  // namespace day18::trace
