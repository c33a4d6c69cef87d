// PagedAttention kernels: v1 (one pass over the whole context) and v2 (split-K over partitions +
// a reduce kernel). Both are the same kernel, paged_attention_kernel; `partition_size == 0` makes
// it v1 (write the normalized output directly), otherwise it writes one partition's fp32 result
// and softmax statistics for paged_attention_v2_reduce_kernel.
//
// Work of one thread block: one query token and the query heads of ONE KV group (up to
// kMaxHeadsPerBlock of them). vLLM's grid is tokens x heads, one head per block; with GQA
// (32 query heads, 8 KV heads) that reads every K/V row 4 times and leans on L2 to absorb 3 of
// them (4 GiB of L2 traffic for 1 GiB of KV at B=64, ctx 4096: L2 bandwidth then limits, not HBM).
// Folding the heads of a group into the block reads each K/V row once and reuses it from
// registers for all heads. For MHA (ratio 1) the grid is exactly vLLM's tokens x heads.
//
// Inside a block (fp16, head_size 128 as the example):
//   - A K or V row is head_size * 2 = 256 bytes = 16 vectors of 16 bytes. A "thread group" of
//     TPK = 16 threads handles one key token: each thread loads one 16-byte vector (8 halves) and
//     holds the matching 8 query elements (x heads) in fp32 registers. A warp covers KPW = 2 keys
//     per load instruction: 512 contiguous bytes when both keys sit in one KV block.
//   - Each thread issues UNROLL = 8 independent 16-byte loads before using any of them, so a
//     warp walks 16 consecutive tokens (one whole 16-token KV block) per step with 4 KB in flight.
//   - The block ids of the block's token range are copied into shared memory once, up front (one
//     round trip for all of them), so a K/V address never waits on a block-table load.
//   - Phase 1: dot products (fp32), reduced over the thread group with shuffles; the logits of
//     the block's context range go to shared memory, laid out [token][head].
//   - Softmax: block-wide max per head (running max), exp, block-wide sum.
//   - Phase 2: same mapping over V rows; each thread accumulates its 8 output elements x heads
//     in fp32, weights read from shared memory; groups and warps are reduced at the end through
//     shared memory (reusing the logits space).
// The mapping of every head size keeps ONE 16-byte vector per thread and row (two for fp32 at
// 192 and 256), so q and the accumulators cost 8 fp32 registers per head whatever the size, and
// TPK = the vector count rounded up to a power of two, at most a warp (Geometry):
//   head             32   64   80   96  112  128  192  256
//   fp16/bf16 TPK     4    8   16   16   16   16   32   32   keys per warp load: 32 / TPK
//   fp32 TPK          8   16   32   32   32   32   32   32   (NV = 2 at 192 and 256)
// Sizes whose vector count is not a power of two (80, 96, 112, 192) leave lanes idle: 192 leaves
// 8 of 32 (fp32: 16 of 32 in the second vector), a quarter of the warp. Kept on purpose. The
// mapping that idles no lane at 192 is TPK = 8 (fp32: 16) with 3 vectors per thread; then each
// thread holds 3 vectors of q and of the output for each of the kMaxHeadsPerBlock heads: ptxas
// gives 159 registers instead of 96 (fp16, 128 threads), i.e. at most 3 blocks (12 warps) per SM
// instead of 5 (20 warps). Both put 3 KB of K/V loads in flight per warp step (8 loads x 24 lanes, or
// 2 x 3 loads x 32 lanes, of 16 bytes), so the idle-lane mapping keeps 5/3 as many bytes in
// flight per SM, which is what the bandwidth-bound decode needs. What it pays is issue slots:
// each key costs the instructions of a head-256 key (FMAs, 5 shuffle levels) for 3/4 of the
// bytes, which would matter only where the kernel runs out of issue bandwidth rather than of
// bytes in flight (4 heads per block); not measured.
//
// The reduce kernel of v2 is launched with programmatic dependent launch (PDL): its blocks are
// scheduled while the main kernel's last wave runs and wait (griddepcontrol.wait) for its results,
// which hides a launch latency; the main kernel lets it start (griddepcontrol.launch_dependents).
//
// Measured alternative (not kept): a one-pass flash-decoding kernel (online softmax per warp, K
// and V of a step loaded together, no logits buffer). On the H100 it was slower at every shape
// measured (B=64 ctx 4096: 67% of P vs 73%; B=256 ctx 8192 v2: 71% vs 83%): the per-step
// rescaling and 166 registers (3 blocks/SM) made it issue-bound.
#include "engine/kernels/paged_attention.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/kernels/pdl.cuh"
#include "engine/kernels/vec16.cuh"

namespace day18::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kG = kMaxHeadsPerBlock;

