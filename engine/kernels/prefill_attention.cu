// Prefill attention on tensor cores over the paged KV cache (see prefill_attention.h for the
// algorithm, the grid and the metadata contract).
//
// Register layouts of mma.sync.m16n8k16 and ldmatrix: engine/kernels/mma.cuh. With g = lane / 4,
// t = lane % 4 as there,
// for a warp's 16 query rows:
//   Q (shared [row][d])  -> A of Q K^T: lane addresses row l%16, column 8*(l/16)        (no trans)
//   K (shared [key][d])  -> B of Q K^T: B[d][key] = K[key][d] is K read row by row       (no trans)
//                           lane addresses key (l%8) + 8*(l/16), column 8*((l/8)%2):
//                           registers 0,1 = keys 0-7, registers 2,3 = keys 8-15
//   V (shared [key][d])  -> B of P V: B[key][d] = V[key][d], k-major, so ldmatrix.trans
//                           lane addresses key l%16, column 8*(l/16):
//                           registers 0,1 = d 0-7, registers 2,3 = d 8-15
//   P                    -> A of P V straight from the S accumulators (C layout of two adjacent
//                           8-key n-blocks is the A layout of one 16-key k-step).
#include "engine/kernels/prefill_attention.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cmath>
#include <type_traits>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/kernels/mma.cuh"
#include "engine/kernels/paged_attention.h"

namespace day18::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kRowsPerWarp = 16;  // the M of one mma
static_assert(kPrefillThreads / kWarpSize * kRowsPerWarp == kPrefillTileQ,
              "one warp per 16 query rows of the tile");
static_assert(kPrefillTileK % 16 == 0, "K/V tile: whole 16-key k-steps of P V");
// Shared rows are padded by 16 bytes: the 8 rows one ldmatrix matrix addresses then start in 8
// different 16-byte bank groups (a row of 128 or 256 bytes would put all 8 in the same one).
constexpr int kPad = 8;

// The segments of one launch, passed by value as a __grid_constant__ kernel parameter.
struct SegmentTable {
  int count;
  int token_start[kPrefillMaxSegmentsPerLaunch];
  int num_tokens[kPrefillMaxSegmentsPerLaunch];
  int tile_end[kPrefillMaxSegmentsPerLaunch];  // query tiles of segments 0..i (inclusive sum)
};


