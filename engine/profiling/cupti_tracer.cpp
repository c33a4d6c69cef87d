#include "engine/profiling/cupti_tracer.h"

#include <cupti.h>
#include <cxxabi.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "engine/core/error.h"
#include "engine/profiling/cupti_check.h"
#include "engine/profiling/range_recorder.h"

// The record versions of the CUPTI this is built with (CUDA 13: Kernel10; CUDA 12: Kernel9).
#if CUPTI_API_VERSION >= 130000
using KernelRecord = CUpti_ActivityKernel10;
#else
using KernelRecord = CUpti_ActivityKernel9;
#endif
using MemcpyRecord = CUpti_ActivityMemcpy6;
using MemsetRecord = CUpti_ActivityMemset4;
using SyncRecord = CUpti_ActivitySynchronization2;

// ---- DAY18_CUPTI_CHECK
// ---------------------------------------------------------------------------
namespace day18::detail {

std::string cupti_result_name(CUptiResult r) {
  const char* s = nullptr;
  if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || s == nullptr)
    return "CUPTI result " + std::to_string(static_cast<int>(r));
  return s;
}

std::string_view cupti_error_hint(CUptiResult r) {
  switch (r) {
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
      return "another profiler already uses CUPTI in this process (Nsight Systems or Nsight "
             "Compute: CUDA_INJECTION64_PATH is set); run `day18 trace` without it, or use that "
             "profiler's timeline instead (scripts/profile_nsys.sh)";
    case CUPTI_ERROR_NOT_INITIALIZED:
    case CUPTI_ERROR_NOT_COMPATIBLE:
      return "CUPTI could not start: no usable GPU, or a driver older than this CUPTI "
             "(nvidia-smi shows the driver; CUPTI comes with the CUDA toolkit)";
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES:
      return "the driver restricts profiling to admin users (NVreg_RestrictProfilingToAdminUsers)";
    case CUPTI_ERROR_NOT_SUPPORTED:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_MIG_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_CMP_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_WSL_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_CONFIDENTIAL_COMPUTING_NOT_SUPPORTED:
      return "CUPTI activity tracing is not supported on this device or configuration";
    default:
      return "";
  }
}

void throw_cupti_error(CUptiResult r, const char* expr, const char* file, int line) {
  std::string msg = concat(file, ":", line, ": CUPTI error ", cupti_result_name(r), " in ", expr);
  if (auto hint = cupti_error_hint(r); !hint.empty()) msg += concat("\n  hint: ", hint);
  throw Error(msg);
}

}  // namespace day18::detail