constexpr int pow2_ceil(int x) {
  int p = 1;
  while (p < x) p *= 2;
  return p;
}

// Compile-time geometry of the thread mapping for element type T and head size H.
template <typename T, int H>
struct Geometry {
  static constexpr int kVec = 16 / sizeof(T);  // elements per 16-byte load
  static_assert(H % kVec == 0, "head_size must be a multiple of the 16-byte vector");
  static constexpr int kNumVecs = H / kVec;                              // vectors per K/V row
  static constexpr int kTPK = std::min(kWarpSize, pow2_ceil(kNumVecs));  // threads per key
  static constexpr int kNV = (kNumVecs + kTPK - 1) / kTPK;               // vectors per thread
  static constexpr int kKPW = kWarpSize / kTPK;                          // keys per warp load
  static constexpr int kUnroll = std::max(1, 8 / kNV);  // loads in flight per thread
  static constexpr int kKeysPerStep = kKPW * kUnroll;   // tokens a warp covers per step
};

// Grid (x = token * head_chunks + head_chunk, y = partition); NUM_THREADS threads.
// Dynamic shared memory: logits [n][heads_per_block] (later the output reduction), then the block
// ids of the token range (paged_attention_shared_bytes).
// partition_size == 0: v1 (one partition = the whole context, writes `out`).
template <typename T, int H, int NUM_THREADS>
__global__ void __launch_bounds__(NUM_THREADS) paged_attention_kernel(
    T* __restrict__ out,                   // [num_tokens, num_heads, H]                  (v1)
    float* __restrict__ exp_sums,          // [num_tokens, num_heads, max_num_partitions] (v2)
    float* __restrict__ max_logits,        // [num_tokens, num_heads, max_num_partitions] (v2)
    float* __restrict__ tmp_out,           // [num_tokens, num_heads, max_num_partitions, H] (v2)
    const T* __restrict__ query,           // [num_tokens, num_heads, H]
    const T* __restrict__ key_cache,       // [num_blocks, num_kv_heads, block_size, H]
    const T* __restrict__ value_cache,     // [num_blocks, num_kv_heads, block_size, H]
    const int* __restrict__ block_tables,  // [num_seqs, max_blocks_per_seq]
    const int* __restrict__ seq_idx,       // [num_tokens]
    const int* __restrict__ context_lens,  // [num_tokens]
    float scale, int num_heads, int num_kv_heads, int heads_per_block, int block_size_log2,
    int max_blocks_per_seq, int num_seqs, int max_context_len, int partition_size,
    int max_num_partitions) {
  using Geo = Geometry<T, H>;
  constexpr int kVec = Geo::kVec, kNV = Geo::kNV, kTPK = Geo::kTPK, kKPW = Geo::kKPW;
  constexpr int kUnroll = Geo::kUnroll, kKeysPerStep = Geo::kKeysPerStep;
  constexpr int kNumWarps = NUM_THREADS / kWarpSize;

  extern __shared__ __align__(
      16) float smem[];  // logits [n][heads_per_block], later the output reduction
  __shared__ float red[kNumWarps][kG];
  __shared__ float s_inv_sum[kG];

  pdl_launch_dependents();
  pdl_wait_primary();  // launched with PDL: the query and the new KV rows come from the kernel
                       // before

  const int hpb = heads_per_block;
  const int chunks = num_heads / hpb;
  const int token = blockIdx.x / chunks;
  const int head0 = (blockIdx.x % chunks) * hpb;
  const int kv_head = head0 / (num_heads / num_kv_heads);
  const int part = blockIdx.y;
  const bool v1 = partition_size == 0;

  const int tid = threadIdx.x, warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int kg = lane / kTPK;  // key slot of this thread's group within the warp
  const int l = lane % kTPK;   // position within the group

  const int s = seq_idx[token];
  const int ctx = context_lens[token];
  if (s < 0 || s >= num_seqs || ctx <= 0 || ctx > max_context_len) {
    // Bad metadata -> NaN; padding token (ctx == 0) -> zeros. v2 leaves it to the reduce kernel.
    if (v1) {
      const float fill = ctx == 0 && s >= 0 && s < num_seqs ? 0.f : __int_as_float(0x7fc00000);
      for (int i = tid; i < hpb * H; i += NUM_THREADS)
        out[(static_cast<int64_t>(token) * num_heads + head0) * H + i] = from_float<T>(fill);
    }
    return;
  }
  const int start = v1 ? 0 : part * partition_size;
  if (start >= ctx) return;  // v2: this partition lies beyond the context
  const int end = v1 ? ctx : min(ctx, start + partition_size);
  const int n = end - start;
  const int block_mask = (1 << block_size_log2) - 1;
  const int first_block = start >> block_size_log2;
  const int num_bt = ((end - 1) >> block_size_log2) - first_block + 1;
  int* s_bt = reinterpret_cast<int*>(
      smem + max((v1 ? max_context_len : partition_size) * hpb, kNumWarps * hpb * H));
  {
    const int* bt = block_tables + static_cast<int64_t>(s) * max_blocks_per_seq + first_block;
    for (int i = tid; i < num_bt; i += NUM_THREADS) s_bt[i] = bt[i];
  }
  const int64_t head_stride = static_cast<int64_t>(H) << block_size_log2;  // one KV head of a block
  const int64_t block_stride = head_stride * num_kv_heads;
  const T* k_base = key_cache + kv_head * head_stride;
  const T* v_base = value_cache + kv_head * head_stride;

  // This thread's slice of the (pre-scaled) query of each head, in fp32.
  float q[kG][kNV][kVec];
#pragma unroll
  for (int h = 0; h < kG; ++h)
#pragma unroll
    for (int j = 0; j < kNV; ++j) {
      const int vi = l + j * kTPK;
      if (h < hpb && vi < Geo::kNumVecs) {
        float f[kVec];
        unpack16<T>(
            load16(query + (static_cast<int64_t>(token) * num_heads + head0 + h) * H + vi * kVec),
            f);
#pragma unroll
        for (int e = 0; e < kVec; ++e) q[h][j][e] = f[e] * scale;
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) q[h][j][e] = 0.f;
      }
    }

  // Address of element vector `vi` of token t's row (t relative to the sequence start).
  auto row = [&](const T* base, int t, int vi) {
    const int64_t pb = s_bt[(t >> block_size_log2) - first_block];
    return base + pb * block_stride + static_cast<int64_t>(t & block_mask) * H + vi * kVec;
  };

  __syncthreads();  // s_bt is filled
  // ---- Phase 1: logits = scale * q . k for every key of [start, end) ----
  float thread_max[kG];
