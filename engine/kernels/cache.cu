// KV-cache kernels: reshape_and_cache, copy_blocks, swap_blocks (batched) and swap_blocks_naive
// (the seed's trap). See cache.h for layouts. swap_blocks' copy-engine path and the coalescing of
// its block mapping into runs are host code, in swap_copy.cpp (lab 04).
//
// All three are pure data movement: the kernels copy opaque 16-byte chunks (uint4). A 2-byte
// fallback (uint16_t) serves rows whose byte size is not a multiple of 16 (e.g. fp16 head_size
// 36); every supported dtype is a whole number of 2-byte units.
#include "engine/kernels/cache.h"

#include <algorithm>
#include <climits>

#include "engine/core/device.h"
#include "engine/core/error.h"
#include "engine/kernels/vec16.cuh"

namespace day18::cuda {
namespace {

// Records a bad index (called by one thread per bad row).
__device__ inline void record_bad_index(long long* errors, long long row) {
  if (errors == nullptr) return;
  atomicAdd(reinterpret_cast<unsigned long long*>(&errors[0]), 1ull);
  atomicMin(&errors[1], row);
}

long long* errors_ptr(const Tensor& errors) {
  return errors.data() ? static_cast<long long*>(errors.data()) : nullptr;
}

// ---------------------------------------------------------------- reshape_and_cache
// Tokens each thread carries per pass: their slots and K/V chunks are all loaded before the
// first store, so a thread keeps 2 x kRacTokensPerPass 16-byte loads (+ the slots) in flight.
inline constexpr int kRacTokensPerPass = 4;

// V = uint4 (16 bytes) or uint16_t. Row = one head of one token: `row` units of V.
// Thread x of a CUDA block owns chunk c = x (+ blockDim.x ...) of every token's
// [num_kv_heads, row] chunks; the block walks tokens blockIdx.x, + gridDim.x, ... (grid-stride),
// kRacTokensPerPass tokens per pass.
template <typename V>
__global__ void reshape_and_cache_kernel(
    const V* __restrict__ key,    // [num_tokens, key_stride] in units of V
    const V* __restrict__ value,  // [num_tokens, value_stride]
    V* __restrict__ key_cache,    // [num_blocks, num_kv_heads, block_size, row]
    V* __restrict__ value_cache,
    const int64_t* __restrict__ slot_mapping,  // [num_tokens]
    long long* errors, int64_t key_stride, int64_t value_stride, int64_t num_tokens,
    int num_kv_heads, int row, int block_size, int64_t num_slots) {
  // What the body must do, whatever its loop order: for every token t < num_tokens (blocks stride
  // over tokens: gridDim.x may be smaller than num_tokens) and every chunk c < num_kv_heads * row
  // of its row (threads stride over chunks), copy key[t * key_stride + c] and the same of value to
  // (block, head c / row, offset, c % row) of the caches, block / offset from slot_mapping[t].
  // Slot -1: write nothing. Any other slot outside [0, num_slots): write nothing, and call
  // record_bad_index(errors, t) from one thread of the token (c == 0).
  // LAB 03 BEGIN cache_kernel [device]: grid-stride over tokens, block-stride over chunks
  constexpr int U = kRacTokensPerPass;
  const int n = num_kv_heads * row;
  const int64_t head_stride = int64_t(block_size) * row;  // cache stride of one kv head
  const int64_t cache_block_stride = head_stride * num_kv_heads;
  const int64_t step = gridDim.x;
  for (int c = threadIdx.x; c < n; c += blockDim.x) {
    const int h = c / row;
    const int64_t dst_c = h * head_stride + (c - h * row);  // chunk c within (block, offset 0)
    for (int64_t t0 = blockIdx.x; t0 < num_tokens; t0 += step * U) {
      int64_t slot[U];
      V kr[U], vr[U];
      // Loads first, for every token of the pass: the K/V loads do not wait for the slot (a
      // padding token's row is read for nothing; the rows exist, so the read is safe).
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t t = t0 + u * step;
        slot[u] = -1;
        if (t < num_tokens) {
          slot[u] = slot_mapping[t];  // same address across the block: one broadcast load
          kr[u] = key[t * key_stride + c];
          vr[u] = value[t * value_stride + c];
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t s = slot[u];
        if (s == -1) continue;  // padding token (or past the end): nothing to write
        if (s < 0 || s >= num_slots) {
          if (c == 0) record_bad_index(errors, t0 + u * step);  // once per bad token
          continue;                                             // never write out of bounds
        }
        // 32-bit division when the slot fits (always, in practice): 64-bit division is ~100
        // instructions on the path between the loads and the stores.
        int64_t block, offset;
        if (s <= int64_t(UINT32_MAX)) {
          const uint32_t b = uint32_t(s) / uint32_t(block_size);
          block = b;
          offset = int64_t(uint32_t(s) - b * uint32_t(block_size));
        } else {
          block = s / block_size;
          offset = s - block * block_size;
        }
        const int64_t dst = block * cache_block_stride + offset * row + dst_c;
        key_cache[dst] = kr[u];
        value_cache[dst] = vr[u];
      }
    }
  }
  // LAB 03 END cache_kernel
}

template <typename V>
void launch_reshape_and_cache(const Tensor& key, const Tensor& value, const Tensor& key_cache,
                              const Tensor& value_cache, const Tensor& slot_mapping,
                              const Tensor& errors, cudaStream_t stream) {
  const int64_t num_tokens = key.size(0);
  const int num_kv_heads = int(key.size(1));
  const int64_t esz = dtype_size(key.dtype());
  const int row = int(key.size(2) * esz / sizeof(V));
  const int block_size = int(key_cache.size(2));
  const int64_t num_slots = key_cache.size(0) * block_size;
  const int n = num_kv_heads * row;
  // Enough threads for one pass over a token's chunks (8 heads x 128 fp16 -> 128 threads), at
  // least a warp, at most 512 (wider rows loop over chunks).
  const int threads = std::clamp((n + 31) / 32 * 32, 32, 512);
  // Grid: one wave at most (every CUDA block resident at once, no tail of late blocks), each
  // block carrying kRacTokensPerPass tokens per pass; but small batches spread over the SMs
  // (one token per block) rather than piling on a few.
  const int sms = sm_count();
  int per_sm = 0;
  DAY18_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, reshape_and_cache_kernel<V>, threads, 0));
  const int64_t passes = (num_tokens + kRacTokensPerPass - 1) / kRacTokensPerPass;
  const int64_t grid =
      std::min<int64_t>(std::max<int64_t>(passes, std::min<int64_t>(num_tokens, sms)),
                        int64_t(sms) * std::max(per_sm, 1));
  reshape_and_cache_kernel<V><<<dim3(unsigned(grid)), threads, 0, stream>>>(
      static_cast<const V*>(key.data()), static_cast<const V*>(value.data()),
      static_cast<V*>(key_cache.data()), static_cast<V*>(value_cache.data()),
      slot_mapping.ptr<int64_t>(), errors_ptr(errors), key.stride(0) * esz / int64_t(sizeof(V)),
      value.stride(0) * esz / int64_t(sizeof(V)), num_tokens, num_kv_heads, row, block_size,
      num_slots);
  DAY18_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- copy_blocks
struct LayerPointers {
  void* key[kMaxCopyBlocksLayers];
  void* value[kMaxCopyBlocksLayers];
};

inline constexpr int kCopyUnroll = 4;

template <typename V>
__global__ void copy_blocks_kernel(const LayerPointers layers,
                                   const int64_t* __restrict__ block_mapping,  // [num_pairs, 2]
                                   long long* errors, int64_t block_units, int64_t num_blocks) {
  const int64_t pair = blockIdx.x;
  const int64_t src = block_mapping[2 * pair], dst = block_mapping[2 * pair + 1];
  if (src < 0 || src >= num_blocks || dst < 0 || dst >= num_blocks) {
    // Counted once per pair (by layer 0's key copy), skipped everywhere.
    if (threadIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) record_bad_index(errors, pair);
    return;
  }
  V* cache = static_cast<V*>(blockIdx.z == 0 ? layers.key[blockIdx.y] : layers.value[blockIdx.y]);
  const V* from = cache + src * block_units;
  V* to = cache + dst * block_units;
  // kCopyUnroll loads issued before their stores (src != dst blocks never overlap, but the
  // compiler cannot know it and would otherwise keep one load in flight per thread).
  const int64_t pass = int64_t(blockDim.x) * kCopyUnroll;
  for (int64_t i0 = threadIdx.x; i0 < block_units; i0 += pass) {
    V r[kCopyUnroll];
#pragma unroll
    for (int u = 0; u < kCopyUnroll; ++u) {
      const int64_t i = i0 + int64_t(u) * blockDim.x;
      if (i < block_units) r[u] = from[i];
    }
#pragma unroll
    for (int u = 0; u < kCopyUnroll; ++u) {
      const int64_t i = i0 + int64_t(u) * blockDim.x;
      if (i < block_units) to[i] = r[u];
    }
  }
}

// ---------------------------------------------------------------- swap_blocks (zero copy)
inline constexpr int kSwapThreads = 256;
inline constexpr int kSwapUnroll = 4;  // 16-byte loads in flight per thread before its stores
// Pairs per launch: the list rides in the kernel parameters, kept under the classic 4 KiB
// parameter limit (480 x 8 bytes + pointers) rather than relying on CUDA 12.1's larger limit.
inline constexpr int kSwapMaxPairs = 480;

// The `automatic` rule, from BM_swap_blocks on an H100 (PCIe; 8 MiB in 256 blocks of 32 KiB,
// % of one big pinned cudaMemcpy in the same direction):
//   average run     32K    128K   256K   512K   2M     8M
//   out zero_copy   92     92     92     92     92     92
//   out copy_engine 55     86     90     92     95     96
//   in  zero_copy   89     89     89     89     89     89
//   in  copy_engine 54     91     94     94     94     94
// Each copy carries ~0.5 us of setup, more than a 32 KiB transfer; zero_copy pays none but is
// capped by PCIe reads from the SMs. Copy engine wins from 128 KiB runs into the GPU and from
// 512 KiB runs out of it (there zero_copy's posted writes run close to the link's speed).
inline constexpr size_t kSwapCopyEngineMinRunBytesIn = size_t(128) << 10;
inline constexpr size_t kSwapCopyEngineMinRunBytesOut = size_t(512) << 10;
// A mapping that merges into this few runs costs about a kernel launch as copies either way;
// the copy engine then leaves the SMs alone.
inline constexpr size_t kSwapCopyEngineMaxShortRuns = 2;

struct SwapPairs {
  int32_t src[kSwapMaxPairs];
  int32_t dst[kSwapMaxPairs];
};

// One side of src/dst is pinned host memory seen through its device-mapped address: the loads
// (host->device) or stores (device->host) cross PCIe / NVLink-C2C as the kernel runs.
// (No __restrict__ on src/dst: plain loads and stores for the mapped host side.)
template <typename V>
__global__ void swap_blocks_kernel(const V* src, V* dst, const SwapPairs pairs,
                                   int64_t block_units) {
  const int p = blockIdx.y;
  const V* from = src + int64_t(pairs.src[p]) * block_units;
  V* to = dst + int64_t(pairs.dst[p]) * block_units;
  const int64_t chunk = int64_t(kSwapThreads) * kSwapUnroll;
  const int64_t base = int64_t(blockIdx.x) * chunk + threadIdx.x;
  V r[kSwapUnroll];
#pragma unroll
  for (int u = 0; u < kSwapUnroll; ++u) {
    const int64_t i = base + int64_t(u) * kSwapThreads;
    if (i < block_units) r[u] = from[i];
  }
#pragma unroll
  for (int u = 0; u < kSwapUnroll; ++u) {
    const int64_t i = base + int64_t(u) * kSwapThreads;
    if (i < block_units) to[i] = r[u];
  }
}

void* device_address(void* p) {
  cudaPointerAttributes a{};
  DAY18_CUDA_CHECK(cudaPointerGetAttributes(&a, p));
  return a.devicePointer;
}

template <typename V>
void swap_zero_copy(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                    size_t block_bytes, cudaStream_t stream) {
  const V* s = static_cast<const V*>(src.is_cuda() ? src.data() : device_address(src.data()));
  V* d = static_cast<V*>(dst.is_cuda() ? dst.data() : device_address(dst.data()));
  const int64_t units = int64_t(block_bytes / sizeof(V));
  const int64_t chunk = int64_t(kSwapThreads) * kSwapUnroll;
  const unsigned chunks = unsigned((units + chunk - 1) / chunk);
  const int64_t* m = block_mapping.ptr<int64_t>();
  const int64_t n = block_mapping.size(0);
  for (int64_t first = 0; first < n; first += kSwapMaxPairs) {
    const int count = int(std::min<int64_t>(kSwapMaxPairs, n - first));
    SwapPairs pairs;  // ids validated < 2^31 by the op
    for (int i = 0; i < count; ++i) {
      pairs.src[i] = int32_t(m[2 * (first + i)]);
      pairs.dst[i] = int32_t(m[2 * (first + i) + 1]);
    }
    swap_blocks_kernel<V>
        <<<dim3(chunks, unsigned(count)), kSwapThreads, 0, stream>>>(s, d, pairs, units);
    DAY18_CHECK_LAUNCH();
  }
}

}  // namespace