namespace day18::trace {
namespace {

constexpr CUpti_ActivityKind kKinds[] = {
    CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,  CUPTI_ACTIVITY_KIND_MEMSET,
    CUPTI_ACTIVITY_KIND_SYNCHRONIZATION,   CUPTI_ACTIVITY_KIND_RUNTIME, CUPTI_ACTIVITY_KIND_DRIVER};
constexpr size_t kBufferAlign = 8;  // CUPTI's activity buffers must be 8-byte aligned

// The failures that mean "CUPTI cannot trace here": run untraced, say why.
bool environment_failure(CUptiResult r) {
  switch (r) {
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
    case CUPTI_ERROR_NOT_INITIALIZED:
    case CUPTI_ERROR_NOT_COMPATIBLE:
    case CUPTI_ERROR_NOT_SUPPORTED:
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES:
    case CUPTI_ERROR_MIG_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_CMP_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_WSL_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_CONFIDENTIAL_COMPUTING_NOT_SUPPORTED:
    case CUPTI_ERROR_LEGACY_PROFILER_NOT_SUPPORTED:
    case CUPTI_ERROR_OLD_PROFILER_API_INITIALIZED:
      return true;
    default:
      return false;
  }
}

// What the buffer callbacks fill, possibly from CUPTI's own thread.
struct Collector {
  std::mutex m;
  std::vector<Activity> activities;
  std::map<uint32_t, uint32_t> device_of_context;  // from kernel / copy records
  int64_t dropped = 0, buffers = 0, untimed = 0;
  int64_t clock_offset_ns = 0;  // subtracted from CUPTI timestamps (0 with the callback in force)
  std::string error;            // the first failure inside a callback (stop() throws it)
  std::atomic<size_t> buffer_bytes{8u << 20};
  std::unordered_map<uint64_t, std::string> api_names;  // (domain << 32 | cbid) -> name
  bool active = false;
};

Collector& collector() {
  static Collector c;
  return c;
}

void note_error(Collector& c, const std::string& what) {
  if (c.error.empty()) c.error = what;
}

uint64_t CUPTIAPI trace_clock() {
  return static_cast<uint64_t>(now_ns());
}

std::string demangle(const char* name) {
  if (name == nullptr) return "<unnamed kernel>";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || d == nullptr) return name;
  std::string out(d);
  std::free(d);
  return out;
}

// "cudaLaunchKernel_v7000" -> "cudaLaunchKernel" (the version suffix of CUPTI's callback names).
std::string api_name(Collector& c, CUpti_CallbackDomain domain, uint32_t cbid) {
  const uint64_t key = (uint64_t{static_cast<uint32_t>(domain)} << 32) | cbid;
  if (auto it = c.api_names.find(key); it != c.api_names.end()) return it->second;
  const char* raw = nullptr;
  std::string name;
  if (cuptiGetCallbackName(domain, cbid, &raw) == CUPTI_SUCCESS && raw != nullptr) {
    name = raw;
    const size_t v = name.rfind("_v");
    if (v != std::string::npos && v + 2 < name.size() &&
        name.find_first_not_of("0123456789", v + 2) == std::string::npos)
      name.resize(v);
  } else {
    name = std::string(domain == CUPTI_CB_DOMAIN_RUNTIME_API ? "runtime" : "driver") + " call " +
           std::to_string(cbid);
  }
  c.api_names[key] = name;
  return name;
}

// Driver calls are kept only when they launch or copy (cuBLAS and friends launch through the
// driver); the rest (cuCtxGetCurrent ...) would double every runtime call.
bool keep_driver_call(const std::string& n) {
  for (const char* p : {"cuLaunch", "cuGraphLaunch", "cuMemcpy", "cuMemset"})
    if (n.rfind(p, 0) == 0) return true;
  return false;
}

const char* copy_kind_name(uint8_t k) {
  switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
      return "HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
      return "DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
      return "DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH:
      return "HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP:
      return "PtoP";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOA:
      return "HtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOH:
      return "AtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOA:
      return "AtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOD:
      return "AtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOA:
      return "DtoA";
    default:
      return "unknown";
  }
}

const char* memory_kind_name(uint8_t k) {
  switch (k) {
    case CUPTI_ACTIVITY_MEMORY_KIND_PAGEABLE:
      return "Pageable";
    case CUPTI_ACTIVITY_MEMORY_KIND_PINNED:
      return "Pinned";
    case CUPTI_ACTIVITY_MEMORY_KIND_DEVICE:
      return "Device";
    case CUPTI_ACTIVITY_MEMORY_KIND_MANAGED:
      return "Managed";
    default:
      return "";
  }
}

const char* sync_name(CUpti_ActivitySynchronizationType t) {
  switch (t) {
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_EVENT_SYNCHRONIZE:
      return "cudaEventSynchronize";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_WAIT_EVENT:
      return "cudaStreamWaitEvent";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_SYNCHRONIZE:
      return "cudaStreamSynchronize";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_CONTEXT_SYNCHRONIZE:
      return "cudaDeviceSynchronize";
    default:
      return "synchronization";
  }
}