#pragma unroll
  for (int h = 0; h < kG; ++h) thread_max[h] = -FLT_MAX;
  for (int t0 = start + warp * kKeysPerStep; t0 < end; t0 += kNumWarps * kKeysPerStep) {
    uint4 kv[kUnroll][kNV];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = t0 + u * kKPW + kg;
#pragma unroll
      for (int j = 0; j < kNV; ++j) {
        const int vi = l + j * kTPK;
        kv[u][j] =
            t < end && vi < Geo::kNumVecs ? load16(row(k_base, t, vi)) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float dot[kG];
#pragma unroll
      for (int h = 0; h < kG; ++h) dot[h] = 0.f;
#pragma unroll
      for (int j = 0; j < kNV; ++j) {
        float f[kVec];
        unpack16<T>(kv[u][j], f);
#pragma unroll
        for (int h = 0; h < kG; ++h)
          if (h < hpb)
#pragma unroll
            for (int e = 0; e < kVec; ++e) dot[h] = fmaf(q[h][j][e], f[e], dot[h]);
      }
#pragma unroll
      for (int h = 0; h < kG; ++h)
        if (h < hpb)
#pragma unroll
          for (int off = kTPK / 2; off > 0; off /= 2)
            dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], off);
      const int t = t0 + u * kKPW + kg;
      if (t < end && l == 0) {
#pragma unroll
        for (int h = 0; h < kG; ++h)
          if (h < hpb) {
            smem[(t - start) * hpb + h] = dot[h];
            thread_max[h] = fmaxf(thread_max[h], dot[h]);
          }
      }
    }
  }

  // ---- Softmax over [start, end): block max, exp, block sum ----
#pragma unroll
  for (int h = 0; h < kG; ++h) {
#pragma unroll
    for (int off = kWarpSize / 2; off > 0; off /= 2)
      thread_max[h] = fmaxf(thread_max[h], __shfl_xor_sync(0xffffffffu, thread_max[h], off));
    if (lane == 0) red[warp][h] = thread_max[h];
  }
  __syncthreads();  // also publishes the logits
  float m[kG], sum[kG];
#pragma unroll
  for (int h = 0; h < kG; ++h) {
    m[h] = red[0][h];
#pragma unroll
    for (int w = 1; w < kNumWarps; ++w) m[h] = fmaxf(m[h], red[w][h]);
    sum[h] = 0.f;
  }
  for (int t = tid; t < n; t += NUM_THREADS)
#pragma unroll
    for (int h = 0; h < kG; ++h)
      if (h < hpb) {
        const float p = expf(smem[t * hpb + h] - m[h]);
        smem[t * hpb + h] = p;
        sum[h] += p;
      }
  __syncthreads();  // everyone has read red[] (the max) before it is reused for the sum
