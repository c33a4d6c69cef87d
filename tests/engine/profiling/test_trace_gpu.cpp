// The CUPTI tracer on a real GPU (skips without one; REQUIRE_GPU=1 makes that a failure): one
// traced run of the engine (llama-1b shapes, fp16, 32 sequences decoding, async scheduling), and
// the invariants a correct trace of it must hold: every kernel, copy and memset has its launch
// call and starts after it began (one clock), no record dropped, every flow paired, the engine's
// ranges nested, the executor's streams named, and step N+1's H2D overlapping step N's compute,
// read off the written trace (the fact EngineGpu.HostToDeviceOfStepNPlusOneOverlapsComputeOfStepN
// reads off the executor's events). Also DAY18_CUPTI_CHECK's message, which needs no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "engine/core/error.h"
#include "engine/profiling/chrome_trace.h"
#include "engine/profiling/cupti_check.h"
#include "engine/profiling/trace_check.h"
#include "engine/profiling/trace_metrics.h"
#include "engine/profiling/trace_session.h"
#include "engine/runtime/engine.h"
#include "tests/support/test_support.h"

namespace day18::trace {
namespace {
using nlohmann::json;

TEST(CuptiCheck, ThrowsWithFileLineTheCallAndCuptisNameForTheResult) {
  try {
    DAY18_CUPTI_CHECK(CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED);
    FAIL() << "did not throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("test_trace_gpu.cpp:"), std::string::npos) << m;
    EXPECT_NE(m.find("CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED"), std::string::npos) << m;
    EXPECT_NE(m.find("another profiler"), std::string::npos) << m;  // the hint
  }
  EXPECT_NO_THROW(DAY18_CUPTI_CHECK(CUPTI_SUCCESS));
}

struct GpuTrace {
  TraceData data;
  json chrome;
  std::string status;
  int64_t steps = 0;
};

// One traced run, shared by the tests below.
const GpuTrace& traced_run() {
  static const GpuTrace t = [] {
    EngineConfig c;
    c.preset = "llama-1b";
    c.dtype = DType::f16;
    c.device = Device::cuda;
    c.max_num_seqs = 32;
    c.max_num_batched_tokens = 2048;
    c.max_model_len = 512;
    c.num_gpu_blocks = 32 * 32 + 64;
    c.num_cpu_blocks = 0;
    LLMEngine e(c);
    for (int i = 0; i < 32; ++i) {
      SamplingParams p;
      p.max_tokens = 40;
      p.ignore_eos = true;
      e.add_request(std::vector<int32_t>(48, 7 + i), p);
    }
    set_thread_name("engine (test)");
    // Past the prefill and the first decode steps (one-off costs).
    while (e.has_work() && e.records().size() < 5) e.step();
    GpuTrace out;
    TraceSession session({true});
    out.status = session.status();
    const size_t first = e.records().size();
    while (e.has_work() && e.records().size() < first + 16) e.step();
    out.data = session.stop();
    out.steps = static_cast<int64_t>(e.records().size() - first);
    out.chrome = to_chrome_trace(out.data);
    return out;
  }();
  return t;
}

#define REQUIRE_TRACED()            \
  DAY18_REQUIRE_GPU();              \
  const GpuTrace& t = traced_run(); \
  ASSERT_FALSE(t.data.activities.empty()) << "CUPTI recorded nothing: " << t.status

TEST(TraceGpu, CuptiRecordsKernelsCopiesAndApiCallsOfTheTracedSteps) {
  REQUIRE_TRACED();
  std::map<ActivityKind, int> n;
  for (const Activity& a : t.data.activities) ++n[a.kind];
  std::cout << "[ trace    ] " << t.status << "\n[ trace    ] " << t.steps
            << " steps: " << n[ActivityKind::kernel] << " kernels, " << n[ActivityKind::memcpy]
            << " copies, " << n[ActivityKind::memset] << " memsets, " << n[ActivityKind::sync]
            << " syncs, " << n[ActivityKind::runtime_api] << " runtime and "
            << n[ActivityKind::driver_api] << " driver calls, " << t.data.ranges.size()
            << " ranges; device " << (t.data.devices.empty() ? "?" : t.data.devices[0].name)
            << "\n";
  EXPECT_EQ(t.steps, 16);
  EXPECT_GT(n[ActivityKind::kernel], 16 * 16);  // 16 layers, several kernels each, per step
  EXPECT_GE(n[ActivityKind::memcpy], 2 * 15);   // an H2D and a D2H per step
  EXPECT_GT(n[ActivityKind::runtime_api], n[ActivityKind::kernel] / 2);
  EXPECT_GE(n[ActivityKind::sync], 15);  // the CPU's wait on each step's d2h_done
  ASSERT_EQ(t.data.devices.size(), 1u);
  EXPECT_EQ(t.data.meta["untimed_records"], 0);
}

TEST(TraceGpu, EveryGpuOpHasItsLaunchCallStartsAfterItBeganAndNothingIsDropped) {
  REQUIRE_TRACED();
  const auto problems = check_gpu_records(t.data);
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems:" << join_problems(problems);
  EXPECT_EQ(t.data.dropped_records, 0);
}

TEST(TraceGpu, TheWrittenTraceIsValidAndEveryFlowIsPaired) {
  REQUIRE_TRACED();
  const auto problems = check_chrome_trace(t.chrome);
  EXPECT_TRUE(problems.empty()) << join_problems(problems);
  int gpu_ops = 0, s = 0, f = 0;
  for (const Activity& a : t.data.activities) gpu_ops += a.on_gpu();
  for (const json& e : t.chrome["traceEvents"]) {
    s += e["ph"] == "s";
    f += e["ph"] == "f";
  }
  EXPECT_EQ(s, gpu_ops);
  EXPECT_EQ(f, gpu_ops);
}

TEST(TraceGpu, RangesNestAndTheLaunchCallsFallInsideThemOnOneClock) {
  REQUIRE_TRACED();
  EXPECT_TRUE(check_nesting(t.data).empty()) << join_problems(check_nesting(t.data));
  // CUPTI's timestamps are the ranges' clock: a launch call of the model's kernels lies inside
  // a ModelExecutor range. With two clocks (or a wrong offset) nearly none would.
  const std::vector<GpuLink> links = link_gpu_activities(t.data);
  int kernels = 0, in_model = 0, in_a_range = 0;
  for (size_t i = 0; i < t.data.activities.size(); ++i) {
    if (t.data.activities[i].kind != ActivityKind::kernel) continue;
    ++kernels;
    in_a_range += links[i].range >= 0;
    const auto& p = links[i].range_path;
    in_model += std::find(p.begin(), p.end(), "ModelExecutor") != p.end();
  }
  EXPECT_GE(in_a_range, kernels * 99 / 100) << in_a_range << " of " << kernels;
  EXPECT_GE(in_model, kernels * 9 / 10) << in_model << " of " << kernels;
}

TEST(TraceGpu, TheExecutorsStreamsAreNamedTracks) {
  REQUIRE_TRACED();
  std::set<std::string> named;
  for (const StreamInfo& s : t.data.streams) named.insert(s.name);
  for (const char* n : {"h2d", "compute", "d2h", "cache"}) EXPECT_TRUE(named.count(n)) << n;
  for (const Activity& a : t.data.activities) {
    if (a.kind == ActivityKind::kernel)
      EXPECT_EQ(stream_name(t.data, a.device, a.stream), "compute") << a.name;
    if (a.kind == ActivityKind::memcpy && a.copy_kind == "HtoD" && a.bytes > 0)
      EXPECT_EQ(stream_name(t.data, a.device, a.stream), "h2d");
    if (a.kind == ActivityKind::memcpy && a.copy_kind == "DtoH")
      EXPECT_EQ(stream_name(t.data, a.device, a.stream), "d2h");
  }
}

TEST(TraceGpu, StepNPlusOnesH2dOverlapsStepNsComputeReadOffTheTrace) {
  REQUIRE_TRACED();
  // From the written JSON, as Perfetto would show it: per step, the compute span (its kernels)
  // and its H2D copies (args.step is the step of the range that launched them).
  std::map<int64_t, std::pair<double, double>> compute;
  std::map<int64_t, std::vector<std::pair<double, double>>> h2d;
  for (const json& e : t.chrome["traceEvents"]) {
    if (e["ph"] != "X" || !e.contains("args") || !e["args"].contains("step")) continue;
    const int64_t step = e["args"]["step"];
    const double a = e["ts"], b = a + e["dur"].get<double>();
    if (e["cat"] == "kernel") {
      auto [it, fresh] = compute.emplace(step, std::pair{a, b});
      it->second = {std::min(it->second.first, a), std::max(it->second.second, b)};
    } else if (e["cat"] == "memcpy" && e["args"]["copy_kind"] == "HtoD") {
      h2d[step].push_back({a, b});
    }
  }
  int pairs = 0, overlapped = 0;
  for (const auto& [step, span] : compute) {
    if (!compute.count(step + 1) || !h2d.count(step + 1)) continue;
    ++pairs;
    for (const auto& [a, b] : h2d[step + 1])
      if (a < span.second && b > span.first) {
        ++overlapped;
        break;
      }
  }
  std::cout << "[ overlap  ] " << overlapped << " of " << pairs
            << " step pairs: step N+1's H2D ran during step N's compute\n";
  ASSERT_GE(pairs, 10);
  EXPECT_GE(overlapped, pairs * 9 / 10);
  // The metrics read the same fact off the records.
  const Overlap o = h2d_compute_overlap(t.data, link_gpu_activities(t.data));
  EXPECT_GE(o.step_pairs_overlapped, o.step_pairs * 9 / 10);
}

TEST(TraceGpu, TheMetricsOfARealTrace) {
  REQUIRE_TRACED();
  const TraceMetrics m = compute_metrics(t.data);
  std::cout << format_metrics(m);
  ASSERT_TRUE(m.has_gpu);
  ASSERT_EQ(m.busy.size(), 1u);
  // The GPU did the work, and was not always busy: eager batch-32 decode of llama-1b is partly
  // launch-bound (the H200 trace of the same workload: 41-42% busy, most kernels shorter than
  // their launch call). A measurement, not a target: only its bounds are checked.
  EXPECT_GT(m.busy[0].busy_fraction, 0.05);
  EXPECT_LT(m.busy[0].busy_fraction, 1.0);
  EXPECT_LE(m.busy[0].busy_fraction, 1.0);
  EXPECT_GT(m.launch.launched, 0);
}

TEST(TraceGpu, OnlyOneCuptiTracerAtATime) {
  DAY18_REQUIRE_GPU();
  std::string why;
  auto a = CuptiTracer::start(&why);
  ASSERT_NE(a, nullptr) << why;
  EXPECT_THROW(CuptiTracer::start(&why), Error);
  const CuptiTracer::Result r = a->stop();
  EXPECT_EQ(r.dropped_records, 0);
  EXPECT_THROW(a->stop(), InvalidArgument);
}

}  // namespace
}  // namespace day18::trace