// One record into an Activity (false: a kind we do not keep, or a record without timestamps).
bool convert(Collector& c, const CUpti_Activity* rec, Activity& a) {
  auto times = [&](uint64_t s, uint64_t e) {
    if (s == 0 && e == 0) {
      ++c.untimed;
      return false;
    }
    a.start_ns = static_cast<int64_t>(s) - c.clock_offset_ns;
    a.end_ns = static_cast<int64_t>(e) - c.clock_offset_ns;
    return true;
  };
  switch (rec->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      const auto* k = reinterpret_cast<const KernelRecord*>(rec);
      a.kind = ActivityKind::kernel;
      a.name = demangle(k->name);
      a.correlation = k->correlationId;
      a.device = k->deviceId;
      a.stream = k->streamId;
      a.grid = {k->gridX, k->gridY, k->gridZ};
      a.block = {k->blockX, k->blockY, k->blockZ};
      c.device_of_context[k->contextId] = k->deviceId;
      return times(k->start, k->end);
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      const auto* m = reinterpret_cast<const MemcpyRecord*>(rec);
      a.kind = ActivityKind::memcpy;
      a.copy_kind = copy_kind_name(m->copyKind);
      a.name = "Memcpy " + a.copy_kind;
      a.correlation = m->correlationId;
      a.device = m->deviceId;
      a.stream = m->streamId;
      a.bytes = m->bytes;
      const uint8_t host_side = m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD   ? m->srcKind
                                : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH ? m->dstKind
                                                                                 : 0;
      a.memory = memory_kind_name(host_side);
      c.device_of_context[m->contextId] = m->deviceId;
      return times(m->start, m->end);
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      const auto* m = reinterpret_cast<const MemsetRecord*>(rec);
      a.kind = ActivityKind::memset;
      a.name = "Memset";
      a.correlation = m->correlationId;
      a.device = m->deviceId;
      a.stream = m->streamId;
      a.bytes = m->bytes;
      return times(m->start, m->end);
    }
    case CUPTI_ACTIVITY_KIND_SYNCHRONIZATION: {
      const auto* s = reinterpret_cast<const SyncRecord*>(rec);
      a.kind = ActivityKind::sync;
      a.name = sync_name(s->type);
      a.correlation = s->correlationId;
      a.stream = s->streamId;
      a.device = s->contextId;  // a context id until stop() maps it to its device
      return times(s->start, s->end);
    }
    case CUPTI_ACTIVITY_KIND_RUNTIME:
    case CUPTI_ACTIVITY_KIND_DRIVER: {
      const auto* api = reinterpret_cast<const CUpti_ActivityAPI*>(rec);
      const bool runtime = rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME;
      a.kind = runtime ? ActivityKind::runtime_api : ActivityKind::driver_api;
      a.name = api_name(c, runtime ? CUPTI_CB_DOMAIN_RUNTIME_API : CUPTI_CB_DOMAIN_DRIVER_API,
                        api->cbid);
      if (!runtime && !keep_driver_call(a.name)) return false;
      a.correlation = api->correlationId;
      a.thread = api->threadId;
      return times(api->start, api->end);
    }
    default:
      return false;
  }
}

void CUPTIAPI on_buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  Collector& c = collector();
  const size_t bytes = c.buffer_bytes.load();
  void* p = std::aligned_alloc(kBufferAlign, bytes);
  *buffer = static_cast<uint8_t*>(p);
  *size = p ? bytes : 0;
  *max_records = 0;  // as many as fit
  if (!p) {
    std::lock_guard<std::mutex> g(c.m);
    note_error(c, "out of host memory for a " + std::to_string(bytes) +
                      "-byte CUPTI activity buffer (CUPTI drops the records meanwhile)");
  }
}