#pragma unroll
  for (int h = 0; h < kG; ++h) {
#pragma unroll
    for (int off = kWarpSize / 2; off > 0; off /= 2)
      sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], off);
    if (lane == 0) red[warp][h] = sum[h];
  }
  __syncthreads();  // publishes the sums and the exp'd weights
  if (tid < hpb) {
    float total = 0.f;
    for (int w = 0; w < kNumWarps; ++w) total += red[w][tid];
    s_inv_sum[tid] = 1.f / total;  // total >= 1: the max term contributes exp(0)
    if (!v1) {
      const int64_t i =
          (static_cast<int64_t>(token) * num_heads + head0 + tid) * max_num_partitions + part;
      exp_sums[i] = total;
    }
  }
#pragma unroll
  for (int h = 0; h < kG; ++h)
    if (!v1 && tid == h && h < hpb)
      max_logits[(static_cast<int64_t>(token) * num_heads + head0 + h) * max_num_partitions +
                 part] = m[h];

  // ---- Phase 2: acc = sum_t p[t] * v[t] ----
  float acc[kG][kNV][kVec];
#pragma unroll
  for (int h = 0; h < kG; ++h)
#pragma unroll
    for (int j = 0; j < kNV; ++j)
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[h][j][e] = 0.f;
  for (int t0 = start + warp * kKeysPerStep; t0 < end; t0 += kNumWarps * kKeysPerStep) {
    uint4 vv[kUnroll][kNV];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = t0 + u * kKPW + kg;
#pragma unroll
      for (int j = 0; j < kNV; ++j) {
        const int vi = l + j * kTPK;
        vv[u][j] =
            t < end && vi < Geo::kNumVecs ? load16(row(v_base, t, vi)) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = t0 + u * kKPW + kg;
      if (t < end) {
#pragma unroll
        for (int j = 0; j < kNV; ++j) {
          float f[kVec];
          unpack16<T>(vv[u][j], f);
#pragma unroll
          for (int h = 0; h < kG; ++h)
            if (h < hpb) {
              const float p = smem[(t - start) * hpb + h];
#pragma unroll
              for (int e = 0; e < kVec; ++e) acc[h][j][e] = fmaf(p, f[e], acc[h][j][e]);
            }
        }
      }
    }
  }
  // Reduce over the key slots of a warp (lanes l, l + TPK, ...), then over warps in smem.
#pragma unroll
  for (int h = 0; h < kG; ++h)
    if (h < hpb)
#pragma unroll
      for (int j = 0; j < kNV; ++j)
#pragma unroll
        for (int e = 0; e < kVec; ++e)
#pragma unroll
          for (int off = kTPK; off < kWarpSize; off *= 2)
            acc[h][j][e] += __shfl_xor_sync(0xffffffffu, acc[h][j][e], off);
  __syncthreads();  // every warp is done reading the weights: smem is reused below
  if (kg == 0) {
#pragma unroll
    for (int h = 0; h < kG; ++h)
      if (h < hpb)
#pragma unroll
        for (int j = 0; j < kNV; ++j) {
          const int vi = l + j * kTPK;
          if (vi < Geo::kNumVecs)
#pragma unroll
            for (int e = 0; e < kVec; ++e)
              smem[(warp * hpb + h) * H + vi * kVec + e] = acc[h][j][e];
        }
  }
  __syncthreads();
  for (int i = tid; i < hpb * H; i += NUM_THREADS) {
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kNumWarps; ++w) v += smem[w * hpb * H + i];
    v *= s_inv_sum[i / H];
    const int64_t row_i = static_cast<int64_t>(token) * num_heads + head0 + i / H;
    if (v1)
      out[row_i * H + i % H] = from_float<T>(v);
    else
      tmp_out[(row_i * max_num_partitions + part) * H + i % H] = v;
  }
}