// Grid x = tiles * num_heads (head fastest), 128 threads; dynamic shared memory
// prefill_attention_shared_bytes(D): Q [64][D+8] | K [2][64][D+8] | V [2][64][D+8].
template <typename T, int D>
__global__ void __launch_bounds__(kPrefillThreads) prefill_attention_kernel(
    T* __restrict__ out,                   // [num_tokens, num_heads, D]
    const T* __restrict__ query,           // [num_tokens, num_heads, D]
    const T* __restrict__ key_cache,       // [num_blocks, num_kv_heads, block_size, D]
    const T* __restrict__ value_cache,     // [num_blocks, num_kv_heads, block_size, D]
    const int* __restrict__ block_tables,  // [num_seqs, max_blocks_per_seq]
    const int* __restrict__ seq_idx,       // [num_tokens]
    const int* __restrict__ context_lens,  // [num_tokens]
    float scale_log2,                      // scale * log2(e): the softmax runs on exp2
    int num_heads, int num_kv_heads, int block_shift, int max_blocks_per_seq, int num_seqs,
    const __grid_constant__ SegmentTable segs) {
  constexpr int LDS = D + kPad;          // shared row stride, elements
  constexpr int kChunks = D / 8;         // 16-byte chunks per row
  constexpr int KD = D / 16;             // k-steps of Q K^T
  constexpr int NO = D / 8;              // 8-column n-blocks of O
  constexpr int NS = kPrefillTileK / 8;  // 8-key n-blocks of S
  constexpr bool kQInRegs = D <= 128;    // Q fragments for D = 192 / 256: 48 / 64 more registers
  constexpr int kLoadsQ = kPrefillTileQ * kChunks / kPrefillThreads;
  constexpr int kLoadsKV = kPrefillTileK * kChunks / kPrefillThreads;
  static_assert(D % 16 == 0 && kLoadsQ * kPrefillThreads == kPrefillTileQ * kChunks &&
                    kLoadsKV * kPrefillThreads == kPrefillTileK * kChunks,
                "head size must be a multiple of 16");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + kPrefillTileQ * LDS;
  T* sV = sK + 2 * kPrefillTileK * LDS;
  __shared__ int s_ctx[kPrefillTileQ];  // context of each row; -1: bad metadata (NaN row)
  __shared__ int s_max_ctx, s_min_ctx;

  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int head = static_cast<int>(blockIdx.x % num_heads);
  const int tile = static_cast<int>(blockIdx.x / num_heads);

  // The segment of this tile, and the tile within it: the segment's LAST tile (most keys) runs
  // first, so the longest blocks start in the first wave.
  int seg = 0;
  while (seg + 1 < segs.count && tile >= segs.tile_end[seg]) ++seg;
  const int seg_first = seg == 0 ? 0 : segs.tile_end[seg - 1];
  const int q_tile = (segs.tile_end[seg] - seg_first) - 1 - (tile - seg_first);
  const int q_begin = q_tile * kPrefillTileQ;
  const int rows = min(kPrefillTileQ, segs.num_tokens[seg] - q_begin);  // >= 1
  const int tok0 = segs.token_start[seg] + q_begin;                     // token of row 0
  const int seq = seq_idx[segs.token_start[seg]];
  const bool seq_ok = seq >= 0 && seq < num_seqs;
  const int capacity = max_blocks_per_seq << block_shift;
  const int kvh = head / (num_heads / num_kv_heads);

  // Row metadata: the largest context bounds the K/V tiles, the smallest says which need a mask.
  if (tid == 0) {
    s_max_ctx = 0;
    s_min_ctx = INT_MAX;
  }
  __syncthreads();
  if (tid < kPrefillTileQ) {
    int c = 0;  // rows past the segment: no keys, never written
    if (tid < rows) {
      const int t = tok0 + tid;
      c = context_lens[t];
      if (!seq_ok || seq_idx[t] != seq || c < 0 || c > capacity) c = -1;
      if (c >= 0) {
        atomicMax(&s_max_ctx, c);
        atomicMin(&s_min_ctx, c);
      }
    }
    s_ctx[tid] = c;
  }
  __syncthreads();
  const int max_ctx = s_max_ctx, min_ctx = s_min_ctx;
  const int num_kv_tiles = (max_ctx + kPrefillTileK - 1) / kPrefillTileK;

  const int* bt_row = block_tables + static_cast<int64_t>(seq_ok ? seq : 0) * max_blocks_per_seq;
  const int bs_mask = (1 << block_shift) - 1;

  // Q tile: rows past the segment are zeros.
#pragma unroll
  for (int i = 0; i < kLoadsQ; ++i) {
    const int c = tid + i * kPrefillThreads;
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = r < rows;
    const T* src = query + (static_cast<int64_t>(tok0 + (valid ? r : 0)) * num_heads + head) * D;
    cp_async16(sQ + r * LDS + col, src + col, valid);
  }
  // K/V tile kt into buffer buf: key j = kt * 64 + r sits in physical block bt_row[j / bs],
  // slot j % bs. Keys at or past max_ctx are zeros (and their block-table entry is not read).
  auto load_kv = [&](int kt, int buf) {
    T* dk = sK + buf * kPrefillTileK * LDS;
    T* dv = sV + buf * kPrefillTileK * LDS;
#pragma unroll
    for (int i = 0; i < kLoadsKV; ++i) {
      const int c = tid + i * kPrefillThreads;
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const int j = kt * kPrefillTileK + r;
      const bool valid = j < max_ctx;
      int64_t off = 0;
      if (valid) {
        const int64_t phys = bt_row[j >> block_shift];
        off = (((phys * num_kv_heads + kvh) << block_shift) + (j & bs_mask)) * D + col;
      }
      cp_async16(dk + r * LDS + col, key_cache + off, valid);
      cp_async16(dv + r * LDS + col, value_cache + off, valid);
    }
  };
  if (num_kv_tiles > 0) load_kv(0, 0);
  cp_async_commit();  // group 0: Q and K/V tile 0

  const int g = lane / 4, t4 = lane % 4;
  const T* sQw = sQ + warp * kRowsPerWarp * LDS;  // this warp's 16 query rows
  const int r_lo = warp * kRowsPerWarp + g, r_hi = r_lo + 8;
  const int ctx_lo = max(s_ctx[r_lo], 0), ctx_hi = max(s_ctx[r_hi], 0);

  float o[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_lo = -INFINITY, m_hi = -INFINITY;  // running max (log2 units) of rows g and g+8
  float l_lo = 0.f, l_hi = 0.f;              // this thread's part of the running row sums
  uint32_t qf[kQInRegs ? KD : 1][4];

  for (int kt = 0; kt < num_kv_tiles; ++kt) {
    const int buf = kt & 1;
    // Prefetch tile kt+1 into the other buffer (freed by the barrier that ended iteration kt-1),
    // then wait for tile kt (and, at kt = 0, Q) and make every thread's copies visible.
    if (kt + 1 < num_kv_tiles) {
      load_kv(kt + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if constexpr (kQInRegs) {
      if (kt == 0) {
#pragma unroll
        for (int kd = 0; kd < KD; ++kd)
          ldmatrix_x4(qf[kd], sQw + (lane % 16) * LDS + kd * 16 + (lane / 16) * 8);
      }
    }

    // S = Q K^T for 16 rows x 64 keys per warp.
    const T* ks = sK + buf * kPrefillTileK * LDS;
    float s[NS][4];
#pragma unroll
    for (int n = 0; n < NS; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kd = 0; kd < KD; ++kd) {
      uint32_t a[4];
      if constexpr (kQInRegs) {
        a[0] = qf[kd][0];
        a[1] = qf[kd][1];
        a[2] = qf[kd][2];
        a[3] = qf[kd][3];
      } else {
        ldmatrix_x4(a, sQw + (lane % 16) * LDS + kd * 16 + (lane / 16) * 8);
      }
#pragma unroll
      for (int n2 = 0; n2 < NS / 2; ++n2) {
        uint32_t b[4];
        ldmatrix_x4(
            b, ks + (n2 * 16 + lane % 8 + (lane / 16) * 8) * LDS + kd * 16 + ((lane / 8) % 2) * 8);
        mma_16816<T>(s[2 * n2], a, b[0], b[1]);
        mma_16816<T>(s[2 * n2 + 1], a, b[2], b[3]);
      }
    }

    // Mask (only tiles that reach past the smallest context), scale, online softmax.
    const int key0 = kt * kPrefillTileK;
    const bool need_mask = key0 + kPrefillTileK > min_ctx;
    float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
    for (int n = 0; n < NS; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = key0 + n * 8 + t4 * 2 + e;
        float x_lo = s[n][e] * scale_log2, x_hi = s[n][2 + e] * scale_log2;
        if (need_mask) {
          if (j >= ctx_lo) x_lo = -INFINITY;
          if (j >= ctx_hi) x_hi = -INFINITY;
        }
        s[n][e] = x_lo;
        s[n][2 + e] = x_hi;
        mx_lo = fmaxf(mx_lo, x_lo);
        mx_hi = fmaxf(mx_hi, x_hi);
      }
    }
    const float mnew_lo = fmaxf(m_lo, quad_max(mx_lo)), mnew_hi = fmaxf(m_hi, quad_max(mx_hi));
    // A row with no visible key yet keeps m = -inf; 0 as its reference keeps exp2 away from
    // (-inf) - (-inf) = NaN (its p and alpha are then exp2(-inf) = 0).
    const float ref_lo = mnew_lo == -INFINITY ? 0.f : mnew_lo;
    const float ref_hi = mnew_hi == -INFINITY ? 0.f : mnew_hi;
    const float alpha_lo = exp2f(m_lo - ref_lo), alpha_hi = exp2f(m_hi - ref_hi);
    m_lo = mnew_lo;
    m_hi = mnew_hi;
    float sum_lo = 0.f, sum_hi = 0.f;
#pragma unroll
    for (int n = 0; n < NS; ++n) {
      s[n][0] = exp2f(s[n][0] - ref_lo);
      s[n][1] = exp2f(s[n][1] - ref_lo);
      s[n][2] = exp2f(s[n][2] - ref_hi);
      s[n][3] = exp2f(s[n][3] - ref_hi);
      sum_lo += s[n][0] + s[n][1];
      sum_hi += s[n][2] + s[n][3];
    }
    l_lo = l_lo * alpha_lo + sum_lo;
    l_hi = l_hi * alpha_hi + sum_hi;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      o[n][0] *= alpha_lo;
      o[n][1] *= alpha_lo;
      o[n][2] *= alpha_hi;
      o[n][3] *= alpha_hi;
    }

    // O += P V: P's 16-key k-step kk is S n-blocks 2kk and 2kk+1.
    const T* vs = sV + buf * kPrefillTileK * LDS;
#pragma unroll
    for (int kk = 0; kk < kPrefillTileK / 16; ++kk) {
      const uint32_t a[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]),
                             pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                             pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int n2 = 0; n2 < D / 16; ++n2) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vs + (kk * 16 + lane % 16) * LDS + n2 * 16 + (lane / 16) * 8);
        mma_16816<T>(o[2 * n2], a, b[0], b[1]);
        mma_16816<T>(o[2 * n2 + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with buffer buf before iteration kt+1 refills it
  }
  // With no K/V tile the Q copies may still be landing in the rows reused below.
  cp_async_wait<0>();
  __syncthreads();

  // out = O / l, staged through this warp's own Q rows for 16-byte coalesced stores.
  l_lo = quad_sum(l_lo);
  l_hi = quad_sum(l_hi);
  const float inv_lo = s_ctx[r_lo] < 0 ? NAN : (l_lo > 0.f ? 1.f / l_lo : 0.f);
  const float inv_hi = s_ctx[r_hi] < 0 ? NAN : (l_hi > 0.f ? 1.f / l_hi : 0.f);
  T* sO = sQ + warp * kRowsPerWarp * LDS;
  __syncwarp();
#pragma unroll
  for (int n = 0; n < NO; ++n) {
    *reinterpret_cast<uint32_t*>(sO + g * LDS + n * 8 + t4 * 2) =
        pack2<T>(o[n][0] * inv_lo, o[n][1] * inv_lo);
    *reinterpret_cast<uint32_t*>(sO + (g + 8) * LDS + n * 8 + t4 * 2) =
        pack2<T>(o[n][2] * inv_hi, o[n][3] * inv_hi);
  }
  __syncwarp();
  for (int c = lane; c < kRowsPerWarp * kChunks; c += kWarpSize) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const int row = warp * kRowsPerWarp + r;
    if (row < rows)
      *reinterpret_cast<uint4*>(out + (static_cast<int64_t>(tok0 + row) * num_heads + head) * D +
                                col) = *reinterpret_cast<const uint4*>(sO + r * LDS + col);
  }
}

