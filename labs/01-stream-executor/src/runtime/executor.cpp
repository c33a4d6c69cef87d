// generated from engine/runtime/executor.cpp by scripts/make_labs.py (lab 01);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
// The choreography of one CUDA step (see executor.h): submit() enqueues each stage on its own
// stream, ordered by events only, and returns; wait() is the one place the CPU waits for the GPU.
// The CPU backend is in executor_cpu.cpp, the CUDA graphs in graph_cache.cpp, the swap pool in
// swap_pool.cpp.
#include "engine/runtime/executor.h"

#include <algorithm>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/ops/sampling.h"
#include "engine/runtime/pipeline_kernels.h"

namespace day18 {

StepExecutor::StepExecutor(LlamaModel& model, int64_t num_cpu_blocks, bool cuda_graphs)
    : model_(model),
      swap_pool_(model, num_cpu_blocks),
      graphs_(model, cuda_graphs && model.device() == Device::cuda) {
  const RuntimeLimits& lim = model.limits();
  const bool cuda = is_cuda();
  if (cuda) {
    h2d_ = std::make_unique<Stream>();
    compute_ = std::make_unique<Stream>();
    d2h_ = std::make_unique<Stream>();
    cache_ = std::make_unique<Stream>();
    stream_names_ = trace::StreamNames(
        {{*h2d_, "h2d"}, {*compute_, "compute"}, {*d2h_, "d2h"}, {*cache_, "cache"}});
  }
  const size_t cap =
      InputLayout::make(lim.max_num_tokens, lim.max_num_seqs, lim.max_blocks_per_seq()).bytes;
  for (Slot& s : slots_) {
    if (cuda) s.dev_in = Buffer(cap, Storage::device);
    s.sampled_dev =
        OwnedTensor({lim.max_num_seqs}, DType::i32, cuda ? Storage::device : Storage::host);
    s.sampled_host =
        OwnedTensor({lim.max_num_seqs}, DType::i32, cuda ? Storage::pinned : Storage::host);
    if (cuda) s.ev = std::make_unique<StepEvents>();
  }
}

void StepExecutor::submit(const SchedulerOutput& out, const PreparedStep& step,
                          const PreparedStep* prev, const void* staging) {
  if (!is_cuda()) return submit_cpu(out, step, prev, staging);
  Slot& slot = slots_[step.parity];
  const bool has_swaps = !out.swap_out.empty() || !out.swap_in.empty();
  if (has_swaps) enqueue_swaps(out, slot);
  enqueue_h2d(step, staging, slot);
  enqueue_compute(step, prev, has_swaps, slot);
  enqueue_d2h(step, slot);
  has_last_compute_ = true;
  last_parity_ = step.parity;
}

// ---- Cache stream: swaps after the previous step's compute (which may still write those blocks).
void StepExecutor::enqueue_swaps(const SchedulerOutput& out, Slot& slot) {
  if (has_last_compute_) cache_->wait(slots_[last_parity_].ev->compute_done);
  swap_pool_.run_swaps(out, *cache_);
  slot.ev->cache_done.record(*cache_);
}

// ---- H2D: ONE copy of the packed staging. This parity's device buffer was last read by the
// compute of two steps ago: wait for it before overwriting.
void StepExecutor::enqueue_h2d(const PreparedStep& step, const void* staging, Slot& slot) {
  // LAB 01 BEGIN h2d: wait for the buffer, h2d_start, ONE copy, h2d_done (about 6 lines)
  // TODO lab 01 task 2: The H2D stage: one copy of the pinned staging on the h2d stream
  // (labs/01-stream-executor/README.md, Task 2)
  throw ::day18::LabNotImplemented("01", 2, "h2d", "labs/01-stream-executor/README.md");
  // LAB 01 END h2d
}

// ---- Compute: device-side waits only, then placeholders, forward + sampling (or graph replay).
void StepExecutor::enqueue_compute(const PreparedStep& step, const PreparedStep* prev,
                                   bool has_swaps, Slot& slot) {
  StepEvents& ev = *slot.ev;
  // LAB 01 BEGIN compute_wait: device-side waits for inputs, swaps, the last D2H (about 3 lines)
  // TODO lab 01 task 3: The compute stream's waits: events, never the host
  // (labs/01-stream-executor/README.md, Task 3)
  throw ::day18::LabNotImplemented("01", 3, "compute_wait", "labs/01-stream-executor/README.md");
  // LAB 01 END compute_wait
  // A graph replay step: capture + instantiate + upload (first use of a bucket) happen HERE,
  // before compute_start is recorded, so the CPU time they take (tens of ms) is not counted in
  // this step's compute time (the event would otherwise stamp before the capture started).
  slot.graph = graphs_.use_graph(step);
  slot.capture_ms = -1;
  const cudaGraphExec_t graph =
      slot.graph ? graphs_.get(step, *compute_, &slot.capture_ms) : nullptr;
  ev.compute_start.record(*compute_);

  // Async scheduling: this step's decode tokens are the previous step's samples, still on the
  // device (the CPU has not seen them yet).
  StepTensors in =
      StepTensors::view(step.layout, slot.dev_in.data(), Device::cuda, step.max_context_len);
  in.batch.query_start_loc = step.query_start_loc;  // host: where the prefill kernel may run
  if (step.feeds_from_device) {
    DAY18_REQUIRE(prev != nullptr, "submit: the step feeds tokens but no previous step is given");
    const Slot& ps = slots_[prev->parity];
    feed_sampled_tokens(in.batch.token_ids, in.src_rows,
                        ps.sampled_dev.view().slice0(0, prev->layout.num_rows), *compute_);
  }

  const int64_t S = step.layout.num_rows;
  if (graph) {  // the graph reads static buffers: copy the inputs in and the samples out
    graphs_.replay(graph, slot.dev_in.data(), step.layout.bytes, *compute_);
    ev.forward_done.record(*compute_);
    graphs_.copy_samples(slot.sampled_dev.data(), S, *compute_);
  } else {
    const Tensor& logits = model_.forward(in.batch, *compute_);
    ev.forward_done.record(*compute_);
    {
      DAY18_NVTX_RANGE("Sampling");
      sample(slot.sampled_dev.view().slice0(0, S), logits, in.temperature, in.top_k, in.top_p,
             in.seeds, in.offsets, *compute_);
    }
    graphs_.eager_step_ran();
  }
  ev.compute_done.record(*compute_);
}

// ---- D2H: the sampled tokens to pinned host, once the compute is done.
void StepExecutor::enqueue_d2h(const PreparedStep& step, Slot& slot) {
  // LAB 01 BEGIN d2h: wait for compute_done, samples to pinned host, d2h_done (about 6 lines)
  // TODO lab 01 task 4: The D2H stage: the samples back to pinned host after compute_done
  // (labs/01-stream-executor/README.md, Task 4)
  throw ::day18::LabNotImplemented("01", 4, "d2h", "labs/01-stream-executor/README.md");
  // LAB 01 END d2h
}

// ---- CPU wait: on the step's last event only; every earlier stage is ordered before it.
std::vector<int32_t> StepExecutor::wait(const PreparedStep& step, StepTimes* times) {
  if (!is_cuda()) return wait_cpu(step, times);
  Slot& slot = slots_[step.parity];
  // LAB 01 BEGIN cpu_wait: wait on d2h_done only, then the step's times (about 14 lines)
  // TODO lab 01 task 5: The CPU's only wait: d2h_done, then the step's times
  // (labs/01-stream-executor/README.md, Task 5)
  throw ::day18::LabNotImplemented("01", 5, "cpu_wait", "labs/01-stream-executor/README.md");
  // LAB 01 END cpu_wait
  return entry_tokens(step, slot.sampled_host.ptr<int32_t>());
}

std::vector<int32_t> StepExecutor::entry_tokens(const PreparedStep& step, const int32_t* sampled) {
  std::vector<int32_t> tokens;
  tokens.reserve(static_cast<size_t>(step.num_sampling));
  for (int32_t row : step.row_of_entry)
    if (row >= 0) tokens.push_back(sampled[row]);
  return tokens;
}

}  // namespace day18