// Grid: num_tokens * num_heads (one block per output row), kReduceThreads threads: H/4 threads
// per partition row (float4 each), kReduceThreads / (H/4) partition rows at a time.
// Combines the partitions: out = sum_p tmp_out[p] * exp_sums[p] * exp(max_p - max) / total, in
// ONE pass: each thread keeps a running (max, sum, acc) over its partitions, rescaling when a
// larger max arrives, so a partition's max, sum and output row are loaded together (one memory
// round trip per pass instead of three: max first, then the sums, then the rows); the rows of
// threads are then merged through shared memory the same way.
constexpr int kReduceThreads = 256;
template <typename T, int H>
__global__ void __launch_bounds__(kReduceThreads) paged_attention_v2_reduce_kernel(
    T* __restrict__ out,                   // [num_tokens, num_heads, H]
    const float* __restrict__ exp_sums,    // [num_tokens, num_heads, max_num_partitions]
    const float* __restrict__ max_logits,  // [num_tokens, num_heads, max_num_partitions]
    const float* __restrict__ tmp_out,     // [num_tokens, num_heads, max_num_partitions, H]
    const int* __restrict__ seq_idx, const int* __restrict__ context_lens, int num_heads,
    int num_seqs, int max_context_len, int partition_size, int max_num_partitions) {
  constexpr int kH4 = H / 4;                   // float4 columns of a row
  constexpr int kRows = kReduceThreads / kH4;  // partition rows summed in parallel
  __shared__ float s_m[kRows], s_l[kRows];
  __shared__ float4 s_acc[kRows][kH4];
  const int64_t row = blockIdx.x;  // token * num_heads + head
  const int token = static_cast<int>(row / num_heads);
  const int tid = threadIdx.x;
  pdl_launch_dependents();  // the next kernel (the o_proj GEMV) may prefetch its weights
  const int s = seq_idx[token];
  const int ctx = context_lens[token];
  // Every block waits for the main kernel (even one that does not read its results), so that
  // this grid's completion implies the main kernel's: later work on the stream may reuse the
  // workspace.
  pdl_wait_primary();
  T* o = out + row * H;
  if (s < 0 || s >= num_seqs || ctx <= 0 || ctx > max_context_len) {
    const float fill = ctx == 0 && s >= 0 && s < num_seqs ? 0.f : __int_as_float(0x7fc00000);
    for (int d = tid; d < H; d += kReduceThreads) o[d] = from_float<T>(fill);
    return;
  }
  const int parts = (ctx + partition_size - 1) / partition_size;
  const float* ml = max_logits + row * max_num_partitions;
  const float* es = exp_sums + row * max_num_partitions;
  const float* tmp = tmp_out + row * max_num_partitions * H;
  if (parts == 1) {  // one partition: already normalized
    for (int d = tid; d < H; d += kReduceThreads) o[d] = from_float<T>(tmp[d]);
    return;
  }
  // Thread (r, c): partitions r, r + kRows, ... of float4 column c.
  const int r = tid / kH4, c = tid % kH4;
  if (r < kRows) {
    float m = -INFINITY, l = 0.f;
    float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 2
    for (int p = r; p < parts; p += kRows) {
      const float mp = ml[p], ep = es[p];
      const float4 v = reinterpret_cast<const float4*>(tmp + static_cast<int64_t>(p) * H)[c];
      if (mp > m) {  // rescale what was summed so far to the new max (exp(-inf) = 0 at first)
        const float k = expf(m - mp);
        a.x *= k;
        a.y *= k;
        a.z *= k;
        a.w *= k;
        l *= k;
        m = mp;
      }
      const float w = ep * expf(mp - m);
      a.x = fmaf(w, v.x, a.x);
      a.y = fmaf(w, v.y, a.y);
      a.z = fmaf(w, v.z, a.z);
      a.w = fmaf(w, v.w, a.w);
      l += w;
    }
    s_acc[r][c] = a;
    if (c == 0) {
      s_m[r] = m;  // -inf (and l = 0) for a row with no partition: parts < kRows
      s_l[r] = l;
    }
  }
  __syncthreads();
  if (tid < kH4) {
    float M = s_m[0];  // row 0 has partition 0: finite
#pragma unroll
    for (int i = 1; i < kRows; ++i) M = fmaxf(M, s_m[i]);
    float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
    float total = 0.f;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const float k = expf(s_m[i] - M);
      const float4 b = s_acc[i][tid];
      a.x = fmaf(k, b.x, a.x);
      a.y = fmaf(k, b.y, a.y);
      a.z = fmaf(k, b.z, a.z);
      a.w = fmaf(k, b.w, a.w);
      total = fmaf(k, s_l[i], total);
    }
    const float inv_total = 1.f / total;  // total >= 1: the largest max's partition sum
    o[4 * tid] = from_float<T>(a.x * inv_total);
    o[4 * tid + 1] = from_float<T>(a.y * inv_total);
    o[4 * tid + 2] = from_float<T>(a.z * inv_total);
    o[4 * tid + 3] = from_float<T>(a.w * inv_total);
  }
}

// Calls f.template operator()<H>() for a head size of kPagedAttentionHeadSizes, or throws.
template <typename F>
void dispatch_head_size(int head_size, F&& f) {
  DAY18_REQUIRE(dispatch_paged_attention_head_size(head_size, f), "paged_attention: head_size ",
                head_size, " has no kernel (supported: ", paged_attention_head_sizes_text(), ")");
}

struct Common {
  int num_tokens, num_heads, num_kv_heads, head_size, block_size, num_seqs, max_blocks_per_seq, hpb;
};

