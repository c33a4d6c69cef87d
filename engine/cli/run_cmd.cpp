// `day18 run`: the engine on a synthetic workload, with the per-stage breakdown of the step.
//
//   day18 run --preset llama-1b --dtype fp16 --device cuda --requests 64 --prompt-len 32:512
//             --output-len 128 --cuda-graphs on --json out.json
//   day18 run --preset tiny --device cpu --requests 8
#include <algorithm>
#include <chrono>
#include <map>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/cli/commands.h"
#include "engine/core/build_info.h"
#include "engine/core/rng.h"
#include "engine/profiling/stats.h"
#include "engine/runtime/engine.h"

namespace day18::cli {
namespace {

struct RunOptions {
  std::string model, preset = "tiny", dtype = "auto", device = "auto";
  int64_t requests = 16;
  std::string prompt_len = "32", output_len = "32";
  std::string prompt_file;
  int64_t max_num_seqs = 64, max_num_batched_tokens = 1024, max_model_len = 2048;
  int64_t num_gpu_blocks = 0, num_cpu_blocks = 512, block_size = 16;
  double gpu_memory_utilization = 0.9;
  std::string cuda_graphs = "off", async = "on";
  float temperature = 0.f, top_p = 1.f;
  int32_t top_k = 0;
  int64_t seed = 0;
  std::string json;
  bool quiet = false;
};

// "N" or "lo:hi".
std::pair<int64_t, int64_t> parse_range(const std::string& s, const char* what) {
  try {
    const size_t c = s.find(':');
    const int64_t lo = std::stoll(s.substr(0, c));
    const int64_t hi = c == std::string::npos ? lo : std::stoll(s.substr(c + 1));
    DAY18_REQUIRE(lo >= 1 && hi >= lo, "bad");
    return {lo, hi};
  } catch (const std::exception&) {
    DAY18_REQUIRE(false, what, ": '", s, "' is not N or LO:HI with 1 <= LO <= HI");
  }
  return {0, 0};
}

int run(const RunOptions& o) {
  EngineConfig c;
  c.model_dir = o.model;
  c.preset = o.model.empty() ? o.preset : "";
  c.device = o.device == "auto" ? (cuda_available() ? Device::cuda : Device::cpu)
                                : parse_device(o.device);
  c.dtype = o.dtype == "auto" ? (c.device == Device::cuda ? DType::f16 : DType::f32)
                              : parse_dtype(o.dtype);
  c.max_num_seqs = o.max_num_seqs;
  c.max_num_batched_tokens = o.max_num_batched_tokens;
  c.max_model_len = o.max_model_len;
  c.num_gpu_blocks = o.num_gpu_blocks;
  c.num_cpu_blocks = o.num_cpu_blocks;
  c.block_size = o.block_size;
  c.gpu_memory_utilization = o.gpu_memory_utilization;
  c.cuda_graphs = o.cuda_graphs == "on";
  c.async_scheduling = o.async == "on";
  if (!o.model.empty()) c.preset.clear();
  if (c.preset.empty() && o.model.empty()) c.preset = "tiny";
  // Check the preset before allocating anything (lists the known names).
  if (o.model.empty()) (void)ModelConfig::preset(c.preset);

  const auto t_load = std::chrono::steady_clock::now();
  LLMEngine engine(c);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const int64_t vocab = engine.model().config().vocab_size;
  const int64_t max_len = engine.config().max_model_len;

  std::vector<std::vector<int32_t>> prompts;
  if (!o.prompt_file.empty()) {
    std::ifstream f(o.prompt_file);
    DAY18_REQUIRE(f.good(), "--prompt-file: cannot open ", o.prompt_file);
    std::string line;
    while (std::getline(f, line)) {
      std::stringstream ss(line);
      std::vector<int32_t> p;
      std::string tok;
      while (ss >> tok) {
        for (char& ch : tok)
          if (ch == ',') ch = ' ';
        std::stringstream s2(tok);
        int64_t v;
        while (s2 >> v) p.push_back(static_cast<int32_t>(v));
      }
      if (!p.empty()) prompts.push_back(p);
    }
    DAY18_REQUIRE(!prompts.empty(), "--prompt-file ", o.prompt_file, ": no token ids found");
  } else {
    DAY18_REQUIRE(o.requests >= 1, "--requests must be >= 1, got ", o.requests);
    const auto [lo, hi] = parse_range(o.prompt_len, "--prompt-len");
    Rng rng(static_cast<uint64_t>(o.seed) + 1);
    for (int64_t i = 0; i < o.requests; ++i) {
      std::vector<int32_t> p(static_cast<size_t>(rng.randint(lo, hi)));
      for (auto& t : p) t = static_cast<int32_t>(rng.randint(0, vocab - 1));
      prompts.push_back(p);
    }
  }
  const auto [olo, ohi] = parse_range(o.output_len, "--output-len");
  Rng rng(static_cast<uint64_t>(o.seed) + 2);
  for (size_t i = 0; i < prompts.size(); ++i) {
    DAY18_REQUIRE(static_cast<int64_t>(prompts[i].size()) < max_len, "request ", i, ": prompt of ",
                  prompts[i].size(), " tokens does not fit the context (max_model_len ", max_len,
                  "); lower --prompt-len or raise --max-model-len");
    SamplingParams p;
    p.temperature = o.temperature;
    p.top_k = o.top_k;
    p.top_p = o.top_p;
    p.seed = o.seed + static_cast<int64_t>(i);
    p.max_tokens = static_cast<int32_t>(rng.randint(olo, ohi));
    p.ignore_eos = true;
    engine.add_request(prompts[i], p);
  }

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
                prompts.size(), static_cast<long long>(c.max_num_seqs),
                static_cast<long long>(c.max_num_batched_tokens), c.cuda_graphs ? "on" : "off",
                c.async_scheduling ? "on" : "off");
  }
  engine.run_until_done([&](const LLMEngine& e) {
    if (o.quiet) return;
    const EngineMetrics& m = e.metrics();
    std::printf("  step %6lld  running %3zu  waiting %4zu  swapped %3zu  %8.0f tok/s\n",
                static_cast<long long>(m.steps), e.scheduler().running().size(),
                e.scheduler().waiting().size(), e.scheduler().swapped().size(),
                (m.prefill_tokens + m.decode_tokens) / std::max(m.wall_s, 1e-9));
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
    j["requests"] = prompts.size();
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
    std::ofstream(o.json) << j.dump(2) << "\n";
    std::printf("wrote %s\n", o.json.c_str());
  }
  return 0;
}

}  // namespace

