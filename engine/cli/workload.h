// The synthetic workload that `day18 run` and `day18 trace` share: the same flags (model, batch
// limits, prompt and output lengths, sampling), the same engine configuration, the same requests.
//
//   WorkloadOptions o;                       // CLI11 fills it: add_workload_options(sub, o)
//   const Workload w = plan_workload(o, "trace");   // validated, before anything is allocated
//   LLMEngine engine(w.config);
//   const AddedRequests r = add_requests(engine, o, w);
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <utility>

#include "engine/runtime/engine.h"

namespace day18::cli {

struct WorkloadOptions {
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
  uint64_t seed = 0;
  // Given on the command line (not the default): a value that cannot be honoured is refused,
  // not quietly replaced (a --max-model-len beyond the model's context, --prompt-len or
  // --requests beside --prompt-file, whose lines are the requests).
  bool max_model_len_given = false, requests_given = false, prompt_len_given = false;
};

// The largest workload these commands build: its prompts are generated up front, in host memory.
inline constexpr int64_t kMaxRequests = 1'000'000;
inline constexpr int64_t kMaxWorkloadTokens = int64_t{1} << 28;  // 1 GiB of int32 prompt tokens

// --model/--preset, --dtype, --device, --requests, --prompt-len, --output-len, --prompt-file,
// --max-num-seqs, --max-num-batched-tokens, --max-model-len, --num-gpu-blocks,
// --gpu-memory-utilization, --num-cpu-blocks, --block-size, --cuda-graphs, --async,
// --temperature, --top-k, --top-p, --seed.
void add_workload_options(CLI::App* sub, WorkloadOptions& o);

struct Workload {
  EngineConfig config;
  ModelConfig shape;                       // the model's configuration (no weights)
  int64_t context = 0;                     // max_model_len, capped by the model's max_position
  std::pair<int64_t, int64_t> output_len;  // --output-len, checked against the context
};
// The engine configuration and the lengths, validated before anything is allocated (errors name
// the flag and the value as given). `command` names the subcommand in errors ("run").
Workload plan_workload(const WorkloadOptions& o, const char* command);

struct AddedRequests {
  size_t requests = 0;
  int64_t tokens = 0;  // prompt + output tokens of every request
};
// The prompts (--prompt-file, or random of --prompt-len) and their sampling parameters.
AddedRequests add_requests(LLMEngine& engine, const WorkloadOptions& o, const Workload& w);

}  // namespace day18::cli
