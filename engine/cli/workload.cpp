#include "engine/cli/workload.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/cli/flags.h"
#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/core/parse.h"
#include "engine/core/rng.h"

namespace day18::cli {

void add_workload_options(CLI::App* sub, WorkloadOptions& o) {
  CLI::Option* model = sub->add_option("--model", o.model, "Hugging Face model folder");
  add_preset_flag(sub, o.preset, "Built-in model with random weights instead of --model")
      ->excludes(model);
  add_dtype_flag(sub, o.dtype);
  add_device_flag(sub, o.device);
  sub->add_option("--requests", o.requests, "Number of requests")
      ->check(integer_in(1, kMaxRequests))
      ->each([&o](const std::string&) { o.requests_given = true; });
  sub->add_option("--prompt-len", o.prompt_len, "Prompt length N or LO:HI (random)")
      ->each([&o](const std::string&) { o.prompt_len_given = true; });
  sub->add_option("--output-len", o.output_len, "Generated tokens N or LO:HI (random)");
  sub->add_option("--prompt-file", o.prompt_file, "Token ids, one request per line");
  sub->add_option("--max-num-seqs", o.max_num_seqs, "Sequences per step at most")
      ->check(integer_at_least(1));
  sub->add_option("--max-num-batched-tokens", o.max_num_batched_tokens, "Tokens per step")
      ->check(integer_at_least(1));
  sub->add_option("--max-model-len", o.max_model_len, "Prompt + output at most")
      ->check(integer_at_least(1))
      ->each([&o](const std::string&) { o.max_model_len_given = true; });
  sub->add_option("--num-gpu-blocks", o.num_gpu_blocks, "KV blocks (0: derive)")
      ->check(integer_at_least(0));
  sub->add_option("--gpu-memory-utilization", o.gpu_memory_utilization,
                  "Fraction of GPU memory for weights + KV (when --num-gpu-blocks is 0)")
      ->check(fraction_validator());
  sub->add_option("--num-cpu-blocks", o.num_cpu_blocks, "Pinned swap-pool blocks")
      ->check(integer_at_least(0));
  add_block_size_flag(sub, o.block_size);
  sub->add_option("--cuda-graphs", o.cuda_graphs, "on|off")->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--async", o.async, "Async scheduling on|off")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--temperature", o.temperature, "0 = greedy")->check(non_negative_number());
  sub->add_option("--top-k", o.top_k, "0 = off")
      ->check(integer_in(0, std::numeric_limits<int32_t>::max()));
  sub->add_option("--top-p", o.top_p, "in (0, 1]; 1 = off")->check(fraction_validator());
  add_seed_flag(sub, o.seed, "Seed of the prompts and of the sampling");
}

Workload plan_workload(const WorkloadOptions& o, const char* command) {
  Workload w;
  EngineConfig& c = w.config;
  c.model_dir = o.model;
  c.preset = o.model.empty() ? o.preset : "";
  c.device = resolve_device(o.device, command);
  c.dtype = resolve_dtype(o.dtype, c.device);
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
  // The lengths, before the engine allocates anything (the context is capped by the model's);
  // a preset name is checked here (the error lists the known ones).
  w.shape =
      o.model.empty()
          ? ModelConfig::preset(c.preset)
          : ModelConfig::from_json_file((std::filesystem::path(o.model) / "config.json").string());
  // The default (2048) is capped by the model's context; a value given is honoured or refused.
  DAY18_REQUIRE(!o.max_model_len_given || o.max_model_len <= w.shape.max_position,
                "--max-model-len ", o.max_model_len, " is more than ", w.shape.name,
                " can attend to (max_position_embeddings ", w.shape.max_position,
                "); give at most ", w.shape.max_position);
  w.context = std::min(o.max_model_len, w.shape.max_position);
  DAY18_REQUIRE(o.prompt_file.empty() || (!o.requests_given && !o.prompt_len_given),
                "--prompt-file ", o.prompt_file, ": its lines are the requests and their prompts; ",
                o.requests_given ? "--requests" : "--prompt-len",
                " would be ignored, leave it out");
  // Said with the flags as typed here, before the engine's own check says it in its field names.
  DAY18_REQUIRE(o.max_num_seqs <= o.max_num_batched_tokens, "--max-num-seqs ", o.max_num_seqs,
                " is more than --max-num-batched-tokens ", o.max_num_batched_tokens,
                ": each sequence of a step takes at least one of the step's tokens; lower "
                "--max-num-seqs or raise --max-num-batched-tokens");
  DAY18_REQUIRE(o.num_gpu_blocks < (int64_t{1} << 31) / o.block_size, "--num-gpu-blocks ",
                o.num_gpu_blocks, " x --block-size ", o.block_size,
                " is more KV slots than int32 slot ids can number (2^31); give fewer");
  if (o.num_gpu_blocks > 0) {
    const int64_t need = (w.context + o.block_size - 1) / o.block_size;
    DAY18_REQUIRE(o.num_gpu_blocks >= need, "--num-gpu-blocks ", o.num_gpu_blocks, " x --block-size ",
                  o.block_size, " holds ", o.num_gpu_blocks * o.block_size,
                  " tokens: fewer than one sequence of --max-model-len ", w.context, " needs (",
                  need, " blocks); give at least ", need, ", or 0 to derive it from the memory");
  }
  w.output_len = parse_int_range("--output-len", o.output_len, 1, w.context);
  return w;
}