Common common_of(const Tensor& query, const Tensor& key_cache, const Tensor& block_tables,
                 int max_context_len) {
  Common c{};
  c.num_tokens = static_cast<int>(query.size(0));
  c.num_heads = static_cast<int>(query.size(1));
  c.head_size = static_cast<int>(query.size(2));
  c.num_kv_heads = static_cast<int>(key_cache.size(1));
  c.block_size = static_cast<int>(key_cache.size(2));
  c.num_seqs = static_cast<int>(block_tables.size(0));
  c.max_blocks_per_seq = static_cast<int>(block_tables.size(1));
  c.hpb = paged_attention_heads_per_block(c.num_heads, c.num_kv_heads, c.num_tokens,
                                          max_context_len, sm_count());
  return c;
}

// Launches paged_attention_kernel<T, H, NT> with `smem` dynamic shared bytes.
template <typename T, int H, int NT>
void launch_main(const Common& c, dim3 grid, size_t smem, T* out, float* exp_sums,
                 float* max_logits, float* tmp_out, const Tensor& query, const Tensor& key_cache,
                 const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                 const Tensor& context_lens, float scale, int max_context_len, int partition_size,
                 int max_num_partitions, cudaStream_t stream) {
  auto kernel = paged_attention_kernel<T, H, NT>;
  if (smem > kSharedBytesWithoutOptIn)
    DAY18_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
  launch_pdl(kernel, grid, dim3(NT), smem, stream, out, exp_sums, max_logits, tmp_out,
             static_cast<const T*>(query.ptr<T>()), static_cast<const T*>(key_cache.ptr<T>()),
             static_cast<const T*>(value_cache.ptr<T>()),
             static_cast<const int*>(block_tables.ptr<int32_t>()),
             static_cast<const int*>(seq_idx.ptr<int32_t>()),
             static_cast<const int*>(context_lens.ptr<int32_t>()), scale, c.num_heads,
             c.num_kv_heads, c.hpb, paged_block_shift(c.block_size), c.max_blocks_per_seq, c.num_seqs,
             max_context_len, partition_size, max_num_partitions);
  DAY18_CHECK_LAUNCH();
}

}  // namespace

bool paged_attention_v1_has_threads(DType dtype, int head_size, int num_threads) {
  const bool compiled = (dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16) &&
                        dispatch_paged_attention_head_size(head_size, []<int>() {});
  if (!compiled) return false;
  if (num_threads == 128) return true;
  return dtype == DType::f16 && head_size == 128 &&
         (num_threads == 64 || num_threads == 256 || num_threads == 512);
}

int paged_attention_heads_per_block(int num_heads, int num_kv_heads, int64_t num_tokens,
                                    int max_context_len, int num_sms) {
  const int ratio = num_kv_heads > 0 ? num_heads / num_kv_heads : 1;
  if (num_tokens * num_kv_heads < num_sms && max_context_len <= kOneHeadPerBlockMaxContext)
    return 1;
  for (int g = kMaxHeadsPerBlock; g > 1; --g)
    if (ratio % g == 0) return g;
  return 1;
}

size_t paged_attention_shared_bytes(int heads_per_block, int head_size, int num_threads,
                                    int context_tokens) {
  // Logits (or the warps' partial outputs, whichever is larger), then the block ids of the token
  // range (for the smallest block size, 8: the bound holds for every block size).
  const size_t reduction =
      static_cast<size_t>(num_threads / kWarpSize) * heads_per_block * head_size * sizeof(float);
  const size_t logits = static_cast<size_t>(context_tokens) * heads_per_block * sizeof(float);
  const int min_block = kPagedAttentionBlockSizes[0];
  const size_t block_ids = (static_cast<size_t>(context_tokens) / min_block + 2) * sizeof(int);
  return std::max(reduction, logits) + block_ids;
}

void paged_attention_v2_reduce(const Tensor& out, const Tensor& exp_sums,
                               const Tensor& max_logits, const Tensor& tmp_out,
                               const Tensor& seq_idx, const Tensor& context_lens, int num_seqs,
                               int max_context_len, int partition_size, cudaStream_t stream) {
  const int num_tokens = static_cast<int>(out.size(0));
  const int num_heads = static_cast<int>(out.size(1));
  if (num_tokens == 0 || num_heads == 0) return;
  const int max_num_partitions = static_cast<int>(exp_sums.size(2));
  dispatch_float(out.dtype(), [&]<typename T>() {
    dispatch_head_size(static_cast<int>(out.size(2)), [&]<int H>() {
      launch_pdl(paged_attention_v2_reduce_kernel<T, H>,
                 dim3(static_cast<unsigned>(num_tokens * num_heads)), dim3(kReduceThreads), 0,
                 stream, out.ptr<T>(), static_cast<const float*>(exp_sums.ptr<float>()),
                 static_cast<const float*>(max_logits.ptr<float>()),
                 static_cast<const float*>(tmp_out.ptr<float>()),
                 static_cast<const int*>(seq_idx.ptr<int32_t>()),
                 static_cast<const int*>(context_lens.ptr<int32_t>()), num_heads,
                 num_seqs, max_context_len, partition_size,
                 max_num_partitions);
      DAY18_CHECK_LAUNCH();
    });
  });
}