void reset_index_errors(const Tensor& errors, cudaStream_t stream) {
  static const long long init[2] = {0, LLONG_MAX};
  // Pageable source: the runtime stages it before returning, so `init` may be a static.
  DAY18_CUDA_CHECK(
      cudaMemcpyAsync(errors.data(), init, sizeof(init), cudaMemcpyHostToDevice, stream));
}

void reshape_and_cache(const Tensor& key, const Tensor& value, const Tensor& key_cache,
                       const Tensor& value_cache, const Tensor& slot_mapping, const Tensor& errors,
                       cudaStream_t stream) {
  if (key.size(0) == 0) return;
  const int64_t esz = dtype_size(key.dtype());
  const bool vec = key.size(2) * esz % 16 == 0 && key.stride(0) * esz % 16 == 0 &&
                   value.stride(0) * esz % 16 == 0 && aligned16(key.data()) &&
                   aligned16(value.data()) && aligned16(key_cache.data()) &&
                   aligned16(value_cache.data());
  if (vec)
    launch_reshape_and_cache<uint4>(key, value, key_cache, value_cache, slot_mapping, errors,
                                    stream);
  else
    launch_reshape_and_cache<uint16_t>(key, value, key_cache, value_cache, slot_mapping, errors,
                                       stream);
}