Runner add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Run the engine (scheduler + executor) on a workload");
  sub->add_option("--model", o->model, "Hugging Face model folder");
  sub->add_option("--preset", o->preset, "tiny, llama-1b or llama-8b (random weights)");
  sub->add_option("--dtype", o->dtype, "fp32, fp16, bf16 (default: fp16 on cuda, fp32 on cpu)");
  sub->add_option("--device", o->device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sub->add_option("--requests", o->requests, "Number of requests (default 16)");
  sub->add_option("--prompt-len", o->prompt_len, "Prompt length N or LO:HI (random)");
  sub->add_option("--output-len", o->output_len, "Generated tokens N or LO:HI (random)");
  sub->add_option("--prompt-file", o->prompt_file, "Token ids, one request per line");
  sub->add_option("--max-num-seqs", o->max_num_seqs, "Sequences per step at most");
  sub->add_option("--max-num-batched-tokens", o->max_num_batched_tokens, "Tokens per step");
  sub->add_option("--max-model-len", o->max_model_len, "Prompt + output at most");
  sub->add_option("--num-gpu-blocks", o->num_gpu_blocks, "KV blocks (0: derive)");
  sub->add_option("--gpu-memory-utilization", o->gpu_memory_utilization,
                  "Fraction of GPU memory for weights + KV (when --num-gpu-blocks is 0)");
  sub->add_option("--num-cpu-blocks", o->num_cpu_blocks, "Pinned swap-pool blocks");
  sub->add_option("--block-size", o->block_size, "Tokens per KV block: 8, 16, 32");
  sub->add_option("--cuda-graphs", o->cuda_graphs, "on|off")->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--async", o->async, "Async scheduling on|off")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--temperature", o->temperature, "0 = greedy (default)");
  sub->add_option("--top-k", o->top_k, "0 = off");
  sub->add_option("--top-p", o->top_p, "1 = off");
  sub->add_option("--seed", o->seed, "Seed of the prompts and of the sampling");
  sub->add_option("--json", o->json, "Write the metrics as JSON");
  sub->add_flag("--quiet", o->quiet, "No progress lines");
  return [o] { return run(*o); };
}

}  // namespace day18::cli
