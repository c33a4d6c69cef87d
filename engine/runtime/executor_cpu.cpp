// The CPU backend's step: the stages of the CUDA choreography (executor.cpp) run synchronously
// inside submit(), with no streams, no events and no graphs, and are timed on the host clock
// (StepTimes::host_start_s / host_end_s put the compute on the engine's timeline). wait() has
// nothing to wait for: the samples are ready when submit() returns.
#include <chrono>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/ops/sampling.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/pipeline_kernels.h"

namespace day18 {
namespace {
double ms_between(std::chrono::steady_clock::time_point a,
                  std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double seconds_of(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}
}  // namespace

void StepExecutor::submit_cpu(const SchedulerOutput& out, const PreparedStep& step,
                              const PreparedStep* prev, const void* staging) {
  Slot& slot = slots_[step.parity];
  if (!out.swap_out.empty() || !out.swap_in.empty()) swap_pool_.run_swaps(out, nullptr);
  // The model reads the staging itself: there is no device copy.
  StepTensors in =
      StepTensors::view(step.layout, const_cast<void*>(staging), Device::cpu, step.max_context_len);
  in.batch.query_start_loc = step.query_start_loc;
  if (step.feeds_from_device) {
    DAY18_REQUIRE(prev != nullptr, "submit: the step feeds tokens but no previous step is given");
    feed_sampled_tokens(in.batch.token_ids, in.src_rows,
                        slots_[prev->parity].sampled_dev.view().slice0(0, prev->layout.num_rows));
  }
  StepTimes& t = slot.host_times;
  const auto t0 = std::chrono::steady_clock::now();
  t.host_start_s = seconds_of(t0);
  const Tensor& logits = model_.forward(in.batch);
  const auto t1 = std::chrono::steady_clock::now();
  t.model_ms = ms_between(t0, t1);
  {
    DAY18_NVTX_RANGE("Sampling");
    sample(slot.sampled_dev.view().slice0(0, in.batch.num_seqs()), logits, in.temperature, in.top_k,
           in.top_p, in.seeds, in.offsets);
  }
  const auto t2 = std::chrono::steady_clock::now();
  t.sampling_ms = ms_between(t1, t2);
  t.compute_ms = t.model_ms + t.sampling_ms;
  t.host_end_s = seconds_of(t2);
}

std::vector<int32_t> StepExecutor::wait_cpu(const PreparedStep& step, StepTimes* times) {
  const Slot& slot = slots_[step.parity];
  if (times) *times = slot.host_times;
  return entry_tokens(step, slot.sampled_dev.ptr<int32_t>());
}

}  // namespace day18