void copy_blocks(const std::vector<Tensor>& key_caches, const std::vector<Tensor>& value_caches,
                 const Tensor& block_mapping, const Tensor& errors, cudaStream_t stream) {
  const int64_t num_pairs = block_mapping.size(0);
  const int num_layers = int(key_caches.size());
  if (num_pairs == 0 || num_layers == 0) return;
  LayerPointers layers{};
  bool vec = true;
  for (int l = 0; l < num_layers; ++l) {
    layers.key[l] = key_caches[l].data();
    layers.value[l] = value_caches[l].data();
    vec = vec && aligned16(layers.key[l]) && aligned16(layers.value[l]);
  }
  const Tensor& c = key_caches[0];
  const int64_t block_bytes = c.size(1) * c.size(2) * c.size(3) * int64_t(dtype_size(c.dtype()));
  vec = vec && block_bytes % 16 == 0;
  const dim3 grid(unsigned(num_pairs), unsigned(num_layers), 2);
  const int threads = 256;  // a 32 KiB block = 8 passes of 256 x 16 bytes
  if (vec)
    copy_blocks_kernel<uint4><<<grid, threads, 0, stream>>>(
        layers, block_mapping.ptr<int64_t>(), errors_ptr(errors), block_bytes / 16, c.size(0));
  else
    copy_blocks_kernel<uint16_t><<<grid, threads, 0, stream>>>(
        layers, block_mapping.ptr<int64_t>(), errors_ptr(errors), block_bytes / 2, c.size(0));
  DAY18_CHECK_LAUNCH();
}