template <typename T, int D>
void launch(const Tensor& out, const Tensor& query, const Tensor& key_cache,
            const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
            const Tensor& context_lens, float scale, std::span<const PrefillSegment> segments,
            cudaStream_t stream) {
  auto kernel = prefill_attention_kernel<T, D>;
  const size_t smem = prefill_attention_shared_bytes(D);
  if (smem > kSharedBytesWithoutOptIn)
    DAY18_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
  const int num_heads = static_cast<int>(query.size(1));
  const int num_kv_heads = static_cast<int>(key_cache.size(1));
  const int block_shift = paged_block_shift(static_cast<int>(key_cache.size(2)));
  const int max_blocks_per_seq = static_cast<int>(block_tables.size(1));
  const int num_seqs = static_cast<int>(block_tables.size(0));
  const float scale_log2 = scale * 1.4426950408889634f;
  size_t i = 0;
  while (i < segments.size()) {
    SegmentTable tab{};
    int64_t tiles = 0;
    for (; i < segments.size() && tab.count < kPrefillMaxSegmentsPerLaunch; ++i) {
      if (segments[i].num_tokens <= 0) continue;
      tab.token_start[tab.count] = segments[i].token_start;
      tab.num_tokens[tab.count] = segments[i].num_tokens;
      tiles += (segments[i].num_tokens + kPrefillTileQ - 1) / kPrefillTileQ;
      tab.tile_end[tab.count] = static_cast<int>(tiles);
      ++tab.count;
    }
    if (tab.count == 0) continue;
    const dim3 grid(static_cast<unsigned>(tiles * num_heads));
    kernel<<<grid, kPrefillThreads, smem, stream>>>(
        out.ptr<T>(), query.ptr<T>(), key_cache.ptr<T>(), value_cache.ptr<T>(),
        block_tables.ptr<int32_t>(), seq_idx.ptr<int32_t>(), context_lens.ptr<int32_t>(),
        scale_log2, num_heads, num_kv_heads, block_shift, max_blocks_per_seq, num_seqs, tab);
    DAY18_CHECK_LAUNCH();
  }
}

