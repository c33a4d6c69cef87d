// CPU oracle and CPU backend of the KV-cache op family (plain loops, same argument order as the
// CUDA launchers in engine/kernels/cache.h). Bytes are copied as they are: no rounding anywhere.
//
// Unlike the CUDA kernels, the CPU backend checks every index as it goes and throws
// InvalidArgument naming the tensor, the row and the value (e.g. "slot_mapping[5] = 4096 is out
// of range ..."); rows before the bad one have been written by then.
#pragma once

#include <vector>

#include "engine/core/tensor.h"

namespace day18::cpu {

void reshape_and_cache(
    const Tensor& key,            // [num_tokens, num_kv_heads, head_size]
    const Tensor& value,          // [num_tokens, num_kv_heads, head_size]
    const Tensor& key_cache,      // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& value_cache,    // [num_blocks, num_kv_heads, block_size, head_size]
    const Tensor& slot_mapping);  // [num_tokens] int64, -1 = skip

// Pairs are applied in order (the CUDA kernel applies them in parallel: callers keep the dst
// ids distinct and never also a src, as copy-on-write pairs are).
void copy_blocks(const std::vector<Tensor>& key_caches,    // num_layers x [num_blocks, ...]
                 const std::vector<Tensor>& value_caches,  // num_layers x [num_blocks, ...]
                 const Tensor& block_mapping);             // [num_pairs, 2] int64 (src, dst)

// Host-to-host block copy (the CPU backend's swap; both caches in host memory).
void swap_blocks(const Tensor& src,  // [num_src_blocks, num_kv_heads, block_size, head_size]
                 const Tensor& dst,  // [num_dst_blocks, num_kv_heads, block_size, head_size]
                 const Tensor& block_mapping);  // [num_pairs, 2] int64 (src, dst)

}  // namespace day18::cpu
