// `day18 generate`: greedy decoding with LlamaModel alone (no scheduler, contiguous KV blocks), the
// engine's smallest end-to-end run and what scripts/check_against_transformers.py compares with
// Hugging Face transformers.
//
//   day18 generate --model /tmp/llama --prompt-ids 1,15,22 --max-tokens 16 --device cuda
//                  --dtype fp16 --dump-logits out.safetensors
//   day18 generate --preset tiny --prompt-ids 1,2,3 --max-tokens 32 --device cpu
//
// Step 0 runs the whole prompt (prefill; logits of its last token), each later step one token
// (decode). The dump holds prompt_ids [P] i32, tokens [N] i32 (generated) and logits [N, vocab]
// f32 (row i: the logits that chose tokens[i]).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>

#include "engine/cli/commands.h"
#include "engine/cli/flags.h"
#include "engine/core/file_io.h"
#include "engine/core/parse.h"
#include "engine/core/safetensors.h"
#include "engine/core/system_memory.h"
#include "engine/runtime/contiguous_batch.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/model_memory.h"

namespace day18::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string preset;
  std::string prompt_ids;
  int64_t max_tokens = 16;
  std::string device = "cpu";
  std::string dtype = "fp32";
  std::string dump_logits;
  uint64_t seed = 0;
  int64_t block_size = 16;
  bool quiet = false;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string duration_text(double s) {
  char buf[64];
  if (s < 120) std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 7200) std::snprintf(buf, sizeof buf, "%.0f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  return buf;
}

