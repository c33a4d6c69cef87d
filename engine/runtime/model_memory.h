// What a LlamaModel will allocate, computed from its config and limits before anything is
// allocated, and the check that it fits: LlamaModel::from_preset / from_config / from_folder call
// check_model_fits first, so a preset too big for the machine (llama-8b fp32 on a 24 GB host, a KV
// cache of 10^8 blocks) is refused in milliseconds with the numbers, instead of the OOM killer
// ending the process a minute later.
//
//   ModelMemory m = estimate_model_memory(config, DType::f16, Device::cuda, limits);
//   m.weights + m.kv_cache + m.scratch   // bytes on the model's device
#pragma once

#include <cstdint>
#include <string>

#include "engine/core/system_memory.h"
#include "engine/runtime/model_config.h"

namespace day18 {

struct ModelMemory {
  double weights = 0;   // every weight tensor (ModelConfig::weight_bytes)
  double kv_cache = 0;  // K and V caches: num_blocks * kv_cache_bytes_per_block
  double scratch = 0;   // activations for max_num_tokens, logits, RoPE table, attention workspace
  double total() const { return weights + kv_cache + scratch; }
};

ModelMemory estimate_model_memory(const ModelConfig& config, DType dtype, Device device,
                                  const RuntimeLimits& limits);

// Throws InvalidArgument when need.total() exceeds `available` (the numbers, what to change).
// `what` names the model ("llama-8b (float32)").
void check_memory_fits(const ModelMemory& need, Device device, const AvailableMemory& available,
                       const std::string& what);

// estimate + check against this machine (host RAM for the CPU backend, the device's free memory
// for CUDA). Skipped when the environment sets DAY18_SKIP_MEMORY_CHECK=1 (an estimate can be
// wrong: overcommitted hosts, unified memory).
void check_model_fits(const ModelConfig& config, DType dtype, Device device,
                      const RuntimeLimits& limits);

// The engine's swap pool (num_cpu_blocks KV blocks in pinned host memory, runtime/swap_pool.h) is
// not part of the model: checked on its own against the host's memory, before it is pinned.
// Throws InvalidArgument naming --num-cpu-blocks; skipped like check_model_fits.
void check_swap_pool_fits(const ModelConfig& config, DType dtype, int64_t block_size,
                          int64_t num_cpu_blocks);

}  // namespace day18
