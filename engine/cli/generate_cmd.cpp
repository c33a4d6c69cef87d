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
#include <memory>
#include <sstream>

#include "engine/cli/commands.h"
#include "engine/core/safetensors.h"
#include "engine/runtime/contiguous_batch.h"
#include "engine/runtime/llama_model.h"

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

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      DAY18_REQUIRE(used == item.size() && v >= 0 && v < (1L << 31), "bad id");
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      DAY18_REQUIRE(false, "--prompt-ids: '", item, "' is not a token id (comma-separated ints)");
    }
  }
  DAY18_REQUIRE(!ids.empty(), "--prompt-ids: give at least one token id, e.g. 1,15,22");
  return ids;
}

int run_generate(const GenerateOptions& o) {
  DAY18_REQUIRE(o.model.empty() != o.preset.empty(),
                "generate: give exactly one of --model <hf folder> or --preset <name>");
  DAY18_REQUIRE(o.max_tokens >= 1, "--max-tokens must be >= 1, got ", o.max_tokens);
  const Device device = parse_device(o.device);
  const DType dtype = parse_dtype(o.dtype);
  if (device == Device::cuda)
    DAY18_REQUIRE(cuda_available(), "generate: --device cuda but ", cuda_unavailable_reason());
  const std::vector<int32_t> prompt = parse_ids(o.prompt_ids);
  const int64_t P = static_cast<int64_t>(prompt.size());

  // One sequence: room for the prompt and every generated token.
  RuntimeLimits limits;
  limits.max_model_len = P + o.max_tokens;
  limits.max_num_tokens = P;
  limits.max_num_seqs = 1;
  limits.kv.block_size = o.block_size;
  limits.kv.num_blocks = limits.max_blocks_per_seq();

  const auto t0 = std::chrono::steady_clock::now();
  LlamaModel model = o.model.empty()
                         ? LlamaModel::from_preset(o.preset, dtype, device, o.seed, limits)
                         : LlamaModel::from_folder(o.model, dtype, device, limits);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t vocab = model.config().vocab_size;
  for (int64_t i = 0; i < P; ++i)
    DAY18_REQUIRE(prompt[i] < vocab, "--prompt-ids: id ", prompt[i], " at position ", i,
                  " is outside the vocabulary [0, ", vocab, ")");

  std::unique_ptr<Stream> stream;
  if (device == Device::cuda) stream = std::make_unique<Stream>();
  cudaStream_t s = stream ? stream->get() : nullptr;

  OwnedTensor logits_all({o.max_tokens, vocab}, DType::f32, Storage::host);
  std::vector<int32_t> generated;
  const auto t1 = std::chrono::steady_clock::now();
  int64_t computed = 0;
  std::vector<int32_t> pending = prompt;
  for (int64_t step = 0; step < o.max_tokens; ++step) {
    ContiguousBatch b = make_contiguous_batch({{pending, computed, 0, false}}, o.block_size,
                                              limits.max_blocks_per_seq(), device);
    const Tensor& logits = model.forward(b.batch, s);
    copy_tensor(logits_all.view().slice0(step, step + 1), logits, s);  // waits for the stream
    const int32_t next = greedy_tokens(logits_all.view().slice0(step, step + 1))[0];
    generated.push_back(next);
    computed += static_cast<int64_t>(pending.size());
    pending = {next};
  }
  const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();

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
                       {"device", std::string(device_name(device))}});
    if (!o.quiet) std::printf("wrote %s\n", o.dump_logits.c_str());
  }
  return 0;
}

}  // namespace

Runner add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* sub = app.add_subcommand(
      "generate", "Greedy-decode with the Llama model alone (one sequence, no scheduler)");
  sub->add_option("--model", o->model, "Hugging Face model folder (config.json + safetensors)");
  sub->add_option("--preset", o->preset, "Built-in random model instead: tiny, llama-1b, llama-8b");
  sub->add_option("--prompt-ids", o->prompt_ids, "Prompt token ids, comma-separated")->required();
  sub->add_option("--max-tokens", o->max_tokens, "Tokens to generate (default 16)");
  sub->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--dtype", o->dtype, "fp32, fp16 or bf16 (weights converted on load)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "float32", "float16", "bfloat16"}));
  sub->add_option("--dump-logits", o->dump_logits,
                  "Write prompt_ids, tokens and logits [N, vocab] f32 to this .safetensors");
  sub->add_option("--seed", o->seed, "Seed of the preset's random weights (default 0)");
  sub->add_option("--block-size", o->block_size, "KV-cache block size: 8, 16 or 32 (default 16)");
  sub->add_flag("--quiet", o->quiet, "Print nothing but errors");
  return [o] { return run_generate(*o); };
}

}  // namespace day18::cli
