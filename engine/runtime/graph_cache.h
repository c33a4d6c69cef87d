// The CUDA-graph cache (--cuda-graphs on): one graph of a decode step's forward + sampling per
// (batch bucket, context bucket), captured lazily and replayed by the executor (executor.cpp).
//
// Buckets: decode-only steps are padded to a batch bucket (1, 2, 4, ..., 256, capped at
// max_num_seqs) and planned for a context bucket (max_context_len rounded up to a power of two
// >= 256, capped at max_model_len). Eager decode steps use the same buckets (pad_decode), so eager
// and replay run the very same kernels and give bit-identical tokens.
//
// Capture: on first use of a bucket, and only after at least one eager step ran (cuBLAS handles,
// lazily allocated error records exist by then; a capture must not allocate). The graph reads
// STATIC device buffers: replay() copies the step's parity input buffer into them (one D2D of a few
// KB) before the launch, and copy_samples() copies the samples out of the static output afterwards
// (outside the graph, so both parities share one graph).
//
// Measuring: a bucket's capture, instantiation and upload run on the CPU before the step's
// compute_start event is recorded, so a step's compute time never includes the capture (it once
// did: the event stamped, then the CPU captured for tens of ms, inflating the first replay's
// time). The GPU has nothing of this step queued meanwhile, so the capture shows up as idle
// between the previous step's compute_done and this one's compute_start: the step says so
// (StepTimes::captured, capture_ms) and the engine leaves it out of the steady-state decode idle.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <utility>

#include "engine/core/memory.h"
#include "engine/runtime/input_batch.h"
#include "engine/runtime/llama_model.h"

namespace day18 {

class GraphCache {
 public:
  // `enabled` needs a CUDA model; only then are the static buffers allocated.
  GraphCache(LlamaModel& model, bool enabled);
  ~GraphCache();
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  bool enabled() const { return enabled_; }
  // The padding bucket of a decode-only step of `n` sequences, and the context bucket decode steps
  // are planned for (also used for eager decode steps, see the header comment).
  int64_t batch_bucket(int64_t n) const;
  int64_t context_bucket(int64_t max_ctx) const;

  // Whether `step` replays a graph: graphs on, a decode-only step, and an eager step ran before.
  bool use_graph(const PreparedStep& step) const {
    return enabled_ && warmed_up_ && step.decode_only;
  }
  void eager_step_ran() { warmed_up_ = true; }

  // The step's graph, captured, instantiated and uploaded (on `upload_stream`) first if its bucket
  // is new: then *capture_ms = the CPU wall clock of all three; untouched otherwise.
  cudaGraphExec_t get(const PreparedStep& step, cudaStream_t upload_stream, double* capture_ms);
  // On `stream`: D2D of the step's packed inputs (`bytes` at `inputs`, device) into the static
  // inputs, then the graph launch.
  void replay(cudaGraphExec_t exec, const void* inputs, size_t bytes, cudaStream_t stream);
  // On `stream`: D2D of the first `num_rows` sampled tokens of the static output to `dst` (device).
  void copy_samples(void* dst, int64_t num_rows, cudaStream_t stream) const;

  int64_t size() const { return static_cast<int64_t>(graphs_.size()); }  // = captures so far
  int64_t num_replays() const { return replays_; }
  double capture_ms() const { return capture_ms_; }  // CPU wall clock of all captures (ms)

 private:
  struct Graph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
  };

  LlamaModel& model_;
  bool enabled_ = false;
  bool warmed_up_ = false;  // an eager step ran (graphs may be captured)
  int64_t replays_ = 0;
  double capture_ms_ = 0;
  Buffer graph_in_;        // static packed inputs (InputLayout) [capacity]
  OwnedTensor graph_out_;  // static sampled tokens [max_num_seqs] i32
  std::map<std::pair<int64_t, int64_t>, Graph> graphs_;  // (num_tokens, max_context_len) -> graph
};

}  // namespace day18