void CUPTIAPI on_buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t* buffer, size_t size,
                                  size_t valid) {
  (void)size;
  Collector& c = collector();
  std::lock_guard<std::mutex> g(c.m);
  ++c.buffers;
  CUpti_Activity* rec = nullptr;
  for (;;) {
    const CUptiResult r = cuptiActivityGetNextRecord(buffer, valid, &rec);
    if (r == CUPTI_ERROR_MAX_LIMIT_REACHED) break;  // the end of the valid records
    if (r != CUPTI_SUCCESS) {
      note_error(c, "cuptiActivityGetNextRecord: " + ::day18::detail::cupti_result_name(r) +
                        " (the rest of this buffer is lost)");
      break;
    }
    Activity a;
    if (c.active && convert(c, rec, a)) c.activities.push_back(std::move(a));
  }
  size_t dropped = 0;
  const CUptiResult r = cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped);
  if (r == CUPTI_SUCCESS)
    c.dropped += static_cast<int64_t>(dropped);
  else
    note_error(c, "cuptiActivityGetNumDroppedRecords: " + ::day18::detail::cupti_result_name(r));
  std::free(buffer);
}

// Disables what start() enabled so far; used on every path out (never throws).
void disable_kinds(size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const CUptiResult r = cuptiActivityDisable(kKinds[i]);
    if (r != CUPTI_SUCCESS)
      std::fprintf(stderr, "day18: trace: cuptiActivityDisable(%d): %s\n",
                   static_cast<int>(kKinds[i]), ::day18::detail::cupti_result_name(r).c_str());
  }
}

std::atomic<bool> g_tracer_alive{false};

}  // namespace

std::unique_ptr<CuptiTracer> CuptiTracer::start(std::string* why, size_t buffer_bytes) {
  DAY18_REQUIRE(buffer_bytes >= (64u << 10), "CUPTI buffer size must be >= 64 KiB, got ",
                buffer_bytes);
  if (g_tracer_alive.exchange(true))
    throw Error("CuptiTracer::start: a tracer is already running (CUPTI is process-wide)");
  auto fail = [&](CUptiResult r, const char* call, size_t enabled) -> std::unique_ptr<CuptiTracer> {
    disable_kinds(enabled);
    g_tracer_alive = false;
    if (!environment_failure(r)) ::day18::detail::throw_cupti_error(r, call, __FILE__, __LINE__);
    if (why) {
      *why = std::string(call) + ": " + ::day18::detail::cupti_result_name(r);
      if (auto hint = ::day18::detail::cupti_error_hint(r); !hint.empty())
        *why += " (" + std::string(hint) + ")";
    }
    return nullptr;
  };
  Collector& c = collector();
  {
    std::lock_guard<std::mutex> g(c.m);
    c.activities.clear();
    c.device_of_context.clear();
    c.dropped = c.buffers = c.untimed = 0;
    c.error.clear();
    c.clock_offset_ns = 0;
    c.buffer_bytes = buffer_bytes;
    c.active = true;
  }
  // The clock first: records made after this carry trace::now_ns() timestamps.
  if (CUptiResult r = cuptiActivityRegisterTimestampCallback(trace_clock); r != CUPTI_SUCCESS)
    return fail(r, "cuptiActivityRegisterTimestampCallback", 0);
  if (CUptiResult r = cuptiActivityRegisterCallbacks(on_buffer_requested, on_buffer_completed);
      r != CUPTI_SUCCESS)
    return fail(r, "cuptiActivityRegisterCallbacks", 0);
  for (size_t i = 0; i < std::size(kKinds); ++i)
    if (CUptiResult r = cuptiActivityEnable(kKinds[i]); r != CUPTI_SUCCESS)
      return fail(r, "cuptiActivityEnable", i);
  // Check the clock: with the callback in force CUPTI's timestamp is ours (offset ~0). Otherwise
  // (an older CUPTI that ignores it) convert: subtract the measured offset from every record.
  uint64_t cupti_ts = 0;
  if (CUptiResult r = cuptiGetTimestamp(&cupti_ts); r != CUPTI_SUCCESS)
    return fail(r, "cuptiGetTimestamp", std::size(kKinds));
  const int64_t offset = static_cast<int64_t>(cupti_ts) - now_ns();
  {
    std::lock_guard<std::mutex> g(c.m);
    c.clock_offset_ns = (offset > 1'000'000 || offset < -1'000'000) ? offset : 0;
  }
  std::unique_ptr<CuptiTracer> t(new CuptiTracer());
  t->running_ = true;
  return t;
}

