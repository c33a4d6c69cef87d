// One decode step of the engine's LlamaModel at a chosen batch and context, for the batch-size
// and precision experiments: the batch's device tensors, the step captured once in a CUDA graph
// (what the engine replays for decode), and the step's kernels per family from a CUPTI trace.
//
//   DecodeBatch b = make_decode_batch(model, /*batch=*/64, /*position=*/1023, tokens);
//   StepGraph g(model, b, stream);          // eager step first, then the capture
//   g.launch(stream);                       // one step
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/core/memory.h"
#include "engine/runtime/llama_model.h"

namespace day18::tuning {

// B sequences, one new token each at `position` (so context = position + 1); sequence b owns
// the KV blocks [b * blocks_per_seq, (b + 1) * blocks_per_seq) of the model's cache.
struct DecodeBatch {
  OwnedTensor token_ids, positions, slot_mapping, seq_idx, context_lens, block_tables,
      logits_indices;
  ForwardBatch view;
};
DecodeBatch make_decode_batch(const LlamaModel& model, int64_t batch, int64_t position,
                              const std::vector<int32_t>& tokens);

// The random token ids of a step: B ids in [0, vocab).
std::vector<int32_t> random_tokens(int64_t batch, int64_t vocab, uint64_t seed);

class StepGraph {
 public:
  StepGraph(LlamaModel& model, const ForwardBatch& batch, cudaStream_t stream);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;
  void launch(cudaStream_t stream) const;

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// `steps` runs of fn under CUPTI: per-family kernel milliseconds per step (attention / gemm /
// norm / other, by kernel_family()), and GPU busy = kernel time (union) / (steps x step_ms).
// Empty families and busy 0 when CUPTI cannot be used.
struct StepKernels {
  std::map<std::string, double> family_ms;  // per step
  double kernel_ms = 0;                     // per step, union of kernel intervals
  bool traced = false;
};
StepKernels trace_step_kernels(const std::function<void()>& run_steps, int steps);
// "attention", "gemm", "norm" or "other" for a kernel_family().
std::string family_group(const std::string& family);

}  // namespace day18::tuning