// The kernel is compiled for every head size of the decode kernels (kPagedAttentionHeadSizes): a
// size that is not a multiple of 16 (the k of one mma) would need a list of its own here, its
// prefill then taking the decode kernels (prefill_attention_supported false).
constexpr bool every_head_size_is_a_multiple_of_16() {
  for (int h : kPagedAttentionHeadSizes)
    if (h % 16 != 0) return false;
  return true;
}
static_assert(every_head_size_is_a_multiple_of_16(),
              "prefill_attention_kernel<T, D> needs D % 16 == 0 for every compiled head size");

template <typename T>
void dispatch_head(int head_size, auto&& go) {
  const bool compiled = dispatch_paged_attention_head_size(
      head_size, [&]<int D>() { go.template operator()<T, D>(); });
  DAY18_REQUIRE(compiled, "prefill_attention: head_size ", head_size,
                " not compiled (supported: ", paged_attention_head_sizes_text(), ")");
}

}  // namespace

bool prefill_attention_supported(DType dtype, int head_size) {
  if (dtype != DType::f16 && dtype != DType::bf16) return false;
  for (int h : kPagedAttentionHeadSizes)
    if (h == head_size) return true;
  return false;
}

size_t prefill_attention_shared_bytes(int head_size) {
  // Q tile + two K tiles + two V tiles, 2-byte elements, padded rows.
  return static_cast<size_t>(kPrefillTileQ + 4 * kPrefillTileK) * (head_size + kPad) * 2;
}

int64_t prefill_attention_num_tiles(std::span<const PrefillSegment> segments) {
  int64_t tiles = 0;
  for (const PrefillSegment& s : segments)
    if (s.num_tokens > 0) tiles += (s.num_tokens + kPrefillTileQ - 1) / kPrefillTileQ;
  return tiles;
}

void prefill_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                       const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                       const Tensor& context_lens, float scale,
                       std::span<const PrefillSegment> segments, cudaStream_t stream) {
  if (segments.empty() || query.size(1) == 0) return;
  auto go = [&]<typename T, int D>() {
    launch<T, D>(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens, scale,
                 segments, stream);
  };
  const int head_size = static_cast<int>(query.size(2));
  switch (query.dtype()) {
    case DType::f16:
      return dispatch_head<__half>(head_size, go);
    case DType::bf16:
      return dispatch_head<__nv_bfloat16>(head_size, go);
    default:
      DAY18_REQUIRE(false, "prefill_attention: dtype ", dtype_name(query.dtype()),
                    " has no tensor-core kernel (float16 and bfloat16 only)");
  }
}

}  // namespace day18::cuda