// ---- The launch path of v1 and v2, plain (the engine's) and configured (the experiments) ----
namespace {

// Calls f.template operator()<NT>() for a compiled thread count of (T, H), or throws naming it.
// Thread-count variants exist only where the block-size experiment uses them (compile time).
template <typename T, int H, typename F>
void dispatch_threads(int num_threads, const char* what, F&& f) {
  if constexpr (std::is_same_v<T, __half> && H == 128) {
    switch (num_threads) {
      case 64:
        return f.template operator()<64>();
      case 256:
        return f.template operator()<256>();
      case 512:
        return f.template operator()<512>();
      default:
        break;
    }
  }
  if (num_threads != 128)
    throw InvalidArgument(detail::concat(what, ": num_threads ", num_threads,
                                         " is not compiled for this dtype/head_size (128 always; "
                                         "64/256/512 for fp16 head_size 128)"));
  f.template operator()<128>();
}

// heads_per_block 0: the automatic choice (paged_attention_heads_per_block, in common_of).
Common configured_common(const Tensor& query, const Tensor& key_cache, const Tensor& block_tables,
                         int max_context_len, int heads_per_block, const char* what) {
  Common c = common_of(query, key_cache, block_tables, max_context_len);
  if (heads_per_block != 0) {
    if (!paged_attention_heads_per_block_valid(c.num_heads, c.num_kv_heads, heads_per_block))
      throw InvalidArgument(detail::concat(
          what, ": heads_per_block ", heads_per_block, " is not 1..", kMaxHeadsPerBlock,
          " dividing num_heads / num_kv_heads = ", c.num_heads, " / ", c.num_kv_heads));
    c.hpb = heads_per_block;
  }
  return c;
}

void require_shared_fits(size_t smem, const char* what) {
  if (smem > max_shared_bytes_per_block())
    throw InvalidArgument(detail::concat(what, ": ", smem,
                                         " bytes of shared memory per block exceed the device's ",
                                         max_shared_bytes_per_block()));
}

// v1. Grid: x = num_tokens * (num_heads / heads_per_block) (the heads of one KV group folded into
// a block, head chunks of one token adjacent), y = 1. Block: num_threads threads; a group of TPK
// threads per key token, 16-byte loads (see the top of this file). `what` names the public call
// in error messages.
void launch_v1(const char* what, const Tensor& out, const Tensor& query, const Tensor& key_cache,
               const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
               const Tensor& context_lens, float scale, int max_context_len, int num_threads,
               int heads_per_block, cudaStream_t stream) {
  const Common c =
      configured_common(query, key_cache, block_tables, max_context_len, heads_per_block, what);
  const size_t smem =
      paged_attention_shared_bytes(c.hpb, c.head_size, num_threads, max_context_len);
  require_shared_fits(smem, what);
  if (c.num_tokens == 0) return;
  const dim3 grid(c.num_tokens * (c.num_heads / c.hpb), 1);
  dispatch_float(query.dtype(), [&]<typename T>() {
    dispatch_head_size(c.head_size, [&]<int H>() {
      dispatch_threads<T, H>(num_threads, what, [&]<int NT>() {
        launch_main<T, H, NT>(c, grid, smem, out.ptr<T>(), nullptr, nullptr, nullptr, query,
                              key_cache, value_cache, block_tables, seq_idx, context_lens, scale,
                              max_context_len, 0, 1, stream);
      });
    });
  });
}

// v2. Grid: x = num_tokens * (num_heads / heads_per_block), y = max_num_partitions; num_threads
// threads. Then the reduce kernel: one block of kReduceThreads threads per (token, head),
// launched with programmatic dependent launch so that its launch overlaps the main kernel's tail.
void launch_v2(const char* what, const Tensor& out, const Tensor& exp_sums,
               const Tensor& max_logits, const Tensor& tmp_out, const Tensor& query,
               const Tensor& key_cache, const Tensor& value_cache, const Tensor& block_tables,
               const Tensor& seq_idx, const Tensor& context_lens, float scale, int max_context_len,
               int partition_size, int num_threads, int heads_per_block, cudaStream_t stream) {
  const Common c =
      configured_common(query, key_cache, block_tables, max_context_len, heads_per_block, what);
  const size_t smem = paged_attention_shared_bytes(c.hpb, c.head_size, num_threads, partition_size);
  require_shared_fits(smem, what);
  if (c.num_tokens == 0) return;
  const int max_num_partitions = static_cast<int>(exp_sums.size(2));
  const dim3 grid(c.num_tokens * (c.num_heads / c.hpb), max_num_partitions);
  dispatch_float(query.dtype(), [&]<typename T>() {
    dispatch_head_size(c.head_size, [&]<int H>() {
      dispatch_threads<T, H>(num_threads, what, [&]<int NT>() {
        launch_main<T, H, NT>(c, grid, smem, nullptr, exp_sums.ptr<float>(),
                              max_logits.ptr<float>(), tmp_out.ptr<float>(), query, key_cache,
                              value_cache, block_tables, seq_idx, context_lens, scale,
                              max_context_len, partition_size, max_num_partitions, stream);
      });
    });
  });
  paged_attention_v2_reduce(out, exp_sums, max_logits, tmp_out, seq_idx, context_lens, c.num_seqs,
                            max_context_len, partition_size, stream);
}

}  // namespace

