// `day18 run`: the engine on a synthetic workload, with the per-stage breakdown of the step.
//
//   day18 run --preset llama-1b --dtype fp16 --device cuda --requests 64 --prompt-len 32:512
//             --output-len 128 --cuda-graphs on --json out.json
//   day18 run --preset tiny --device cpu --requests 8
#include <algorithm>
#include <chrono>
#include <map>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/cli/commands.h"
#include "engine/cli/flags.h"
#include "engine/cli/workload.h"
#include "engine/core/build_info.h"
#include "engine/core/file_io.h"
#include "engine/core/parse.h"
#include "engine/core/rng.h"
#include "engine/profiling/stats.h"
#include "engine/runtime/engine.h"

namespace day18::cli {
namespace {

struct RunOptions : WorkloadOptions {  // the workload flags (workload.h), plus:
  std::string json;
  bool quiet = false;
};

int run(const RunOptions& o) {
  const Workload w = plan_workload(o, "run");
  const EngineConfig& c = w.config;
  const ModelConfig& shape = w.shape;
  // Fail before the run, not after it: --json must be a file we can write.
  if (!o.json.empty()) require_writable_path(o.json, "--json");
  require_distinct_paths({{"--prompt-file", o.prompt_file}, {"--json", o.json}});
  if (!o.quiet && c.device == Device::cpu && shape.num_parameters() > 100'000'000)
    std::fprintf(stderr,
                 "run: %s has %.2f B parameters: the CPU backend (plain C++ loops, the oracles) "
                 "computes ~%.0f GFLOP per token; expect minutes per step. Progress and the time "
                 "left are printed every second (a GPU: --device cuda; --preset tiny)\n",
                 shape.name.c_str(), shape.num_parameters() / 1e9,
                 2.0 * shape.num_parameters() / 1e9);

  const auto t_load = std::chrono::steady_clock::now();
  LLMEngine engine(c);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const AddedRequests added = add_requests(engine, o, w);
  const int64_t workload_tokens = added.tokens;  // prompt + output tokens (for the time left)

  const ModelConfig& mc = engine.model().config();
  if (!o.quiet) {
    std::printf("model: %s (%s, %s), weights %.2f GB, KV cache %.2f GB (%lld blocks of %lld), "
                "swap pool %.2f GB; loaded in %.1f s\n",
                mc.describe().c_str(), std::string(dtype_name(c.dtype)).c_str(),
                std::string(device_name(c.device)).c_str(), engine.weight_bytes() / 1e9,
                engine.kv_cache_bytes() / 1e9, static_cast<long long>(engine.num_gpu_blocks()),
                static_cast<long long>(c.block_size),
                engine.executor().swap_cache_bytes() / 1e9, load_s);
    std::printf("%zu requests; max_num_seqs %lld, max_num_batched_tokens %lld, cuda graphs %s, "
                "async scheduling %s\n",
                added.requests, static_cast<long long>(c.max_num_seqs),
                static_cast<long long>(c.max_num_batched_tokens), c.cuda_graphs ? "on" : "off",
                c.async_scheduling ? "on" : "off");
  }
  engine.run_until_done([&](const LLMEngine& e) {
    if (o.quiet) return;
    const EngineMetrics& m = e.metrics();
    const double done = double(m.prefill_tokens + m.decode_tokens);
    const double rate = done / std::max(m.wall_s, 1e-9);
    // Time left at the rate so far (prefill tokens are cheaper per token than decode ones, so
    // early in a run this is a lower bound).
    const double left_s = rate > 0 ? std::max(0.0, double(workload_tokens) - done) / rate : 0;
    std::printf("  step %6lld  running %3zu  waiting %4zu  swapped %3zu  %8.0f tok/s  "
                "%3.0f%% of the tokens, ~%.0f s left\n",
                static_cast<long long>(m.steps), e.scheduler().running().size(),
                e.scheduler().waiting().size(), e.scheduler().swapped().size(), rate,
                workload_tokens > 0 ? 100.0 * done / double(workload_tokens) : 0.0, left_s);
    std::fflush(stdout);
  });
  const EngineMetrics& m = engine.metrics();
  const SchedulerStats& st = engine.scheduler().stats();
  const double cpu_ms = m.scheduler_ms + m.prepare_ms + m.process_ms;
  const double total = cpu_ms + m.model_ms + m.sampling_ms;
  auto pct = [&](double v) { return total > 0 ? 100.0 * v / total : 0.0; };
  std::printf("\n%lld steps in %.2f s: prefill %.0f tok/s (%lld tokens), decode %.0f tok/s "
              "(%lld tokens)\n",
              static_cast<long long>(m.steps), m.wall_s, m.prefill_tokens_per_s(),
              static_cast<long long>(m.prefill_tokens), m.decode_tokens_per_s(),
              static_cast<long long>(m.decode_tokens));
  std::printf("\nper-stage time (share of the step's work)   ours      seed's ideal profile\n");
  std::printf("  Scheduler      (CPU)  %9.1f ms  %5.1f%%   2-5%%\n", m.scheduler_ms,
              pct(m.scheduler_ms));
  std::printf("  PrepareInputs  (CPU)  %9.1f ms  %5.1f%%\n", m.prepare_ms, pct(m.prepare_ms));
  std::printf("  ModelExecutor  (%s)  %9.1f ms  %5.1f%%   85-90%%%s\n",
              c.device == Device::cuda ? "GPU" : "CPU", m.model_ms, pct(m.model_ms),
              m.graph_replays ? " (graph replays include sampling)" : "");
  std::printf("  Sampling       (%s)  %9.1f ms  %5.1f%%   3-5%%\n",
              c.device == Device::cuda ? "GPU" : "CPU", m.sampling_ms, pct(m.sampling_ms));
  std::printf("  ProcessOutputs (CPU)  %9.1f ms  %5.1f%%\n", m.process_ms, pct(m.process_ms));
  std::printf("  (CPU time waiting on the D2H event: %.1f ms; H2D %.1f ms, D2H %.1f ms on their "
              "own streams)\n",
              m.wait_ms, m.h2d_ms, m.d2h_ms);
  // Idle between steps: in the steady decode state (the target), then over the whole run.
  const char* unit = c.device == Device::cuda ? "GPU" : "CPU forward";
  if (m.decode_steady_pairs > 0)
    std::printf("%s idle between decode steps: median gap %.1f us, %.2f%% of the steady decode "
                "time, busy %.2f%% (%lld step pairs; graph captures and swaps left out)\n",
                unit, m.decode_gap_median_us, 100 * m.decode_idle_fraction,
                100 * m.gpu_busy_fraction, static_cast<long long>(m.decode_steady_pairs));
  else
    std::printf("%s idle between decode steps: not measured (no two consecutive decode steps)\n",
                unit);
  std::printf("%s busy over the whole run: %.1f%% of the time from the first step's compute start "
              "to the last's end (%s; prefill, graph captures, swaps included)\n",
              unit, 100 * m.gpu_busy_fraction_all,
              c.device == Device::cuda ? "event timestamps" : "host clock");
  if (c.cuda_graphs)
    std::printf("CUDA graphs: %lld captured in %.1f ms (CPU wall clock; not in the tok/s above), "
                "%lld replays\n",
                static_cast<long long>(m.graph_captures), m.graph_capture_ms,
                static_cast<long long>(m.graph_replays));
  std::printf("memory: weights %.2f GB, KV cache %.2f GB; preemptions %lld (%lld swap-outs, %lld "
              "recomputes); %lld graph replays\n",
              engine.weight_bytes() / 1e9, engine.kv_cache_bytes() / 1e9,
              static_cast<long long>(st.num_preemptions), static_cast<long long>(st.num_swap_outs),
              static_cast<long long>(st.num_recomputes), static_cast<long long>(m.graph_replays));
  if (!o.json.empty()) {
    nlohmann::json j;
    j["commit"] = git_commit();
    j["model"] = mc.name;
    j["dtype"] = std::string(dtype_name(c.dtype));
    j["device"] = std::string(device_name(c.device));
    j["requests"] = added.requests;
    j["max_num_seqs"] = c.max_num_seqs;
    j["cuda_graphs"] = c.cuda_graphs;
    j["async_scheduling"] = c.async_scheduling;
    j["steps"] = m.steps;
    j["wall_s"] = m.wall_s;
    j["prefill_tokens"] = m.prefill_tokens;
    j["decode_tokens"] = m.decode_tokens;
    j["prefill_tokens_per_s"] = m.prefill_tokens_per_s();
    j["decode_tokens_per_s"] = m.decode_tokens_per_s();
    j["stage_ms"] = {{"Scheduler", m.scheduler_ms},       {"PrepareInputs", m.prepare_ms},
                     {"ModelExecutor", m.model_ms},       {"Sampling", m.sampling_ms},
                     {"ProcessOutputs", m.process_ms},    {"Wait", m.wait_ms}};
    j["prefill_wall_s"] = m.prefill_wall_s;
    j["decode_wall_s"] = m.decode_wall_s;
    // The steady-state decode idle (null without two consecutive decode steps), the whole run.
    const bool steady = m.decode_steady_pairs > 0;
    auto or_null = [&](double v) { return steady ? nlohmann::json(v) : nlohmann::json(); };
    j["gpu_busy_fraction"] = or_null(m.gpu_busy_fraction);
    j["decode_idle_fraction"] = or_null(m.decode_idle_fraction);
    j["decode_gap_median_us"] = or_null(m.decode_gap_median_us);
    j["decode_steady_pairs"] = m.decode_steady_pairs;
    j["gpu_busy_fraction_all"] = m.gpu_busy_fraction_all;
    j["graph_captures"] = m.graph_captures;
    j["graph_capture_ms"] = m.graph_capture_ms;
    j["weight_bytes"] = engine.weight_bytes();
    j["kv_cache_bytes"] = engine.kv_cache_bytes();
    j["preemptions"] = st.num_preemptions;
    j["graph_replays"] = m.graph_replays;
    // Median decode step (compute interval) per batch size.
    std::map<int64_t, std::vector<double>> by_bs;
    for (const StepRecord& r : engine.records())
      if (r.num_prefills == 0) by_bs[r.num_seqs].push_back(r.gpu.compute_ms);
    nlohmann::json steps = nlohmann::json::object();
    for (auto& [bs, v] : by_bs) steps[std::to_string(bs)] = summarize(std::move(v)).median;
    j["decode_step_ms_by_batch"] = steps;
    write_file_atomically(o.json, "--json", [&](std::ostream& out) { out << j.dump(2) << "\n"; });
    std::printf("wrote %s\n", o.json.c_str());
  }
  return 0;
}

}  // namespace

Runner add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Run the engine (scheduler + executor) on a workload");
  add_workload_options(sub, *o);
  sub->add_option("--json", o->json, "Write the metrics as JSON");
  sub->add_flag("--quiet", o->quiet, "No progress lines");
  return [o] { return run(*o); };
}

}  // namespace day18::cli
