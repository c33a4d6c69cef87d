// PagedAttention, the readable kernel (paged_attention_readable.h): vLLM's paged_attention_v1,
// one thread block per (query token, query head), 128 threads, the whole context in one block,
// fp32 arithmetic whatever T is. Inside the kernel, in order:
//
//   prologue  the token's metadata (padding / bad metadata: write zeros / NaN, return);
//             the query row staged in shared memory as fp32
//   phase 1   QK:      logits[t] = scale * q . k_t for every key t of the context
//   phase 2   softmax: logits[t] = exp(logits[t] - max), and their sum
//   phase 3   PV:      out = sum_t logits[t] * v_t / sum
//
// Each phase reads only what the phases before it left in shared memory and ends at a
// __syncthreads(), so that it can be read, or deleted and rewritten, on its own.
// (Lab 02, labs/02-paged-attention, has the three phases written by the learner.)
//
// What the optimized kernel (paged_attention.cu) does differently, and why it is faster: the
// query heads of one KV group share a block (each K/V row is read once, not once per query head);
// one key is split over a group of threads with 16-byte vector loads and several loads in flight
// (here one thread walks a whole key row with scalar loads); the block ids are staged in shared
// memory once (here every key reads block_tables, from L1); long contexts are split over blocks
// (v2). Same inputs, same result within rounding (tests/engine/kernels/
// test_paged_attention_readable.cpp compares the two).
#include "engine/kernels/paged_attention_readable.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/kernels/paged_attention.h"

namespace day18::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kNumThreads = kPagedAttentionReadableThreads;
constexpr int kNumWarps = kNumThreads / kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;  // every lane of the warp takes part in a shuffle
// The grid's y dimension (one row of blocks per query token) is limited to 65535.
constexpr int kMaxGridY = 65535;

// q is staged in a static shared array: one size for every head size (the loops run to the
// actual head_size), so one kernel per dtype is compiled.
constexpr int kMaxHeadSize = 256;
constexpr bool covers_every_head_size() {
  for (int h : kPagedAttentionHeadSizes)
    if (h > kMaxHeadSize) return false;
  return true;
}
static_assert(covers_every_head_size(), "kMaxHeadSize must cover kPagedAttentionHeadSizes");

