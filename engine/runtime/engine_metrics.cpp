#include "engine/runtime/engine_metrics.h"

#include <algorithm>
#include <chrono>

namespace day18 {
namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

bool DecodeIdleMeter::counts(const StepRecord& prev, const StepRecord& next) {
  const bool decodes =
      prev.num_prefills == 0 && prev.num_seqs > 0 && next.num_prefills == 0 && next.num_seqs > 0;
  return decodes && !next.gpu.captured && !next.swaps;
}

bool DecodeIdleMeter::add(const StepRecord& next) {
  const bool counted = has_prev_ && counts(prev_, next);
  if (counted) {
    const double gap = std::max(0.0, next.compute_start - prev_.compute_end);
    ++pairs_;
    idle_ms_ += gap;
    span_ms_ += std::max(gap, next.compute_end - prev_.compute_end);
    if (lower_.empty() || gap <= lower_.top())
      lower_.push(gap);
    else
      upper_.push(gap);
    if (lower_.size() > upper_.size() + 1) {
      upper_.push(lower_.top());
      lower_.pop();
    } else if (upper_.size() > lower_.size()) {
      lower_.push(upper_.top());
      upper_.pop();
    }
  }
  prev_ = next;
  has_prev_ = true;
  return counted;
}

double DecodeIdleMeter::median_gap_ms() const {
  if (lower_.empty()) return 0;
  return lower_.size() > upper_.size() ? lower_.top() : 0.5 * (lower_.top() + upper_.top());
}

void EngineMeter::start(bool cuda, cudaStream_t compute_stream) {
  t0_ = now_s();
  if (cuda) {
    origin_ = std::make_unique<Event>();
    origin_->record(compute_stream);
  }
}

void EngineMeter::submitted(StepRecord& rec, const SchedulerOutput& out) {
  ahead_ms_ += rec.scheduler_ms + rec.prepare_ms + rec.submit_ms;
  rec.swaps = !out.swap_out.empty() || !out.swap_in.empty();
  rec.step = out.step;
  rec.num_seqs = static_cast<int64_t>(out.seqs.size());
  rec.num_tokens = out.num_batched_tokens;
  rec.num_prefills = out.num_prefills;
}

void EngineMeter::finished(StepRecord rec, const SchedulerOutput& out,
                           const StepExecutor::StepEvents* ev, int64_t graph_replays) {
  rec.end_wall_s = now_s() - t0_;
  if (ev) {
    rec.h2d_start = Event::elapsed_ms(*origin_, ev->h2d_start);
    rec.h2d_end = Event::elapsed_ms(*origin_, ev->h2d_done);
    rec.compute_start = Event::elapsed_ms(*origin_, ev->compute_start);
    rec.compute_end = Event::elapsed_ms(*origin_, ev->compute_done);
  } else {  // the host clock around forward + sampling (run inside submit)
    rec.compute_start = (rec.gpu.host_start_s - t0_) * 1e3;
    rec.compute_end = (rec.gpu.host_end_s - t0_) * 1e3;
  }
  rec.graph = rec.gpu.graph;
  const double prev_end = records_.empty() ? 0 : records_.back().end_wall_s;
  // See StepRecord::wall_ms. The interval since the previous step's outputs holds the CPU work of
  // the steps submitted since (ahead_ms_: in async mode the next step, whose compute on the CPU
  // backend runs inside submit); this step's own was charged to an earlier interval.
  rec.wall_ms = (rec.end_wall_s - prev_end) * 1e3 - ahead_ms_ +
                (rec.scheduler_ms + rec.prepare_ms + rec.submit_ms) - rec.gpu.capture_ms;
  ahead_ms_ = 0;
  EngineMetrics& m = metrics_;
  ++m.steps;
  m.scheduler_ms += rec.scheduler_ms;
  m.prepare_ms += rec.prepare_ms;
  m.wait_ms += rec.wait_ms;
  m.process_ms += rec.process_ms;
  m.model_ms += rec.gpu.graph ? rec.gpu.compute_ms : rec.gpu.model_ms;
  m.sampling_ms += rec.gpu.graph ? 0 : rec.gpu.sampling_ms;
  m.h2d_ms += rec.gpu.h2d_ms;
  m.d2h_ms += rec.gpu.d2h_ms;
  for (const ScheduledSeq& s : out.seqs) {
    (s.is_prefill ? m.prefill_tokens : m.decode_tokens) += s.num_tokens;
    m.generated_tokens += s.do_sample ? 1 : 0;
  }
  (out.num_prefills > 0 ? m.prefill_wall_s : m.decode_wall_s) += rec.wall_ms / 1e3;
  m.wall_s = rec.end_wall_s;
  m.graph_replays = graph_replays;
  m.graph_captures += rec.gpu.captured ? 1 : 0;
  m.graph_capture_ms += rec.gpu.capture_ms;
  // GPU busy over the whole run, and in the steady decode state.
  if (first_compute_start_ < 0) first_compute_start_ = rec.compute_start;
  last_compute_end_ = rec.compute_end;
  busy_ms_ += rec.compute_end - rec.compute_start;
  m.gpu_busy_fraction_all = last_compute_end_ > first_compute_start_
                                ? busy_ms_ / (last_compute_end_ - first_compute_start_)
                                : 1.0;
  rec.steady_decode = decode_idle_.add(rec);
  m.decode_steady_pairs = decode_idle_.pairs();
  m.decode_gap_median_us = decode_idle_.median_gap_ms() * 1e3;
  m.decode_idle_fraction = decode_idle_.idle_fraction();
  m.gpu_busy_fraction = m.decode_steady_pairs > 0 ? 1 - m.decode_idle_fraction : 0;
  records_.push_back(rec);
}

}  // namespace day18
