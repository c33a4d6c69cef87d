// CUDA launchers of the KV-cache op family: reshape_and_cache (write this step's K/V into the
// paged cache through slot_mapping), copy_blocks (copy-on-write of blocks, every layer in one
// launch) and swap_blocks (move blocks between the GPU cache and a pinned host cache).
//
// Layouts (DESIGN.md):
//   key_cache / value_cache  [num_blocks, num_kv_heads, block_size, head_size]  f32/f16/bf16
//   key / value              [num_tokens, num_kv_heads, head_size] (token stride may be larger,
//                            e.g. a view into the fused qkv projection; the rest contiguous)
//   slot_mapping             [num_tokens] int64, slot = block_id * block_size + offset, -1 = skip
//
// These ops only move bytes, so the kernels copy 16-byte chunks whatever the dtype (no
// dispatch_float: a template per dtype would compile the same copy three times).
//
// Launchers validate nothing (engine/ops/cache.h does) and never write out of bounds: an index
// that is out of range is skipped and counted in `errors` (see IndexErrors below).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "engine/core/tensor.h"

namespace day18 {
// How the batched swap_blocks moves its blocks (in namespace day18, not cuda, so that calls
// passing one find the public day18::swap_blocks without ambiguity).
enum class SwapStrategy : uint8_t {
  automatic,    // copy_engine when merged runs average >= 128 KiB in / 512 KiB out (or <= 2
                //   runs), else zero_copy
  zero_copy,    // one kernel reads/writes the pinned host cache through its device-mapped address
  copy_engine,  // runs of consecutive blocks merged; one cudaMemcpyBatchAsync (DMA engines)
};
const char* swap_strategy_name(SwapStrategy s);

// `count` consecutive blocks: src, src + 1, ... go to dst, dst + 1, ... One copy of count x the
// block's bytes instead of count copies (engine/kernels/swap_copy.cpp; lab 04 task 4).
struct BlockRun {
  int64_t src = 0, dst = 0, count = 0;
  bool operator==(const BlockRun&) const = default;
};

// The runs of a HOST int64 [num_pairs, 2] block mapping of (src, dst) ids, in the mapping's order:
// a pair extends the run before it when its src AND its dst both come right after that run's
// last ones; otherwise it starts a new run. Nothing is sorted (a mapping listed out of order is
// not merged) and ids are not checked (the op did). An empty mapping gives no runs.
std::vector<BlockRun> coalesce_block_runs(const Tensor& block_mapping);
}  // namespace day18

namespace day18::cuda {

// Device-side record of out-of-range indices met by a kernel: an int64 [2] device tensor
//   errors[0] += number of bad indices,  errors[1] = min(errors[1], lowest bad row index).
// Initialise with {0, INT64_MAX} (reset_index_errors). An undefined Tensor disables recording.
inline constexpr int64_t kNoBadIndex = INT64_MAX;
void reset_index_errors(const Tensor& errors,  // [2] int64 device
                        cudaStream_t stream);

// Thread x of a CUDA block owns 16-byte chunk x of a token's num_kv_heads x head_size row (one
// thread per chunk, up to 512); the grid (at most one resident wave) strides over the tokens,
// 4 tokens per pass: each thread loads 4 slots + 4 K chunks + 4 V chunks before its first store,
// so loads are in flight while earlier ones land, and no block waits for its slot to start.
void reshape_and_cache(
    const Tensor& key,           // [num_tokens, num_kv_heads, head_size]
    const Tensor& value,         // [num_tokens, num_kv_heads, head_size]
    const Tensor& key_cache,     // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& value_cache,   // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& slot_mapping,  // [num_tokens] int64, -1 = skip
    const Tensor& errors,        // [2] int64 device (may be undefined)
    cudaStream_t stream);

// Most layers copy_blocks takes in one launch: the per-layer cache addresses travel as a kernel
// parameter (2 KiB), so the op needs no pointer array copied to the device first.
inline constexpr int kMaxCopyBlocksLayers = 128;

// grid = (num_pairs, num_layers, 2 [key, value]); each CUDA block copies one whole cache block
// (num_kv_heads * block_size * head_size elements, contiguous in this layout) with 16-byte
// chunks, 4 loads per thread in flight before their stores. Pairs with an id outside [0,
// num_blocks) are skipped and counted in `errors` (errors[1] = the pair's index).
void copy_blocks(const std::vector<Tensor>&
                     key_caches,  // num_layers x [num_blocks, num_kv_heads, block_size, head_size]
                 const std::vector<Tensor>& value_caches,  // num_layers x same
                 const Tensor& block_mapping,  // [num_pairs, 2] int64 device: (src, dst) block ids
                 const Tensor& errors,         // [2] int64 device (may be undefined)
                 cudaStream_t stream);

// Batched, asynchronous on `stream`. One side is a device cache, the other a pinned host cache
// (either direction); `block_mapping` is a HOST int64 [num_pairs, 2] tensor of (src, dst) ids,
// already validated. zero_copy: grid = (chunks of a block, pairs); 256 threads, each moving
// 4 x 16 bytes per chunk (4 loads issued before the stores: PCIe reads need many in flight).
// The pair list travels as a kernel parameter (up to 480 pairs per launch).
void swap_blocks(const Tensor& src,  // [num_src_blocks, num_kv_heads, block_size, head_size]
                 const Tensor& dst,  // [num_dst_blocks, num_kv_heads, block_size, head_size]
                 const Tensor& block_mapping,  // [num_pairs, 2] int64 host
                 SwapStrategy strategy, cudaStream_t stream);

// The copy-engine half of swap_blocks (engine/kernels/swap_copy.cpp; lab 04 task 5): every run
// in ONE cudaMemcpyBatchAsync on `stream` (the legacy default stream, which that call refuses,
// and a single run get one cudaMemcpyAsync per run). Asynchronous: returns before the copies run.
// `block_bytes` = the bytes of one block of src (and of dst).
void swap_runs_copy_engine(const Tensor& src, const Tensor& dst, const std::vector<BlockRun>& runs,
                           size_t block_bytes, cudaStream_t stream);

// THE TRAP (the seed's version, kept to measure it): one synchronous copy per block, so the CPU
// waits for every 32 KiB copy and the copy engines idle between them. Correct, slow.
void swap_blocks_naive(const Tensor& src, const Tensor& dst,
                       const Tensor& block_mapping,  // [num_pairs, 2] int64 host
                       cudaStream_t stream);

}  // namespace day18::cuda