// Grid (num_heads, num_tokens), kNumThreads threads; dynamic shared memory: max_context_len
// floats, rounded up (paged_attention_readable_shared_bytes).
template <typename T>
__global__ void __launch_bounds__(kNumThreads) paged_attention_readable_kernel(
    T* __restrict__ out,                   // [num_tokens, num_heads, head_size]
    const T* __restrict__ query,           // [num_tokens, num_heads, head_size]
    const T* __restrict__ key_cache,       // [num_blocks, num_kv_heads, block_size, head_size]
    const T* __restrict__ value_cache,     // [num_blocks, num_kv_heads, block_size, head_size]
    const int* __restrict__ block_tables,  // [num_seqs, max_blocks_per_seq]
    const int* __restrict__ seq_idx,       // [num_tokens]
    const int* __restrict__ context_lens,  // [num_tokens]
    float scale, int num_heads, int num_kv_heads, int head_size, int block_size,
    int max_blocks_per_seq, int num_seqs, int max_context_len) {
  extern __shared__ float s_logits[];  // [max_context_len]: logits, then softmax numerators
  __shared__ float s_q[kMaxHeadSize];  // [head_size]: the query row in fp32
  __shared__ float s_red[kNumWarps];   // one partial max (then sum) per warp
  __shared__ float s_sum;              // the softmax denominator, for phase 3

  const int head = blockIdx.x;
  const int token = blockIdx.y;
  const int tid = threadIdx.x;
  const int warp = tid / kWarpSize, lane = tid % kWarpSize;

  // ---- Prologue: the token's metadata; q into shared memory as fp32 ----
  // Padding (context_len 0) gets zeros; metadata out of range gets NaN rather than an
  // out-of-bounds read (the optimized kernel's rule). The test is the same for every thread of
  // the block, so the whole block returns and no thread is left waiting at a __syncthreads().
  const int seq = seq_idx[token];
  const int ctx = context_lens[token];
  T* out_row = out + (static_cast<int64_t>(token) * num_heads + head) * head_size;
  if (seq < 0 || seq >= num_seqs || ctx <= 0 || ctx > max_context_len) {
    const bool padding = ctx == 0 && seq >= 0 && seq < num_seqs;
    const float fill = padding ? 0.f : __int_as_float(0x7fc00000);  // quiet NaN
    for (int d = tid; d < head_size; d += kNumThreads) out_row[d] = from_float<T>(fill);
    return;
  }
  const int kv_head = head / (num_heads / num_kv_heads);  // GQA/MQA: query heads share a KV head
  const int* block_table = block_tables + static_cast<int64_t>(seq) * max_blocks_per_seq;
  const T* q_row = query + (static_cast<int64_t>(token) * num_heads + head) * head_size;
  for (int d = tid; d < head_size; d += kNumThreads) s_q[d] = to_float(q_row[d]);
  __syncthreads();  // s_q is complete

  // ---- Phase 1: QK. s_logits[t] = scale * q . k_t for every key t < ctx ----
  // Key t of the sequence sits at slot t % block_size of logical block t / block_size, which the
  // block table maps to a physical block of the cache. Threads take keys in a strided loop
  // (tid, tid + 128, ...); each computes its keys' dot products alone, in fp32.
  // LAB 02 BEGIN qk [device]: s_logits[t] = scale * q . k_t for every key t < ctx (about 10 lines)
  for (int t = tid; t < ctx; t += kNumThreads) {
    const int64_t physical_block = block_table[t / block_size];
    const T* k =
        key_cache +
        ((physical_block * num_kv_heads + kv_head) * block_size + t % block_size) * head_size;
    float dot = 0.f;
    for (int d = 0; d < head_size; ++d) dot = fmaf(s_q[d], to_float(k[d]), dot);
    s_logits[t] = scale * dot;
  }
  // LAB 02 END qk
  __syncthreads();  // phase 2 reads logits that other threads wrote

  // ---- Phase 2: softmax, numerically stable: exp(logit - max) and the sum of those ----
  // Subtracting the max keeps every exp() <= 1 (no overflow), and the max itself contributes
  // exp(0) = 1, so the sum is >= 1. Both block-wide reductions go: each thread over its strided
  // keys, then within the warp by shuffles, then over the 4 warps through shared memory.
  // LAB 02 BEGIN softmax [device]: max, p_t = exp(logit - max), sum into s_sum (about 25 lines)
  float max_logit = -FLT_MAX;
  for (int t = tid; t < ctx; t += kNumThreads) max_logit = fmaxf(max_logit, s_logits[t]);
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    max_logit = fmaxf(max_logit, __shfl_xor_sync(kFullMask, max_logit, offset));
  if (lane == 0) s_red[warp] = max_logit;
  __syncthreads();
  max_logit = s_red[0];
  for (int w = 1; w < kNumWarps; ++w) max_logit = fmaxf(max_logit, s_red[w]);
  __syncthreads();  // every thread has read the max before s_red is reused for the sum
  float sum = 0.f;
  for (int t = tid; t < ctx; t += kNumThreads) {
    const float p = expf(s_logits[t] - max_logit);
    s_logits[t] = p;
    sum += p;
  }
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    sum += __shfl_xor_sync(kFullMask, sum, offset);
  if (lane == 0) s_red[warp] = sum;
  __syncthreads();
  if (tid == 0) {
    float total = 0.f;
    for (int w = 0; w < kNumWarps; ++w) total += s_red[w];
    s_sum = total;
  }
  // LAB 02 END softmax
  __syncthreads();  // phase 3 reads s_sum and numerators that other threads wrote

  // ---- Phase 3: out = sum_t p_t * v_t / sum ----
  // Thread tid owns output dims tid, tid + 128, ... (two of them for head_size 256, none for the
  // threads past a smaller head) and walks every value row through the block table, as phase 1
  // did the keys; the 32 threads of a warp read 32 adjacent elements of one row (coalesced).
  // LAB 02 BEGIN pv [device]: out_row[d] = sum_t s_logits[t] * v_t[d] / s_sum (about 12 lines)
  for (int d = tid; d < head_size; d += kNumThreads) {
    float acc = 0.f;
    for (int t = 0; t < ctx; ++t) {
      const int64_t physical_block = block_table[t / block_size];
      const T* v =
          value_cache +
          ((physical_block * num_kv_heads + kv_head) * block_size + t % block_size) * head_size;
      acc = fmaf(s_logits[t], to_float(v[d]), acc);
    }
    out_row[d] = from_float<T>(acc / s_sum);
  }
  // LAB 02 END pv
}

