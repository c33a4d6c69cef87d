// One request as the runtime sees it: its tokens, its sampling parameters, where it is in its life
// (waiting -> running <-> swapped -> finished) and which KV-cache blocks hold its keys and values.
//
// Token positions: a sequence's tokens are prompt[0..P) followed by output[0..O); position p is
// token(p). `num_computed_tokens` counts the leading positions whose K/V are already in the cache.
// A step computes positions [num_computed_tokens, num_computed_tokens + n): a prompt chunk during
// prefill, exactly one position (the last sampled token) during decode. The newest sampled token
// never has K/V in the cache until the next step feeds it, so a decoding sequence always has
// num_computed_tokens == len() - 1. docs/scheduler.md walks through a sequence's life.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace day18 {

// Async scheduling (SchedulerConfig::async_scheduling): the token a step will sample is appended
// to Sequence::output at schedule time as this placeholder; its value lives on the device until
// process_outputs fills it in. The next step's input batch feeds it on the device.
inline constexpr int32_t kPlaceholderToken = -1;

// Per-request sampling parameters (vLLM's names). temperature 0 = greedy; top_k 0 = off;
// top_p 1 = off. `seed` seeds the request's own random stream, so a request samples the same
// tokens whatever batch it lands in. Stops after max_tokens generated tokens, or at
// eos_token_id (-1 = none) unless ignore_eos.
struct SamplingParams {
  float temperature = 1.f;
  int32_t top_k = 0;
  float top_p = 1.f;
  int64_t seed = 0;
  int32_t max_tokens = 16;
  int32_t eos_token_id = -1;
  bool ignore_eos = false;
};

// Throws InvalidArgument naming the field and the value: temperature must be finite and >= 0,
// top_k >= 0, 0 < top_p <= 1, max_tokens >= 1. `what` prefixes the message ("request 3").
void validate_sampling_params(const SamplingParams& p, std::string_view what);

// waiting: no KV in the cache (new, or preempted by recompute); running: its blocks are GPU blocks;
// swapped: its blocks are CPU (swap-pool) blocks; finished: done, blocks returned.
enum class SeqStatus { waiting, running, swapped, finished };
const char* to_string(SeqStatus s);

// Why a sequence finished.
enum class FinishReason {
  none,       // not finished
  length,     // generated max_tokens tokens
  stop,       // sampled eos_token_id (and ignore_eos is false)
  model_len,  // reached the scheduler's max_model_len
};
const char* to_string(FinishReason r);

struct Sequence {
  int64_t id = -1;  // stable, assigned in arrival order (0, 1, 2, ...)
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;  // sampled tokens so far
  SamplingParams params;
  SeqStatus status = SeqStatus::waiting;
  int64_t num_computed_tokens = 0;  // tokens whose K/V is in the cache (GPU or, if swapped, CPU)
  // Physical block ids: GPU block ids while waiting/running, CPU swap-pool ids while swapped.
  // block_table[i] holds positions [i * block_size, (i + 1) * block_size).
  std::vector<int32_t> block_table;
  FinishReason finish_reason = FinishReason::none;

  // Timing (seconds on the scheduler's steady clock; -1 = not yet) and counters for metrics.
  double arrival_time = 0;
  double first_scheduled_time = -1;  // first step that computed any of its tokens
  double first_token_time = -1;      // first generated token appended (time to first token)
  double finish_time = -1;
  int64_t num_preemptions = 0;  // times it was swapped out or sent back to recompute

  int64_t prompt_len() const { return static_cast<int64_t>(prompt.size()); }
  int64_t output_len() const { return static_cast<int64_t>(output.size()); }
  int64_t len() const { return prompt_len() + output_len(); }  // prompt + output
  // Token at position p (prompt, then output). Throws InvalidArgument if p is out of range.
  int32_t token(int64_t position) const;
  int32_t last_token() const { return token(len() - 1); }
  // Positions still to compute: 1 while decoding, the rest of the prompt (or, after a preemption
  // by recompute, of prompt + output) while prefilling.
  int64_t num_uncomputed_tokens() const { return len() - num_computed_tokens; }
  // Prefill = still computing the prompt (or recomputing prompt + output after a preemption);
  // decode = computing only the last sampled token.
  bool is_prefill() const { return output.empty() || num_computed_tokens < len() - 1; }
  bool is_finished() const { return status == SeqStatus::finished; }
};

}  // namespace day18
