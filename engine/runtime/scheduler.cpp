#include "engine/runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "engine/core/error.h"

namespace day18 {

namespace {

// Queues stay sorted by id, i.e. by arrival: FCFS everywhere, "newest" = back.
void insert_by_arrival(std::deque<Sequence*>& q, Sequence* seq) {
  auto it = std::upper_bound(q.begin(), q.end(), seq,
                             [](const Sequence* a, const Sequence* b) { return a->id < b->id; });
  q.insert(it, seq);
}

void append(std::vector<std::pair<int64_t, int64_t>>& dst,
            const std::vector<std::pair<int64_t, int64_t>>& src) {
  dst.insert(dst.end(), src.begin(), src.end());
}

int64_t count_single_token(const std::deque<Sequence*>& q) {
  return std::count_if(q.begin(), q.end(),
                       [](const Sequence* s) { return s->num_uncomputed_tokens() == 1; });
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config, BlockManager& block_manager)
    : config_(config), bm_(block_manager) {
  DAY18_REQUIRE(config_.max_num_seqs >= 1, "max_num_seqs must be >= 1, got ", config_.max_num_seqs);
  DAY18_REQUIRE(config_.max_num_batched_tokens >= config_.max_num_seqs, "max_num_batched_tokens (",
                config_.max_num_batched_tokens, ") must be >= max_num_seqs (", config_.max_num_seqs,
                ") so that every running sequence can decode in every step");
  DAY18_REQUIRE(config_.max_model_len >= 1, "max_model_len must be >= 1, got ",
                config_.max_model_len);
  DAY18_REQUIRE(config_.watermark >= 0 && config_.watermark < 1,
                "watermark must be in [0, 1), got ", config_.watermark);
  watermark_blocks_ = static_cast<int64_t>(
      std::floor(config_.watermark * static_cast<double>(bm_.num_gpu_blocks())));
  t0_ = now();
}

double Scheduler::now() const {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count() - t0_;
}

int64_t Scheduler::add_request(std::vector<int32_t> prompt, SamplingParams params) {
  const int64_t id = next_id_;
  const std::string what = "request " + std::to_string(id);
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  DAY18_REQUIRE(prompt_len > 0, what, ": prompt is empty");
  DAY18_REQUIRE(prompt_len <= config_.max_model_len, what, ": prompt has ", prompt_len,
                " tokens, longer than max_model_len ", config_.max_model_len);
  for (int64_t i = 0; i < prompt_len; ++i)
    DAY18_REQUIRE(prompt[i] >= 0, what, ": prompt token ", i, " is negative (", prompt[i], ")");
  validate_sampling_params(params, what);

  // The most positions whose K/V the request can ever hold: the final sampled token is never fed
  // back, so prompt + max_tokens - 1, or max_model_len - 1 when the length cap stops it first
  // (but at least the whole prompt).
  const int64_t final_len = std::min(prompt_len + params.max_tokens, config_.max_model_len);
  const int64_t max_kv = std::max(prompt_len, final_len - 1);
  if (!bm_.can_ever_fit(max_kv, watermark_blocks_)) {
    const int64_t blocks = bm_.blocks_for_tokens(max_kv);
    const std::string limit =
        blocks > bm_.max_blocks_per_seq()
            ? detail::concat("more than max_blocks_per_seq ", bm_.max_blocks_per_seq())
            : detail::concat("but the GPU pool has ", bm_.num_gpu_blocks(), " blocks (",
                             watermark_blocks_, " kept free by the watermark)");
    DAY18_REQUIRE(false, what, " can never fit: its ", max_kv, " KV positions (prompt ", prompt_len,
                  " + max_tokens ", params.max_tokens, " - 1, capped by max_model_len ",
                  config_.max_model_len, ") need ", blocks, " blocks of ", bm_.block_size(),
                  " tokens, ", limit, "; lower max_tokens or give the KV cache more blocks");
  }

  auto seq = std::make_unique<Sequence>();
  seq->id = id;
  seq->prompt = std::move(prompt);
  seq->params = params;
  seq->status = SeqStatus::waiting;
  seq->arrival_time = now();
  waiting_.push_back(seq.get());  // ids grow, so the queue stays in arrival order
  seqs_.emplace(id, std::move(seq));
  ++next_id_;
  return id;
}

void Scheduler::preempt(Sequence& victim, SchedulerOutput& out) {
  if (bm_.can_swap_out(victim)) {
    const auto mapping = bm_.swap_out(victim);  // status = swapped
    append(out.swap_out, mapping);
    insert_by_arrival(swapped_, &victim);
    ++stats_.num_swap_outs;
    stats_.num_blocks_swapped_out += static_cast<int64_t>(mapping.size());
  } else {
    // The CPU pool is full: drop the KV and recompute it later, prompt and output together.
    bm_.free(victim);
    victim.num_computed_tokens = 0;
    victim.status = SeqStatus::waiting;
    insert_by_arrival(waiting_, &victim);
    ++stats_.num_recomputes;
  }
  ++victim.num_preemptions;
  ++stats_.num_preemptions;
  out.preempted.push_back(&victim);
}

SchedulerOutput Scheduler::schedule() {
  if (config_.async_scheduling && pending_steps_.size() >= 2)
    throw Error(detail::concat("Scheduler::schedule: steps ", pending_steps_.front(), " and ",
                               pending_steps_.back(),
                               " are both unprocessed; async scheduling keeps at most two "
                               "steps outstanding: process_outputs the older one first"));
  if (!config_.async_scheduling && output_pending_)
    throw Error(detail::concat("Scheduler::schedule: step ", next_step_ - 1,
                               " was not processed yet; call process_outputs(out, sampled) "
                               "after every non-empty step before scheduling the next one"));
  SchedulerOutput out;
  std::vector<ScheduledSeq> prefills, decodes;
  int64_t budget = config_.max_num_batched_tokens;
  const double t = now();

  auto add = [&](Sequence* seq, int64_t n) {
    const bool prefill = seq->is_prefill();
    const ScheduledSeq s{seq, n, prefill, seq->num_computed_tokens + n == seq->len()};
    (prefill ? prefills : decodes).push_back(s);
    budget -= n;
    if (seq->first_scheduled_time < 0) seq->first_scheduled_time = t;
  };

  // 1. Running sequences, oldest first. Victims come from the back (newest, not yet scheduled).
  std::deque<Sequence*> still_running;
  while (!running_.empty()) {
    Sequence* seq = running_.front();
    running_.pop_front();
    // Async: a sequence whose pending samples will stop it on length is not scheduled again.
    if (config_.async_scheduling && !seq->output.empty() &&
        (seq->output_len() >= seq->params.max_tokens || seq->len() >= config_.max_model_len)) {
      still_running.push_back(seq);
      continue;
    }
    int64_t n = seq->num_uncomputed_tokens();
    // A prompt chunk gets the budget left after the later single-token (decode) sequences.
    if (n > 1) n = std::min(n, budget - count_single_token(running_));
    if (n <= 0) {  // no budget for this prompt's next chunk: keeps its blocks, waits a step
      still_running.push_back(seq);
      continue;
    }
    bool preempted_self = false;
    while (!bm_.can_allocate(*seq, n)) {
      if (!running_.empty()) {
        Sequence* victim = running_.back();
        running_.pop_back();
        preempt(*victim, out);
      } else {
        preempt(*seq, out);
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) continue;
    bm_.allocate(*seq, n);
    add(seq, n);
    still_running.push_back(seq);
  }
  running_ = std::move(still_running);

  // 2. Swap-in, oldest first, unless this step had to preempt (the pool is tight right now).
  if (out.preempted.empty()) {
    while (!swapped_.empty()) {
      Sequence* seq = swapped_.front();
      if (static_cast<int64_t>(running_.size()) >= config_.max_num_seqs) break;
      const int64_t n = std::min(seq->num_uncomputed_tokens(), budget);
      if (n <= 0) break;
      const int64_t need =
          static_cast<int64_t>(seq->block_table.size()) + bm_.num_required_blocks(*seq, n);
      if (bm_.num_free_gpu_blocks() - need < watermark_blocks_) break;
      swapped_.pop_front();
      const auto mapping = bm_.swap_in(*seq);  // status = running
      append(out.swap_in, mapping);
      ++stats_.num_swap_ins;
      stats_.num_blocks_swapped_in += static_cast<int64_t>(mapping.size());
      bm_.allocate(*seq, n);
      add(seq, n);
      insert_by_arrival(running_, seq);
    }
  }

  // 3. New prefills, oldest first, only when nobody was preempted and nobody is left swapped.
  if (out.preempted.empty() && swapped_.empty()) {
    while (!waiting_.empty()) {
      Sequence* seq = waiting_.front();
      if (static_cast<int64_t>(running_.size()) >= config_.max_num_seqs) break;
      const int64_t n = std::min(seq->num_uncomputed_tokens(), budget);  // chunked prefill
      if (n <= 0) break;
      if (bm_.num_free_gpu_blocks() - bm_.num_required_blocks(*seq, n) < watermark_blocks_) break;
      waiting_.pop_front();
      seq->status = SeqStatus::running;
      bm_.allocate(*seq, n);
      add(seq, n);
      insert_by_arrival(running_, seq);
    }
  }

  out.num_prefills = static_cast<int64_t>(prefills.size());
  out.seqs = std::move(prefills);
  out.seqs.insert(out.seqs.end(), decodes.begin(), decodes.end());
  out.num_batched_tokens = config_.max_num_batched_tokens - budget;
  out.step = next_step_++;
  if (!out.empty()) {
    output_pending_ = true;
    pending_steps_.push_back(out.step);
    ++stats_.num_steps;
    if (config_.async_scheduling) {
      // Advance now, as if the step had run: the next schedule() sees each sampling sequence
      // one (placeholder) token longer.
      for (ScheduledSeq& s : out.seqs) {
        Sequence& seq = *s.seq;
        seq.num_computed_tokens += s.num_tokens;
        ++inflight_[&seq];
        if (s.do_sample) {
          s.output_index = seq.output_len();
          seq.output.push_back(kPlaceholderToken);
        }
      }
    }
  }
  return out;
}

std::vector<Sequence*> Scheduler::process_outputs(const SchedulerOutput& out,
                                                  const std::vector<int32_t>& sampled_tokens) {
  std::vector<Sequence*> finished;
  if (out.empty()) return finished;
  if (config_.async_scheduling) return process_outputs_async(out, sampled_tokens);
  DAY18_REQUIRE(output_pending_ && out.step == next_step_ - 1,
                "process_outputs: got the output of step ", out.step,
                " but the step awaiting its samples is ",
                output_pending_ ? next_step_ - 1 : int64_t{-1}, " (-1 = none)");
  const int64_t num_seqs = static_cast<int64_t>(out.seqs.size());
  const int64_t num_sampling = std::count_if(out.seqs.begin(), out.seqs.end(),
                                             [](const ScheduledSeq& s) { return s.do_sample; });
  const int64_t num_given = static_cast<int64_t>(sampled_tokens.size());
  DAY18_REQUIRE(num_given == num_seqs || num_given == num_sampling, "process_outputs: ", num_given,
                " sampled tokens for ", num_seqs, " scheduled sequences (", num_sampling,
                " of them sample): pass one per sequence or one per sampling one");
  const bool one_per_seq = num_given == num_seqs;

  // Validate everything first, so a bad call changes nothing (and can be retried).
  std::vector<int32_t> token_of(out.seqs.size(), -1);  // the kept sample per entry, -1 = none
  for (int64_t i = 0, next = 0; i < num_seqs; ++i) {
    const ScheduledSeq& s = out.seqs[i];
    const Sequence& seq = *s.seq;
    if (seq.status != SeqStatus::running || seq.num_computed_tokens + s.num_tokens > seq.len() ||
        s.do_sample != (seq.num_computed_tokens + s.num_tokens == seq.len()))
      throw Error(detail::concat("process_outputs: sequence ", seq.id, " (", to_string(seq.status),
                                 ", ", seq.num_computed_tokens, " of ", seq.len(),
                                 " tokens computed) changed since step ", out.step,
                                 " was scheduled"));
    if (!s.do_sample) continue;  // with one token per entry, its entry is ignored
    const int32_t token = sampled_tokens[one_per_seq ? i : next++];
    DAY18_REQUIRE(token >= 0, "sampled token for sequence ", seq.id, " is negative (", token,
                  ") at step ", out.step, ": its logits held a NaN or +inf, so the model's output "
                  "is not finite (NaN or overflowing weights?)");
    token_of[i] = token;
  }

  const double t = now();
  for (int64_t i = 0; i < num_seqs; ++i) {
    const ScheduledSeq& s = out.seqs[i];
    Sequence& seq = *s.seq;
    seq.num_computed_tokens += s.num_tokens;
    (s.is_prefill ? stats_.num_prefill_tokens : stats_.num_decode_tokens) += s.num_tokens;
    if (!s.do_sample) {  // a prompt chunk short of the end: its sample means nothing
      ++stats_.num_partial_prefills;
      continue;
    }
    const int32_t token = token_of[i];
    seq.output.push_back(token);
    ++stats_.num_generated_tokens;
    if (seq.first_token_time < 0) seq.first_token_time = t;

    const SamplingParams& p = seq.params;
    FinishReason reason = FinishReason::none;
    if (!p.ignore_eos && p.eos_token_id >= 0 && token == p.eos_token_id)
      reason = FinishReason::stop;
    else if (seq.output_len() >= p.max_tokens)
      reason = FinishReason::length;
    else if (seq.len() >= config_.max_model_len)
      reason = FinishReason::model_len;
    if (reason != FinishReason::none) {
      finish(seq, reason);
      seq.finish_time = t;
      finished.push_back(&seq);
    }
  }
  output_pending_ = false;
  pending_steps_.clear();
  return finished;
}

std::vector<Sequence*> Scheduler::process_outputs_async(const SchedulerOutput& out,
                                                        const std::vector<int32_t>& sampled) {
  DAY18_REQUIRE(!pending_steps_.empty() && out.step == pending_steps_.front(),
                "process_outputs: got the output of step ", out.step,
                " but the oldest step awaiting its samples is ",
                pending_steps_.empty() ? int64_t{-1} : pending_steps_.front(), " (-1 = none)");
  const int64_t num_seqs = static_cast<int64_t>(out.seqs.size());
  const int64_t num_sampling = std::count_if(out.seqs.begin(), out.seqs.end(),
                                             [](const ScheduledSeq& s) { return s.do_sample; });
  const int64_t num_given = static_cast<int64_t>(sampled.size());
  DAY18_REQUIRE(num_given == num_seqs || num_given == num_sampling, "process_outputs: ", num_given,
                " sampled tokens for ", num_seqs, " scheduled sequences (", num_sampling,
                " of them sample): pass one per sequence or one per sampling one");
  const bool one_per_seq = num_given == num_seqs;
  std::vector<int32_t> token_of(out.seqs.size(), -1);
  for (int64_t i = 0, next = 0; i < num_seqs; ++i) {
    if (!out.seqs[i].do_sample) continue;
    const int32_t token = sampled[one_per_seq ? i : next++];
    if (out.seqs[i].seq->is_finished()) continue;  // stopped earlier: this sample is discarded
    DAY18_REQUIRE(token >= 0, "sampled token for sequence ", out.seqs[i].seq->id,
                  " is negative (", token, ") at step ", out.step, ": its logits held a NaN or "
                  "+inf, so the model's output is not finite (NaN or overflowing weights?)");
    token_of[i] = token;
  }

  std::vector<Sequence*> finished;
  const double t = now();
  for (int64_t i = 0; i < num_seqs; ++i) {
    const ScheduledSeq& s = out.seqs[i];
    Sequence& seq = *s.seq;
    const int64_t left = --inflight_[&seq];
    if (left == 0) inflight_.erase(&seq);
    (s.is_prefill ? stats_.num_prefill_tokens : stats_.num_decode_tokens) += s.num_tokens;
    if (seq.is_finished()) {  // stopped at the previous step: wasted slot, deferred free
      ++stats_.num_discarded_samples;
      if (left == 0) {
        bm_.free(seq);
        deferred_free_.erase(std::find(deferred_free_.begin(), deferred_free_.end(), &seq));
      }
      continue;
    }
    if (!s.do_sample) {
      ++stats_.num_partial_prefills;
      continue;
    }
    const int64_t k = s.output_index;
    DAY18_REQUIRE(k >= 0 && k < seq.output_len() && seq.output[k] == kPlaceholderToken,
                  "process_outputs: sequence ", seq.id, " has no placeholder at output index ", k);
    const int32_t token = token_of[i];
    seq.output[k] = token;
    ++stats_.num_generated_tokens;
    if (seq.first_token_time < 0) seq.first_token_time = t;
    const SamplingParams& p = seq.params;
    FinishReason reason = FinishReason::none;
    if (!p.ignore_eos && p.eos_token_id >= 0 && token == p.eos_token_id)
      reason = FinishReason::stop;
    else if (k + 1 >= p.max_tokens)
      reason = FinishReason::length;
    else if (seq.prompt_len() + k + 1 >= config_.max_model_len)
      reason = FinishReason::model_len;
    if (reason == FinishReason::none) continue;
    seq.output.resize(static_cast<size_t>(k + 1));  // drop a later step's placeholder
    // Free BEFORE the status changes: bm_.free picks the pool from the status, and a sequence
    // can stop here while swapped out (the step scheduled while this one ran preempted it), so
    // its table holds CPU blocks. Freed after `status = finished`, they were handed to the GPU
    // pool, whose ownership check threw. A deferred sequence is in the step in flight, so it is
    // running: its later free is a GPU free either way.
    const bool deferred = inflight_.count(&seq) > 0;  // a later in-flight step writes its blocks
    if (!deferred) bm_.free(seq);
    seq.status = SeqStatus::finished;
    seq.finish_reason = reason;
    seq.finish_time = t;
    for (auto* q : {&running_, &swapped_, &waiting_}) {
      const auto it = std::find(q->begin(), q->end(), &seq);
      if (it != q->end()) q->erase(it);
    }
    ++stats_.num_finished;
    if (deferred) deferred_free_.push_back(&seq);
    finished.push_back(&seq);
  }
  pending_steps_.pop_front();
  output_pending_ = !pending_steps_.empty();
  return finished;
}

void Scheduler::finish(Sequence& seq, FinishReason reason) {
  bm_.free(seq);
  seq.status = SeqStatus::finished;
  seq.finish_reason = reason;
  const auto it = std::find(running_.begin(), running_.end(), &seq);
  if (it != running_.end()) running_.erase(it);
  ++stats_.num_finished;
}

Sequence& Scheduler::sequence(int64_t id) {
  auto it = seqs_.find(id);
  DAY18_REQUIRE(it != seqs_.end(), "unknown request id ", id, " (never added, or released)");
  return *it->second;
}

const Sequence& Scheduler::sequence(int64_t id) const {
  return const_cast<Scheduler*>(this)->sequence(id);
}

void Scheduler::release(int64_t id) {
  Sequence& seq = sequence(id);
  DAY18_REQUIRE(seq.is_finished(), "release: request ", id, " is ", to_string(seq.status),
                ", not finished");
  DAY18_REQUIRE(!inflight_.count(&seq), "release: request ", id,
                " is still in a step whose output was not processed yet");
  seqs_.erase(id);
}

}  // namespace day18