void swap_blocks(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                 SwapStrategy strategy, cudaStream_t stream) {
  if (block_mapping.size(0) == 0) return;
  const size_t block_bytes = src.nbytes() / size_t(src.size(0));
  const std::vector<BlockRun> runs = coalesce_block_runs(block_mapping);
  const Tensor& host = src.is_cuda() ? dst : src;
  const bool mapped = device_address(host.data()) != nullptr;
  if (strategy == SwapStrategy::automatic) {
    // Long runs: the DMA engines move them at full link speed and leave the SMs to compute.
    // Short runs: each copy's setup outlasts its transfer, so one kernel moving every block at
    // once wins. See kSwapCopyEngineMinRunBytesIn/Out.
    const size_t avg_run_bytes = block_mapping.size(0) * block_bytes / runs.size();
    const size_t min_run_bytes =
        dst.is_cuda() ? kSwapCopyEngineMinRunBytesIn : kSwapCopyEngineMinRunBytesOut;
    strategy =
        !mapped || runs.size() <= kSwapCopyEngineMaxShortRuns || avg_run_bytes >= min_run_bytes
            ? SwapStrategy::copy_engine
            : SwapStrategy::zero_copy;
  }
  if (strategy == SwapStrategy::copy_engine || !mapped) {
    swap_runs_copy_engine(src, dst, runs, block_bytes, stream);
    return;
  }
  const bool vec = block_bytes % 16 == 0 && aligned16(src.data()) && aligned16(dst.data());
  if (vec)
    swap_zero_copy<uint4>(src, dst, block_mapping, block_bytes, stream);
  else
    swap_zero_copy<uint16_t>(src, dst, block_mapping, block_bytes, stream);
}

void swap_blocks_naive(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                       cudaStream_t stream) {
  const size_t block_bytes = src.nbytes() / size_t(src.size(0));
  const int64_t* m = block_mapping.ptr<int64_t>();
  for (int64_t i = 0; i < block_mapping.size(0); ++i) {
    // TRAP: a copy and a full CPU wait per block.
    DAY18_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst.data()) + m[2 * i + 1] * block_bytes,
                                     static_cast<const char*>(src.data()) + m[2 * i] * block_bytes,
                                     block_bytes, cudaMemcpyDefault, stream));
    DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
}

}  // namespace day18::cuda

namespace day18 {
const char* swap_strategy_name(SwapStrategy s) {
  switch (s) {
    case SwapStrategy::automatic:
      return "automatic";
    case SwapStrategy::zero_copy:
      return "zero_copy";
    case SwapStrategy::copy_engine:
      return "copy_engine";
  }
  return "?";
}
}  // namespace day18
