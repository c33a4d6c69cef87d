// `day18 trace`: the engine's execution timeline. Runs the `day18 run` workload (same flags) with
// the range recorder on and, on the CUDA backend, the CUPTI activity tracer; writes
//
//   --out FILE.json         Chrome Trace Event Format: open it in ui.perfetto.dev (or
//                           chrome://tracing); scripts/plot_timeline.py draws the seed's diagram
//   --metrics FILE          the metrics (default FILE.metrics.json): GPU busy, idle by cause,
//                           share per range vs the seed's ideal profile, overlap, top kernels
//   --records FILE          (optional) the raw records, the fixture format of trace_events.h
//
// and prints the metrics table. On the CPU backend it records the CPU ranges only, and says so.
//
//   day18 trace --device cuda --preset llama-1b --requests 32 --output-len 64 --out t.json
//   day18 trace --device cpu --out /tmp/t.json --steps 6
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/cli/commands.h"
#include "engine/cli/flags.h"
#include "engine/cli/workload.h"
#include "engine/core/build_info.h"
#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/profiling/chrome_trace.h"
#include "engine/profiling/range_recorder.h"
#include "engine/profiling/trace_check.h"
#include "engine/profiling/trace_metrics.h"
#include "engine/profiling/trace_session.h"
#include "engine/runtime/engine.h"