CuptiTracer::Result CuptiTracer::stop() {
  DAY18_REQUIRE(running_, "CuptiTracer::stop: not running (stop() was called already)");
  running_ = false;
  Collector& c = collector();
  std::string first_error;
  // The GPU work must be done for its records to be complete; then every buffer comes back.
  const cudaError_t sync = cudaDeviceSynchronize();
  CUptiResult flush = cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  Result out;
  // Stream ids of the named streams (the executor's h2d / compute / d2h / cache), while CUPTI is
  // still collecting.
  int device = 0;
  const cudaError_t dev = cudaGetDevice(&device);
  for (const auto& [stream, name] : named_streams()) {
    uint32_t id = 0;
    const CUptiResult r = cuptiGetStreamIdEx(nullptr, stream, 0, &id);
    if (r == CUPTI_SUCCESS)
      out.streams.push_back(StreamInfo{static_cast<uint32_t>(device), id, name});
    else if (first_error.empty())
      first_error = "cuptiGetStreamIdEx(" + name + "): " + ::day18::detail::cupti_result_name(r);
  }
  disable_kinds(std::size(kKinds));
  if (flush == CUPTI_SUCCESS) flush = cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  size_t dropped = 0;
  const CUptiResult dr = cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped);
  {
    std::lock_guard<std::mutex> g(c.m);
    c.active = false;
    out.activities = std::move(c.activities);
    c.activities.clear();
    for (Activity& a : out.activities)
      if (a.kind == ActivityKind::sync) {
        const auto it = c.device_of_context.find(a.device);
        a.device = it == c.device_of_context.end() ? static_cast<uint32_t>(device) : it->second;
      }
    out.dropped_records = c.dropped + (dr == CUPTI_SUCCESS ? static_cast<int64_t>(dropped) : 0);
    out.buffers = c.buffers;
    out.untimed_records = c.untimed;
    if (first_error.empty()) first_error = c.error;
  }
  g_tracer_alive = false;
  std::set<uint32_t> devices;
  for (const Activity& a : out.activities)
    if (a.on_gpu()) devices.insert(a.device);
  for (uint32_t d : devices) {
    cudaDeviceProp prop{};
    DAY18_CUDA_CHECK(cudaGetDeviceProperties(&prop, static_cast<int>(d)));
    out.devices.push_back(DeviceInfo{d, prop.name});
  }
  DAY18_CUDA_CHECK(sync);
  DAY18_CUDA_CHECK(dev);
  DAY18_CUPTI_CHECK(flush);
  DAY18_CUPTI_CHECK(dr);
  if (!first_error.empty()) throw Error("CUPTI tracer: " + first_error);
  return out;
}

CuptiTracer::~CuptiTracer() {
  if (!running_) return;
  // Not stopped (an exception unwound the run): give CUPTI's buffers back, keep nothing.
  if (const cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess)
    std::fprintf(stderr, "day18: trace: cudaDeviceSynchronize: %s\n", cudaGetErrorString(e));
  const CUptiResult r = cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  if (r != CUPTI_SUCCESS)
    std::fprintf(stderr, "day18: trace: cuptiActivityFlushAll: %s\n",
                 ::day18::detail::cupti_result_name(r).c_str());
  disable_kinds(std::size(kKinds));
  Collector& c = collector();
  std::lock_guard<std::mutex> g(c.m);
  c.active = false;
  c.activities.clear();
  g_tracer_alive = false;
}

}  // namespace day18::trace