// The plain launchers are the configured ones at the defaults: heads_per_block automatic, and for
// v2 kPagedAttentionDefaultThreads threads.
void paged_attention_v1(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                        const Tensor& value_cache, const Tensor& block_tables,
                        const Tensor& seq_idx, const Tensor& context_lens, float scale,
                        int max_context_len, int num_threads, cudaStream_t stream) {
  launch_v1("paged_attention_v1", out, query, key_cache, value_cache, block_tables, seq_idx,
            context_lens, scale, max_context_len, num_threads, /*heads_per_block=*/0, stream);
}

void paged_attention_v2(const Tensor& out, const Tensor& exp_sums, const Tensor& max_logits,
                        const Tensor& tmp_out, const Tensor& query, const Tensor& key_cache,
                        const Tensor& value_cache, const Tensor& block_tables,
                        const Tensor& seq_idx, const Tensor& context_lens, float scale,
                        int max_context_len, int partition_size, cudaStream_t stream) {
  launch_v2("paged_attention_v2", out, exp_sums, max_logits, tmp_out, query, key_cache, value_cache,
            block_tables, seq_idx, context_lens, scale, max_context_len, partition_size,
            kPagedAttentionDefaultThreads, /*heads_per_block=*/0, stream);
}

void paged_attention_v1_configured(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                                   const Tensor& value_cache, const Tensor& block_tables,
                                   const Tensor& seq_idx, const Tensor& context_lens, float scale,
                                   int max_context_len, int num_threads, int heads_per_block,
                                   cudaStream_t stream) {
  launch_v1("paged_attention_v1_configured", out, query, key_cache, value_cache, block_tables,
            seq_idx, context_lens, scale, max_context_len, num_threads, heads_per_block, stream);
}

void paged_attention_v2_configured(const Tensor& out, const Tensor& exp_sums,
                                   const Tensor& max_logits, const Tensor& tmp_out,
                                   const Tensor& query, const Tensor& key_cache,
                                   const Tensor& value_cache, const Tensor& block_tables,
                                   const Tensor& seq_idx, const Tensor& context_lens, float scale,
                                   int max_context_len, int partition_size, int num_threads,
                                   int heads_per_block, cudaStream_t stream) {
  launch_v2("paged_attention_v2_configured", out, exp_sums, max_logits, tmp_out, query, key_cache,
            value_cache, block_tables, seq_idx, context_lens, scale, max_context_len,
            partition_size, num_threads, heads_per_block, stream);
}

// ---- The tuning experiments: occupancy queries --------------------------------------------------

const void* paged_attention_kernel_function(DType dtype, int head_size, int num_threads,
                                            size_t shared_bytes) {
  if (!paged_attention_v1_has_threads(dtype, head_size, num_threads)) return nullptr;
  const void* fn = nullptr;
  dispatch_float(dtype, [&]<typename T>() {
    dispatch_head_size(head_size, [&]<int H>() {
      dispatch_threads<T, H>(num_threads, "paged_attention_kernel_function", [&]<int NT>() {
        auto kernel = paged_attention_kernel<T, H, NT>;
        if (shared_bytes > kSharedBytesWithoutOptIn)
          DAY18_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(shared_bytes)));
        fn = reinterpret_cast<const void*>(kernel);
      });
    });
  });
  return fn;
}

bool paged_attention_heads_per_block_valid(int num_heads, int num_kv_heads, int heads_per_block) {
  if (heads_per_block < 1 || heads_per_block > kMaxHeadsPerBlock || num_kv_heads <= 0) return false;
  const int ratio = num_heads / num_kv_heads;
  return ratio % heads_per_block == 0;
}

}  // namespace day18::cuda
