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
  StepEvents& ev = *slot.ev;
  h2d_->wait(ev.compute_done);
  ev.h2d_start.record(*h2d_);
  DAY18_CUDA_CHECK(cudaMemcpyAsync(slot.dev_in.data(), staging, step.layout.bytes,
                                   cudaMemcpyHostToDevice, *h2d_));
  ev.h2d_done.record(*h2d_);
  // LAB 01 END h2d
}

// ---- Compute: device-side waits only, then placeholders, forward + sampling (or graph replay).
void StepExecutor::enqueue_compute(const PreparedStep& step, const PreparedStep* prev,
                                   bool has_swaps, Slot& slot) {
  StepEvents& ev = *slot.ev;
  // LAB 01 BEGIN compute_wait: device-side waits for inputs, swaps, the last D2H (about 3 lines)
  compute_->wait(ev.h2d_done);                   // the inputs are on the device
  if (has_swaps) compute_->wait(ev.cache_done);  // the swapped-in blocks are in place
  compute_->wait(ev.d2h_done);  // the previous D2H of this parity's samples is done
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
  StepEvents& ev = *slot.ev;
  d2h_->wait(ev.compute_done);
  DAY18_CUDA_CHECK(cudaMemcpyAsync(slot.sampled_host.data(), slot.sampled_dev.data(),
                                   static_cast<size_t>(step.layout.num_rows) * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, *d2h_));
  ev.d2h_done.record(*d2h_);
  // LAB 01 END d2h
}

// ---- CPU wait: on the step's last event only; every earlier stage is ordered before it.
std::vector<int32_t> StepExecutor::wait(const PreparedStep& step, StepTimes* times) {
  if (!is_cuda()) return wait_cpu(step, times);
  Slot& slot = slots_[step.parity];
  // LAB 01 BEGIN cpu_wait: wait on d2h_done only, then the step's times (about 14 lines)
  StepEvents& ev = *slot.ev;
  ev.d2h_done.synchronize();  // the only place the CPU waits for the GPU
  if (times) {
    StepTimes t;
    t.h2d_ms = Event::elapsed_ms(ev.h2d_start, ev.h2d_done);
    t.compute_ms = Event::elapsed_ms(ev.compute_start, ev.compute_done);
    t.model_ms = Event::elapsed_ms(ev.compute_start, ev.forward_done);
    t.sampling_ms = Event::elapsed_ms(ev.forward_done, ev.compute_done);
    t.d2h_ms = Event::elapsed_ms(ev.compute_done, ev.d2h_done);
    t.graph = slot.graph;
    t.captured = slot.capture_ms >= 0;
    t.capture_ms = std::max(slot.capture_ms, 0.0);
    *times = t;
  }
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