int run_generate(const GenerateOptions& o) {
  DAY18_REQUIRE(o.model.empty() != o.preset.empty(),
                "generate: give exactly one of --model <hf folder> or --preset <name>");
  const Device device = resolve_device(o.device, "generate");
  const DType dtype = resolve_dtype(o.dtype, device);
  const std::vector<int32_t> prompt = parse_token_ids("--prompt-ids", o.prompt_ids);
  const int64_t P = static_cast<int64_t>(prompt.size());
  // Fail before the run, not after it: the dump must be a file we can write.
  if (!o.dump_logits.empty()) require_writable_path(o.dump_logits, "--dump-logits");

  // The model's shape first (cheap), to check the lengths before anything big is allocated.
  if (!o.model.empty())
    DAY18_REQUIRE(std::filesystem::is_directory(o.model), "--model: '", o.model,
                  "' is not a model folder (it does not exist or is not a folder)");
  const ModelConfig config =
      o.model.empty() ? ModelConfig::preset(o.preset)
                      : ModelConfig::from_json_file(
                            (std::filesystem::path(o.model) / "config.json").string());
  DAY18_REQUIRE(P + o.max_tokens <= config.max_position, "--max-tokens ", o.max_tokens,
                ": the prompt (", P, " tokens) plus ", o.max_tokens,
                " generated tokens exceed the model's context of ", config.max_position,
                " tokens (max_position_embeddings)");
  for (int64_t i = 0; i < P; ++i)
    DAY18_REQUIRE(prompt[i] < config.vocab_size, "--prompt-ids: id ", prompt[i], " at position ",
                  i, " is outside the vocabulary [0, ", config.vocab_size, ")");
  const int64_t vocab = config.vocab_size;
  // The dump keeps every step's logits on the host: [max_tokens, vocab] f32.
  if (!o.dump_logits.empty()) {
    const double need = double(o.max_tokens) * double(vocab) * 4;
    const AvailableMemory avail = available_host_memory();
    DAY18_REQUIRE(need <= double(avail.bytes), "--dump-logits: ", o.max_tokens, " rows of ", vocab,
                  " logits need ", need / 1e9, " GB of host memory but ", avail.bytes / 1e9,
                  " GB is available (", avail.source, "); lower --max-tokens");
  }

  // One sequence: room for the prompt and every generated token.
  RuntimeLimits limits;
  limits.max_model_len = P + o.max_tokens;
  limits.max_num_tokens = P;
  limits.max_num_seqs = 1;
  limits.kv.block_size = o.block_size;
  limits.kv.num_blocks = limits.max_blocks_per_seq();

  check_model_fits(config, dtype, device, limits);  // refuse what cannot fit, before the note below
  // The CPU backend is the oracle: plain loops, fine for `tiny`, minutes per token for an 8B
  // model. Say so up front; the steps below report progress and the time left.
  const double gflop_per_token = 2.0 * double(config.num_parameters()) / 1e9;
  if (!o.quiet && device == Device::cpu && config.num_parameters() > 100'000'000)
    std::fprintf(stderr,
                 "generate: %s has %.2f B parameters: the CPU backend (plain C++ loops, the "
                 "oracles) computes ~%.0f GFLOP per token, so expect seconds to minutes per token, "
                 "after the %.1f GB of weights are built or read; progress and the time left are "
                 "printed as it goes (a GPU: --device cuda; a CPU-sized model: --preset tiny)\n",
                 config.name.c_str(), config.num_parameters() / 1e9, gflop_per_token,
                 config.weight_bytes(dtype) / 1e9);

  const auto t0 = std::chrono::steady_clock::now();
  LlamaModel model = o.model.empty()
                         ? LlamaModel::from_preset(o.preset, dtype, device, o.seed, limits)
                         : LlamaModel::from_folder(o.model, dtype, device, limits);
  const double load_s = seconds_since(t0);

  std::unique_ptr<Stream> stream;
  if (device == Device::cuda) stream = std::make_unique<Stream>();
  cudaStream_t s = stream ? stream->get() : nullptr;

  // Every step's logits when dumping them, else only the current step's.
  OwnedTensor logits_all({o.dump_logits.empty() ? 1 : o.max_tokens, vocab}, DType::f32,
                         Storage::host);
  std::vector<int32_t> generated;
  const auto t1 = std::chrono::steady_clock::now();
  auto last_report = t1;
  double prefill_s = 0;
  int64_t computed = 0;
  std::vector<int32_t> pending = prompt;
  for (int64_t step = 0; step < o.max_tokens; ++step) {
    ContiguousBatch b = make_contiguous_batch({{pending, computed, 0, false}}, o.block_size,
                                              limits.max_blocks_per_seq(), device);
    const Tensor& logits = model.forward(b.batch, s);
    const int64_t row = o.dump_logits.empty() ? 0 : step;
    copy_tensor(logits_all.view().slice0(row, row + 1), logits, s);  // waits for the stream
    int32_t next = 0;
    try {
      next = greedy_tokens(logits_all.view().slice0(row, row + 1))[0];
    } catch (const Error& e) {
      throw Error(detail::concat("generate: step ", step, " (", step == 0 ? "prefill" : "decode",
                                 "): ", e.what()));
    }
    generated.push_back(next);
    computed += static_cast<int64_t>(pending.size());
    pending = {next};
    // Progress for slow runs only: at most one line a second.
    if (step == 0) prefill_s = seconds_since(t1);
    if (!o.quiet && seconds_since(last_report) >= 1.0 && step + 1 < o.max_tokens) {
      last_report = std::chrono::steady_clock::now();
      const double elapsed = seconds_since(t1);
      // Decode steps so far give the rate; after the prefill alone, its time per prompt token.
      const double per_step =
          step == 0 ? prefill_s / double(P) : (elapsed - prefill_s) / double(step);
      std::fprintf(stderr, "generate: %lld of %lld tokens in %s; about %s left\n",
                   static_cast<long long>(step + 1), static_cast<long long>(o.max_tokens),
                   duration_text(elapsed).c_str(),
                   duration_text(per_step * double(o.max_tokens - step - 1)).c_str());
    }
  }
  const double gen_s = seconds_since(t1);

  if (!o.quiet) {
    std::printf("model: %s (%s, %s)\n", model.config().describe().c_str(),
                std::string(dtype_name(dtype)).c_str(), std::string(device_name(device)).c_str());
    std::printf("loaded in %.2f s; %lld tokens in %.3f s (prefill of %lld + %lld decode steps)\n",
                load_s, static_cast<long long>(o.max_tokens), gen_s, static_cast<long long>(P),
                static_cast<long long>(o.max_tokens - 1));
    std::printf("tokens:");
    for (int32_t t : generated) std::printf(" %d", t);
    std::printf("\n");
  }
  if (!o.dump_logits.empty()) {
    OwnedTensor prompt_t({P}, DType::i32, Storage::host),
        tokens_t({o.max_tokens}, DType::i32, Storage::host);
    std::copy(prompt.begin(), prompt.end(), prompt_t.ptr<int32_t>());
    std::copy(generated.begin(), generated.end(), tokens_t.ptr<int32_t>());
    write_safetensors(o.dump_logits,
                      {{"prompt_ids", prompt_t.view()},
                       {"tokens", tokens_t.view()},
                       {"logits", logits_all.view()}},
                      {{"model", model.config().name},
                       {"dtype", std::string(dtype_name(dtype))},
                       {"device", std::string(device_name(device))}},
                      "--dump-logits");
    if (!o.quiet) std::printf("wrote %s\n", o.dump_logits.c_str());
  }
  return 0;
}

}  // namespace

Runner add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* sub = app.add_subcommand(
      "generate", "Greedy-decode with the Llama model alone (one sequence, no scheduler)");
  CLI::Option* model =
      sub->add_option("--model", o->model, "Hugging Face model folder (config.json + safetensors)");
  add_preset_flag(sub, o->preset, "Built-in model with random weights instead of --model")
      ->excludes(model);
  sub->add_option("--prompt-ids", o->prompt_ids, "Prompt token ids, comma-separated")->required();
  sub->add_option("--max-tokens", o->max_tokens, "Tokens to generate")
      ->check(integer_in(1, std::numeric_limits<int32_t>::max()));
  add_device_flag(sub, o->device);
  add_dtype_flag(sub, o->dtype, "auto (fp16 on cuda, fp32 on cpu), fp32, fp16 or bf16 (weights "
                                "converted on load)");
  sub->add_option("--dump-logits", o->dump_logits,
                  "Write prompt_ids, tokens and logits [N, vocab] f32 to this .safetensors");
  add_seed_flag(sub, o->seed, "Seed of the preset's random weights");
  add_block_size_flag(sub, o->block_size);
  sub->add_flag("--quiet", o->quiet, "Print nothing but errors");
  return [o] { return run_generate(*o); };
}

}  // namespace day18::cli