namespace day18::cli {
namespace {

struct TraceOptions : WorkloadOptions {
  std::string out, metrics, records;
  int64_t steps = 8, skip_steps = 2;
  double kernel_gap_us = static_cast<double>(trace::kKernelGapThresholdNs) / 1e3;
  int64_t cupti_buffer_mib = 8;
  bool quiet = false;
};

// "t.json" -> "t.metrics.json"; "t" -> "t.metrics.json".
std::string default_metrics_path(const std::string& out) {
  std::filesystem::path p(out);
  if (p.extension() == ".json") p.replace_extension();
  return p.string() + ".metrics.json";
}

int trace_run(const TraceOptions& o) {
  const Workload w = plan_workload(o, "trace");
  const std::string metrics_path = o.metrics.empty() ? default_metrics_path(o.out) : o.metrics;
  // Every output writable and each its own file, before the run, not after it.
  require_writable_path(o.out, "--out");
  require_writable_path(metrics_path, "--metrics");
  if (!o.records.empty()) require_writable_path(o.records, "--records");
  require_distinct_paths({{"--prompt-file", o.prompt_file},
                          {"--out", o.out},
                          {"--metrics", metrics_path},
                          {"--records", o.records}});
  const bool cuda = w.config.device == Device::cuda;

  trace::set_thread_name("engine (main thread)");
  LLMEngine engine(w.config);
  const AddedRequests added = add_requests(engine, o, w);
  if (!o.quiet)
    std::printf("trace: %s (%s, %s), %zu requests; %lld warm-up steps, then %lld traced\n",
                engine.model().config().describe().c_str(),
                std::string(dtype_name(w.config.dtype)).c_str(),
                std::string(device_name(w.config.device)).c_str(), added.requests,
                static_cast<long long>(o.skip_steps), static_cast<long long>(o.steps));
  // Warm-up, untraced: the first steps pay one-off costs (cuBLAS handles, module loading, graph
  // captures) that are not what a step costs.
  const auto processed = [&] { return static_cast<int64_t>(engine.records().size()); };
  while (engine.has_work() && processed() < o.skip_steps) engine.step();
  DAY18_REQUIRE(engine.has_work(), "--skip-steps ", o.skip_steps, ": the workload finished after ",
                processed(),
                " steps, nothing is left to trace; lower --skip-steps or raise "
                "--requests / --output-len");

  trace::TraceSession session({cuda, static_cast<size_t>(o.cupti_buffer_mib) << 20});
  std::printf("trace: %s\n", session.status().c_str());
  const int64_t first = processed();
  while (engine.has_work() && processed() < first + o.steps) engine.step();
  trace::TraceData data = session.stop();
  const int64_t traced = processed() - first;

  data.meta["commit"] = git_commit();
  data.meta["model"] = engine.model().config().name;
  data.meta["dtype"] = std::string(dtype_name(w.config.dtype));
  data.meta["device"] = std::string(device_name(w.config.device));
  data.meta["async_scheduling"] = w.config.async_scheduling;
  data.meta["cuda_graphs"] = w.config.cuda_graphs;
  data.meta["requests"] = added.requests;
  data.meta["skip_steps"] = o.skip_steps;
  data.meta["traced_steps"] = traced;
  if (const auto problems = trace::check_nesting(data); !problems.empty())
    std::fprintf(stderr, "trace: WARNING: the engine's ranges do not nest:%s\n",
                 trace::join_problems(problems).c_str());

  trace::write_chrome_trace(data, o.out, "--out");
  if (!o.records.empty())
    write_file_atomically(o.records, "--records",
                          [&](std::ostream& out) { out << trace::to_json(data).dump(1) << "\n"; });
  trace::MetricsOptions mo;
  mo.kernel_gap_threshold_ns = static_cast<int64_t>(o.kernel_gap_us * 1e3);
  const trace::TraceMetrics m = trace::compute_metrics(data, mo);
  nlohmann::json mj = trace::to_json(m);
  mj["meta"] = data.meta;
  mj["trace"] = o.out;
  write_file_atomically(metrics_path, "--metrics",
                        [&](std::ostream& out) { out << mj.dump(2) << "\n"; });

  std::printf("%s", trace::format_metrics(m).c_str());
  std::printf("\nwrote %s (%zu ranges, %zu CUDA records%s) and %s\n", o.out.c_str(),
              data.ranges.size(), data.activities.size(),
              cuda ? "" : ": CPU backend, CPU ranges only", metrics_path.c_str());
  if (!o.records.empty()) std::printf("wrote %s (the raw records)\n", o.records.c_str());
  std::printf(
      "open it: ui.perfetto.dev -> Open trace file (or chrome://tracing); the seed's "
      "diagram: scripts/plot_timeline.py %s --out timeline.png\n",
      o.out.c_str());
  return 0;
}

}  // namespace

Runner add_trace_command(CLI::App& app) {
  auto o = std::make_shared<TraceOptions>();
  CLI::App* sub = app.add_subcommand(
      "trace",
      "Record the engine's timeline (CPU ranges; CUPTI kernels, copies and API calls on CUDA) "
      "as a Chrome trace for ui.perfetto.dev, with its metrics");
  add_workload_options(sub, *o);
  sub->add_option("--out", o->out, "The trace (Chrome Trace Event Format JSON)")->required();
  sub->add_option("--metrics", o->metrics, "The metrics JSON (default: OUT with .metrics.json)");
  sub->add_option("--records", o->records,
                  "Also write the raw records (trace_events.h's fixture format)");
  sub->add_option("--steps", o->steps, "Steps to trace (after the warm-up)")
      ->check(integer_in(1, 100000))
      ->capture_default_str();
  sub->add_option("--skip-steps", o->skip_steps, "Warm-up steps run untraced first")
      ->check(integer_at_least(0))
      ->capture_default_str();
  sub->add_option("--kernel-gap-us", o->kernel_gap_us,
                  "Idle gaps up to this long between ops queued in time count as 'kernel gap'")
      ->check(non_negative_number())
      ->capture_default_str();
  sub->add_option("--cupti-buffer-mib", o->cupti_buffer_mib, "Size of each CUPTI activity buffer")
      ->check(integer_in(1, 1024))
      ->capture_default_str();
  sub->add_flag("--quiet", o->quiet, "Fewer lines");
  return [o] { return trace_run(*o); };
}

}  // namespace day18::cli
