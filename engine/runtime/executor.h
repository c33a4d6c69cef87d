// The stream executor: runs one scheduled step on four CUDA streams, synchronized by events only
// (no cudaDeviceSynchronize, no stream synchronize in the step):
//
//   cache   : waits for the previous step's compute, swap_blocks(swap_out) then swap_blocks(swap_in)
//             between the model's per-layer KV caches and a pinned CPU swap cache  -> cache_done
//   h2d     : waits until the device input buffer of this parity is free, ONE cudaMemcpyAsync of
//             the packed pinned staging (InputBatch)                                -> h2d_done
//   compute : waits h2d_done and cache_done (device-side waits), feeds placeholder tokens from the
//             previous step's samples (feed_sampled_tokens), model.forward, sample  -> compute_done
//             (or: D2D into the CUDA graph's static inputs, graph replay, D2D of the samples out)
//   d2h     : waits compute_done, copies the sampled tokens to pinned host          -> d2h_done
//   CPU     : waits ONLY on d2h_done (wait()).
//
// Everything is per parity (step % 2), so step N+1 can be enqueued while step N runs: its
// staging, device inputs and sampled-token buffers are the other parity's. On the CPU backend the
// same calls run synchronously (streams and events are skipped; no graphs).
//
// CUDA graphs (--cuda-graphs on): decode-only steps are padded to a batch bucket (1, 2, 4, ...,
// 256, capped at max_num_seqs) and planned for a context bucket (max_context_len rounded up to a
// power of two >= 256, capped at max_model_len; eager decode steps use the same bucket, so eager
// and replay run the very same kernels and give bit-identical tokens). One graph per (batch,
// context) bucket, captured lazily on first use after at least one eager step (cuBLAS handles,
// lazily allocated error records). The graph reads STATIC device buffers: the compute stream
// copies the parity buffer into them (one D2D of a few KB) before the replay, and copies the
// samples out of the static output afterwards — outside the graph, so both parities share it.
// Measuring: a bucket's capture, instantiation and upload run before the step's compute_start
// event is recorded, so a step's compute time never includes the capture (it once did: the
// event stamped, then the CPU captured for tens of ms, inflating the first replay's time). The
// GPU has nothing of this step queued meanwhile, so the capture shows up as idle between the
// previous step's compute_done and this one's compute_start: the step says so (StepTimes::
// captured, capture_ms) and the engine leaves it out of the steady-state decode idle.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "engine/core/memory.h"
#include "engine/runtime/input_batch.h"
#include "engine/runtime/llama_model.h"

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
  ~StepExecutor();
  StepExecutor(const StepExecutor&) = delete;
  StepExecutor& operator=(const StepExecutor&) = delete;

  bool is_cuda() const { return model_.device() == Device::cuda; }
  bool cuda_graphs() const { return graphs_on_; }
  // The padding bucket of a decode-only step of `n` sequences (0 when graphs are off).
  int64_t graph_bucket(int64_t n) const;
  // The context bucket decode steps are planned for.
  int64_t context_bucket(int64_t max_ctx) const;

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
  const std::vector<Tensor>& cpu_key_caches() const { return cpu_k_views_; }
  const std::vector<Tensor>& cpu_value_caches() const { return cpu_v_views_; }
  size_t swap_cache_bytes() const { return cpu_k_.nbytes() + cpu_v_.nbytes(); }
  int64_t num_graphs() const { return static_cast<int64_t>(graphs_.size()); }
  int64_t num_graph_replays() const { return graph_replays_; }
  // Captures so far (one per bucket) and their CPU wall clock in total (ms).
  int64_t num_graph_captures() const { return static_cast<int64_t>(graphs_.size()); }
  double graph_capture_ms() const { return capture_ms_; }
  cudaStream_t compute_stream() const { return compute_ ? compute_->get() : nullptr; }

 private:
  struct Slot {
    Buffer dev_in;                // device copy of the packed inputs (CUDA) [capacity]
    OwnedTensor sampled_dev;      // [max_num_seqs] i32 on the model's device
    OwnedTensor sampled_host;     // [max_num_seqs] i32 pinned (CUDA) / host
    std::unique_ptr<StepEvents> ev;
    StepTimes host_times;         // CPU backend
    bool graph = false;
    double capture_ms = -1;  // >= 0: this step captured its graph, in that many ms
  };
  struct Graph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
  };
  void run_swaps(const SchedulerOutput& out);
  void compute_eager(const StepTensors& in, Slot& slot, cudaStream_t s);
  // The step's graph, captured first if its bucket is new (then *capture_ms = the CPU wall clock
  // of capture + instantiate + upload; untouched otherwise).
  Graph& graph_for(const PreparedStep& step, double* capture_ms);

  LlamaModel& model_;
  bool graphs_on_ = false;
  bool warmed_up_ = false;  // an eager step ran (graphs may be captured)
  int64_t graph_replays_ = 0;
  double capture_ms_ = 0;
  std::unique_ptr<Stream> h2d_, compute_, d2h_, cache_;
  Slot slots_[2];
  OwnedTensor cpu_k_, cpu_v_;  // [num_layers, num_cpu_blocks, kv_heads, block_size, head_dim]
  std::vector<Tensor> cpu_k_views_, cpu_v_views_;
  bool has_last_compute_ = false;
  int last_parity_ = 0;
  // CUDA graphs: static inputs / outputs and one graph per (batch bucket, context bucket).
  Buffer graph_in_;
  OwnedTensor graph_out_;
  std::map<std::pair<int64_t, int64_t>, Graph> graphs_;
};

}  // namespace day18
