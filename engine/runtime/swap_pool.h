// The CPU swap pool: per-layer KV caches in pinned host memory (plain host memory on the CPU
// backend) that the scheduler swaps preempted sequences' blocks out to and back in from
// (docs/scheduler.md). run_swaps() runs a step's block copies with swap_blocks, layer by layer,
// between the model's GPU caches and this pool; the executor enqueues them on its cache stream,
// after the previous step's compute (which may still write those blocks) and before this step's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "engine/core/memory.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/scheduler.h"

namespace day18 {

class SwapPool {
 public:
  // num_cpu_blocks >= 0 (0: no pool; a step that swaps then throws).
  SwapPool(const LlamaModel& model, int64_t num_cpu_blocks);
  SwapPool(const SwapPool&) = delete;
  SwapPool& operator=(const SwapPool&) = delete;

  // swap_blocks of out.swap_out (GPU -> CPU) then out.swap_in (CPU -> GPU), every layer's K and V,
  // asynchronous on `stream` (CUDA) or synchronous (CPU backend).
  void run_swaps(const SchedulerOutput& out, cudaStream_t stream);

  // Per-layer caches [num_cpu_blocks, kv_heads, block_size, head_dim].
  const std::vector<Tensor>& key_caches() const { return cpu_k_views_; }
  const std::vector<Tensor>& value_caches() const { return cpu_v_views_; }
  size_t bytes() const { return cpu_k_.nbytes() + cpu_v_.nbytes(); }

 private:
  const LlamaModel& model_;
  OwnedTensor cpu_k_, cpu_v_;  // [num_layers, num_cpu_blocks, kv_heads, block_size, head_dim]
  std::vector<Tensor> cpu_k_views_, cpu_v_views_;  // one [num_cpu_blocks, ...] view per layer
};

}  // namespace day18