AddedRequests add_requests(LLMEngine& engine, const WorkloadOptions& o, const Workload& w) {
  const int64_t vocab = engine.model().config().vocab_size;
  const int64_t max_len = engine.config().max_model_len;
  std::vector<std::vector<int32_t>> prompts;
  if (!o.prompt_file.empty()) {
    std::ifstream f = open_input_file(o.prompt_file, "--prompt-file");
    std::string line;
    for (int64_t n = 1; std::getline(f, line); ++n) {
      // Strict: "5x", "abc" or 4294967297 is an error naming the line, never dropped or wrapped.
      std::vector<int32_t> p = parse_token_ids(
          "--prompt-file " + o.prompt_file + " line " + std::to_string(n), line, true);
      if (!p.empty()) prompts.push_back(std::move(p));
      DAY18_REQUIRE(static_cast<int64_t>(prompts.size()) <= kMaxRequests, "--prompt-file ",
                    o.prompt_file, ": more than ", kMaxRequests, " requests");
    }
    DAY18_REQUIRE(!prompts.empty(), "--prompt-file ", o.prompt_file, ": no token ids found");
  } else {
    DAY18_REQUIRE(o.requests >= 1, "--requests must be >= 1, got ", o.requests);
    const auto [lo, hi] = parse_int_range("--prompt-len", o.prompt_len, 1, w.context - 1);
    DAY18_REQUIRE(o.requests * hi <= kMaxWorkloadTokens, "--requests ", o.requests,
                  " x --prompt-len up to ", hi, " = ", o.requests * hi,
                  " prompt tokens: more than this command generates (", kMaxWorkloadTokens, ")");
    Rng rng(static_cast<uint64_t>(o.seed) + 1);
    for (int64_t i = 0; i < o.requests; ++i) {
      std::vector<int32_t> p(static_cast<size_t>(rng.randint(lo, hi)));
      for (auto& t : p) t = static_cast<int32_t>(rng.randint(0, vocab - 1));
      prompts.push_back(p);
    }
  }
  const auto [olo, ohi] = w.output_len;
  Rng rng(static_cast<uint64_t>(o.seed) + 2);
  AddedRequests added;
  for (size_t i = 0; i < prompts.size(); ++i) {
    DAY18_REQUIRE(static_cast<int64_t>(prompts[i].size()) < max_len, "request ", i, ": prompt of ",
                  prompts[i].size(), " tokens does not fit the context (max_model_len ", max_len,
                  "); lower --prompt-len or raise --max-model-len");
    SamplingParams p;
    p.temperature = o.temperature;
    p.top_k = o.top_k;
    p.top_p = o.top_p;
    p.seed = static_cast<int64_t>(o.seed + i);
    p.max_tokens = static_cast<int32_t>(rng.randint(olo, ohi));
    p.ignore_eos = true;
    added.tokens += static_cast<int64_t>(prompts[i].size()) + p.max_tokens;
    engine.add_request(prompts[i], p);
  }
  added.requests = prompts.size();
  return added;
}

}  // namespace day18::cli
