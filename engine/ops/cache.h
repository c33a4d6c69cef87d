// Public KV-cache ops: one call per op for both backends (dispatch on the tensors' device).
// Every argument is validated here; errors name the argument and the value.
//
// Layouts:
//   key / value              [num_tokens, num_kv_heads, head_size]  f32/f16/bf16; the token
//                            stride may exceed num_kv_heads*head_size (a view into fused qkv)
//   key_cache / value_cache  [num_blocks, num_kv_heads, block_size, head_size], contiguous
//   slot_mapping             [num_tokens] int64; slot = block_id * block_size + offset; -1 = skip
//   block_mapping            [num_pairs, 2] int64 (src block id, dst block id)
//
// Out-of-range indices. The CPU backend checks every index before writing anything and throws
// InvalidArgument ("slot_mapping[5] = 9999 is out of range ..."). A CUDA kernel cannot throw: it
// skips the bad row (never writing out of bounds) and counts it in a device-side error record.
//   - checked mode (check_slots / check_blocks = true; the registry's default, so `day18 kernel`,
//     the tour and the golden test use it): the op waits for its stream, reads the record and
//     throws naming the index tensor, the first bad row and its value. Costs a sync: not for the
//     hot path.
//   - unchecked (the default of these C++ calls, for the engine's step loop): nothing waits; the
//     bad rows are counted in a process-wide record per device, read (and reset) with
//     take_index_errors("slot_mapping") whenever the caller wants to know, e.g. once per step in
//     a debug build.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/kernels/cache.h"

namespace day18 {

// Writes each token's K and V into its slot of the paged cache (in place on the caches). Tokens
// whose slot is -1 (padding) are skipped; their cache contents stay untouched.
void reshape_and_cache(const Tensor& key, const Tensor& value, const Tensor& key_cache,
                       const Tensor& value_cache, const Tensor& slot_mapping,
                       bool check_slots = false, cudaStream_t stream = nullptr);

// Copies block src -> dst in EVERY layer's key and value cache (copy-on-write after a fork), in
// one launch on CUDA. key_caches[l] / value_caches[l]: layer l's caches, all the same shape and
// dtype, at most cuda::kMaxCopyBlocksLayers layers. block_mapping on the caches' device. The dst
// ids must be distinct and not also appear as src (true of copy-on-write pairs): the CUDA pairs
// run in parallel, so chained pairs would race.
void copy_blocks(const std::vector<Tensor>& key_caches, const std::vector<Tensor>& value_caches,
                 const Tensor& block_mapping, bool check_blocks = false,
                 cudaStream_t stream = nullptr);
// The same on stacked caches [num_layers, num_blocks, num_kv_heads, block_size, head_size].
void copy_blocks(const Tensor& key_caches, const Tensor& value_caches, const Tensor& block_mapping,
                 bool check_blocks = false, cudaStream_t stream = nullptr);

// Swaps blocks out (device cache -> pinned host cache) or in (pinned host -> device): src[s] ->
// dst[d] for each (s, d) row of block_mapping, a HOST int64 [num_pairs, 2] tensor (every id is
// checked here). src and dst have the same dtype and block shape; their num_blocks may differ.
// Batched and asynchronous on `stream`: returns before the copy is done (wait on the stream or an
// event before touching the host side). The host side must be pinned (page-locked): pageable
// memory cannot be copied asynchronously, and is refused. Both on the host: a plain CPU copy.
void swap_blocks(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                 cudaStream_t stream = nullptr);
// Same, with the strategy chosen (benchmarks, tests).
void swap_blocks(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                 SwapStrategy strategy, cudaStream_t stream);

// THE TRAP, kept to measure it: the seed's swap, one synchronous copy per block. Same results as
// swap_blocks (host side may be pageable here); returns when the copies are done.
void swap_blocks_naive(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                       cudaStream_t stream = nullptr);

// ---- device-side index errors (shared with the rotary family's positions) ----
struct IndexErrors {
  int64_t count = 0;       // bad rows met
  int64_t first_row = -1;  // lowest bad row index, -1 if none
};

// Reads and resets the process-wide record that unchecked CUDA launches indexing through
// `index_name` ("slot_mapping", "block_mapping", "positions") count into, on the current device.
// Synchronizes `stream`.
IndexErrors take_index_errors(const std::string& index_name, cudaStream_t stream = nullptr);

namespace detail {
// The process-wide record of `index_name` on the current device ([2] int64, see kernels/cache.h).
Tensor index_error_record(const std::string& index_name);
// Checked mode: runs `launch` with a fresh record on `stream`, waits, returns what it counted.
IndexErrors run_checked(const std::function<void(const Tensor& errors)>& launch,
                        cudaStream_t stream);
// Element `row` of a 1-D/2-D int64 device tensor (for error messages). Synchronous.
int64_t read_device_i64(const Tensor& t, int64_t index, cudaStream_t stream);
// "slot_mapping[row] = value is out of range: the cache has N slots (...); -1 means skip" plus
// `tail` (e.g. how many were bad and what happened to them): one wording for every op that
// writes the paged cache through slot_mapping.
std::string bad_slot_message(int64_t row, int64_t value, const Tensor& key_cache,
                             const std::string& tail = "");
}  // namespace detail

}  // namespace day18
