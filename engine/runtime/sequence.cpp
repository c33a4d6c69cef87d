#include "engine/runtime/sequence.h"

#include <cmath>

#include "engine/core/error.h"

namespace day18 {

void validate_sampling_params(const SamplingParams& p, std::string_view what) {
  DAY18_REQUIRE(std::isfinite(p.temperature) && p.temperature >= 0.f, what,
                ": temperature must be finite and >= 0 (0 = greedy), got ", p.temperature);
  DAY18_REQUIRE(p.top_k >= 0, what, ": top_k must be >= 0 (0 = off), got ", p.top_k);
  DAY18_REQUIRE(p.top_p > 0.f && p.top_p <= 1.f, what, ": top_p must be in (0, 1] (1 = off), got ",
                p.top_p);
  DAY18_REQUIRE(p.max_tokens >= 1, what, ": max_tokens must be >= 1, got ", p.max_tokens);
  DAY18_REQUIRE(p.eos_token_id >= -1, what, ": eos_token_id must be >= 0 or -1 (none), got ",
                p.eos_token_id);
}

const char* to_string(SeqStatus s) {
  switch (s) {
    case SeqStatus::waiting:
      return "waiting";
    case SeqStatus::running:
      return "running";
    case SeqStatus::swapped:
      return "swapped";
    case SeqStatus::finished:
      return "finished";
  }
  return "?";
}

const char* to_string(FinishReason r) {
  switch (r) {
    case FinishReason::none:
      return "none";
    case FinishReason::length:
      return "length";
    case FinishReason::stop:
      return "stop";
    case FinishReason::model_len:
      return "model_len";
  }
  return "?";
}

int32_t Sequence::token(int64_t position) const {
  DAY18_REQUIRE(position >= 0 && position < len(), "sequence ", id, ": position ", position,
                " out of range [0, ", len(), ")");
  return position < prompt_len() ? prompt[position] : output[position - prompt_len()];
}

}  // namespace day18
