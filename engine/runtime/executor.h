// The stream executor: runs one scheduled step on four CUDA streams, synchronized by events only
// (no cudaDeviceSynchronize, no stream synchronize in the step):
//
//   cache   : waits for the previous step's compute, swap_blocks(swap_out) then
//   swap_blocks(swap_in)
//             between the model's per-layer KV caches and the pinned CPU swap pool  -> cache_done
//   h2d     : waits until the device input buffer of this parity is free, ONE cudaMemcpyAsync of
//             the packed pinned staging (InputBatch)                                -> h2d_done
//   compute : waits h2d_done and cache_done (device-side waits), feeds placeholder tokens from the
//             previous step's samples (feed_sampled_tokens), model.forward, sample  -> compute_done
//             (or: D2D into the CUDA graph's static inputs, graph replay, D2D of the samples out)
//   d2h     : waits compute_done, copies the sampled tokens to pinned host          -> d2h_done
//   CPU     : waits ONLY on d2h_done (wait()).
//
// Everything is per parity (step % 2), so step N+1 can be enqueued while step N runs: its
// staging, device inputs and sampled-token buffers are the other parity's.
//
// Files, one idea each:
//   executor.cpp      the choreography above: submit() (enqueue_swaps, enqueue_h2d,
//                     enqueue_compute, enqueue_d2h) and wait()
//   executor_cpu.cpp  the CPU backend: the same stages run synchronously in submit() (no streams,
//                     no events, no graphs), timed on the host clock
//   graph_cache.h     the CUDA graphs (--cuda-graphs on): buckets, capture, static buffers, replay
//   swap_pool.h       the pinned CPU swap pool and its swap_blocks calls
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/core/memory.h"
#include "engine/profiling/range_recorder.h"
#include "engine/runtime/graph_cache.h"
#include "engine/runtime/input_batch.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/swap_pool.h"

namespace day18 {

// GPU times of one step from its events (ms), filled in by wait(); CPU backend: host times.
struct StepTimes {
  double h2d_ms = 0, model_ms = 0, sampling_ms = 0, d2h_ms = 0, compute_ms = 0;
  bool graph = false;     // replayed a CUDA graph
  bool captured = false;  // captured that graph first (the bucket's first use): a one-off
  double capture_ms = 0;  // CPU wall clock of capture + instantiate + upload (0 if not captured)
  // CPU backend: steady_clock seconds (since its epoch) when the forward began / sampling ended.
  double host_start_s = 0, host_end_s = 0;
};

class StepExecutor {
 public:
  StepExecutor(LlamaModel& model, int64_t num_cpu_blocks, bool cuda_graphs);
  StepExecutor(const StepExecutor&) = delete;
  StepExecutor& operator=(const StepExecutor&) = delete;

  bool is_cuda() const { return model_.device() == Device::cuda; }
  bool cuda_graphs() const { return graphs_.enabled(); }
  // The padding bucket of a decode-only step of `n` sequences (used by graph replays and by eager
  // decode steps padded like them, EngineConfig::pad_decode).
  int64_t graph_bucket(int64_t n) const { return graphs_.batch_bucket(n); }
  // The context bucket decode steps are planned for.
  int64_t context_bucket(int64_t max_ctx) const { return graphs_.context_bucket(max_ctx); }

  // Enqueues the step (swaps, H2D, compute, D2H) and returns at once on the CUDA backend.
  // `prev` is the step still in flight whose samples this step's placeholders come from.
  // `staging`: the InputBatch's packed buffer of step.parity.
  void submit(const SchedulerOutput& out, const PreparedStep& step, const PreparedStep* prev,
              const void* staging);
  // Waits on the step's d2h event; returns one token per SchedulerOutput entry that samples, in
  // order (what Scheduler::process_outputs takes), and the step's times.
  std::vector<int32_t> wait(const PreparedStep& step, StepTimes* times = nullptr);

  // The events of the last submitted step of `parity` (timing events; overlap test).
  struct StepEvents {
    Event h2d_start, h2d_done, cache_done, compute_start, forward_done, compute_done, d2h_done;
  };
  const StepEvents& events(int parity) const { return *slots_[parity].ev; }
  // Per-layer pinned CPU swap caches [num_cpu_blocks, kv_heads, block_size, head_dim].
  const std::vector<Tensor>& cpu_key_caches() const { return swap_pool_.key_caches(); }
  const std::vector<Tensor>& cpu_value_caches() const { return swap_pool_.value_caches(); }
  size_t swap_cache_bytes() const { return swap_pool_.bytes(); }
  int64_t num_graphs() const { return graphs_.size(); }
  int64_t num_graph_replays() const { return graphs_.num_replays(); }
  // Captures so far (one per bucket) and their CPU wall clock in total (ms).
  int64_t num_graph_captures() const { return graphs_.size(); }
  double graph_capture_ms() const { return graphs_.capture_ms(); }
  cudaStream_t compute_stream() const { return compute_ ? compute_->get() : nullptr; }

 private:
  // What one parity owns; step N and N+1 never share it.
  struct Slot {
    Buffer dev_in;                   // device copy of the packed inputs (CUDA) [capacity]
    OwnedTensor sampled_dev;         // [max_num_seqs] i32 on the model's device
    OwnedTensor sampled_host;        // [max_num_seqs] i32 pinned (CUDA) / host
    std::unique_ptr<StepEvents> ev;  // CUDA
    StepTimes host_times;            // CPU backend
    bool graph = false;
    double capture_ms = -1;  // >= 0: this step captured its graph, in that many ms
  };
  // The CUDA stages of submit(), in order (executor.cpp).
  void enqueue_swaps(const SchedulerOutput& out, Slot& slot);
  void enqueue_h2d(const PreparedStep& step, const void* staging, Slot& slot);
  void enqueue_compute(const PreparedStep& step, const PreparedStep* prev, bool has_swaps,
                       Slot& slot);
  void enqueue_d2h(const PreparedStep& step, Slot& slot);
  // The CPU backend (executor_cpu.cpp).
  void submit_cpu(const SchedulerOutput& out, const PreparedStep& step, const PreparedStep* prev,
                  const void* staging);
  std::vector<int32_t> wait_cpu(const PreparedStep& step, StepTimes* times);
  // One token per SchedulerOutput entry that samples, read from the step's sampled rows.
  static std::vector<int32_t> entry_tokens(const PreparedStep& step, const int32_t* sampled);

  LlamaModel& model_;
  std::unique_ptr<Stream> h2d_, compute_, d2h_, cache_;  // CUDA
  trace::StreamNames stream_names_;  // their names in `day18 trace` (forgotten before they go)
  Slot slots_[2];
  SwapPool swap_pool_;
  GraphCache graphs_;
  bool has_last_compute_ = false;  // a step was submitted: slots_[last_parity_] holds its events
  int last_parity_ = 0;
};

}  // namespace day18