// Static shared memory of the kernel (s_q, s_red, s_sum), as compiled: it shares the per-block
// budget with the logits.
template <typename T>
size_t static_shared_bytes() {
  static const size_t bytes = [] {
    cudaFuncAttributes attr{};
    DAY18_CUDA_CHECK(cudaFuncGetAttributes(&attr, paged_attention_readable_kernel<T>));
    return attr.sharedSizeBytes;
  }();
  return bytes;
}

}  // namespace

size_t paged_attention_readable_shared_bytes(int max_context_len) {
  // Rounded up to whole 16-byte vectors: ptxas vectorizes phase 3's loop over the logits and may
  // merge the loads of its last (up to 3) iterations into one, which must stay inside the
  // allocation (compute-sanitizer flagged a 12-byte read past a 4-byte buffer for context 1).
  constexpr size_t kFloatsPerVector = 16 / sizeof(float);
  const size_t keys = static_cast<size_t>(std::max(max_context_len, 0));
  return (keys + kFloatsPerVector - 1) / kFloatsPerVector * kFloatsPerVector * sizeof(float);
}

// Grid: x = num_heads, y = num_tokens: one thread block per (query head, query token), as vLLM's
// paged_attention_v1 (grid (num_heads, num_seqs)). Block: 128 threads. Dynamic shared memory:
// the fp32 logits of max_context_len keys. Checks the shared-memory fit and the grid limit only
// (see the header); everything else was validated by the ops layer.
void paged_attention_readable(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                              const Tensor& value_cache, const Tensor& block_tables,
                              const Tensor& seq_idx, const Tensor& context_lens, float scale,
                              int max_context_len, cudaStream_t stream) {
  const int num_tokens = static_cast<int>(query.size(0));
  const int num_heads = static_cast<int>(query.size(1));
  const int head_size = static_cast<int>(query.size(2));
  const int num_kv_heads = static_cast<int>(key_cache.size(1));
  const int block_size = static_cast<int>(key_cache.size(2));
  const int num_seqs = static_cast<int>(block_tables.size(0));
  const int max_blocks_per_seq = static_cast<int>(block_tables.size(1));
  if (num_tokens == 0) return;
  DAY18_REQUIRE(num_tokens <= kMaxGridY, "paged_attention_readable: num_tokens ", num_tokens,
                " exceeds the grid's y limit ", kMaxGridY, " (one row of blocks per token)");
  const size_t smem = paged_attention_readable_shared_bytes(max_context_len);
  const size_t limit = device_limits().shared_bytes_per_block_optin;
  dispatch_float(query.dtype(), [&]<typename T>() {
    auto kernel = paged_attention_readable_kernel<T>;
    const size_t static_smem = static_shared_bytes<T>();
    DAY18_REQUIRE(smem + static_smem <= limit, "paged_attention_readable: max_context_len ",
                  max_context_len, " needs ", smem, " bytes of shared memory for its logits (+ ",
                  static_smem, " static), more than the ", limit,
                  " one block may use on this GPU; use version v2 (or auto)");
    if (smem > kSharedBytesWithoutOptIn)
      DAY18_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(smem)));
    const dim3 grid(num_heads, num_tokens);
    kernel<<<grid, kNumThreads, smem, stream>>>(
        out.ptr<T>(), query.ptr<T>(), key_cache.ptr<T>(), value_cache.ptr<T>(),
        block_tables.ptr<int32_t>(), seq_idx.ptr<int32_t>(), context_lens.ptr<int32_t>(), scale,
        num_heads, num_kv_heads, head_size, block_size, max_blocks_per_seq, num_seqs,
        max_context_len);
    DAY18_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace day18::cuda
