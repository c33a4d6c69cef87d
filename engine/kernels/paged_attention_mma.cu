// Tensor-core decode attention (see paged_attention_mma.h for the algorithm and the grid).
//
// Fragment layouts: engine/kernels/mma.cuh, and the Q/K/V addressing is prefill_attention.cu's
// with the roles fixed for decode: the 16 rows of the A operand are the query heads of one KV
// group (rows past the group are zeros and never stored), and warp w owns keys 16w..16w+15 of
// every 64-key tile, so its S tile is 16 x 16 (two n-blocks) and one k-step of P V.
#include "engine/kernels/paged_attention_mma.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <type_traits>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/kernels/mma.cuh"
#include "engine/kernels/paged_attention.h"
#include "engine/kernels/pdl.cuh"

namespace day18::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kThreads = kPagedAttentionMmaThreads;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kTileK = kPagedAttentionMmaTileKeys;
constexpr int kRows = kPagedAttentionMmaMaxRows;
static_assert(kWarps * 16 == kTileK, "each warp takes 16 keys of a tile");
// Shared rows padded by 16 bytes: the 8 rows an ldmatrix matrix addresses fall in 8 different
// 16-byte bank groups.
constexpr int kPad = 8;
constexpr int kMaxBlockIds = kPagedAttentionMmaMaxPartition / 8 + 2;  // block size >= 8

template <int D>
struct Geo {
  static constexpr int kLDS = D + kPad;
  static constexpr int kStages = D <= 128 ? 3 : 2;
  static constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static constexpr size_t kQBytes = static_cast<size_t>(kRows) * kLDS * 2;
  static constexpr size_t kStageBytes = 2 * static_cast<size_t>(kTileK) * kLDS * 2;  // K + V
  static constexpr size_t kSmem = kQBytes + kStages * kStageBytes;
  // The warps' merge buffer reuses the stages: O [warps][16][D], max and sum [warps][16].
  static constexpr size_t kMergeBytes = static_cast<size_t>(kWarps) * kRows * (D + 2) * 4;
  static_assert(kMergeBytes <= kStages * kStageBytes, "merge buffer fits in the K/V stages");
  static_assert(D % 16 == 0 && (kTileK * kChunks) % kThreads == 0, "head size: multiple of 16");
};

size_t shared_bytes_of(int head_size) {
  const size_t lds = static_cast<size_t>(head_size + kPad);
  const int stages = head_size <= 128 ? 3 : 2;
  return kRows * lds * 2 + stages * 2 * static_cast<size_t>(kTileK) * lds * 2;
}

// Grid x = (token * num_kv_heads + kv_head) * row_chunks + chunk, y = partition.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) paged_attention_mma_kernel(
    T* __restrict__ out,                   // [num_tokens, num_heads, D]          (direct)
    float* __restrict__ exp_sums,          // [num_tokens, num_heads, parts]      (partitioned)
    float* __restrict__ max_logits,        // [num_tokens, num_heads, parts]      (partitioned)
    float* __restrict__ tmp_out,           // [num_tokens, num_heads, parts, D]   (partitioned)
    const T* __restrict__ query,           // [num_tokens, num_heads, D]
    const T* __restrict__ key_cache,       // [num_blocks, num_kv_heads, block_size, D]
    const T* __restrict__ value_cache,     // [num_blocks, num_kv_heads, block_size, D]
    const int* __restrict__ block_tables,  // [num_seqs, max_blocks_per_seq]
    const int* __restrict__ seq_idx,       // [num_tokens]
    const int* __restrict__ context_lens,  // [num_tokens]
    float scale_log2, int num_heads, int num_kv_heads, int block_shift, int max_blocks_per_seq,
    int num_seqs, int max_context_len, int partition_size, int max_num_partitions) {
  using G = Geo<D>;
  constexpr int LDS = G::kLDS, kStages = G::kStages, kChunks = G::kChunks;
  constexpr int KD = D / 16;  // k-steps of Q K^T
  constexpr int NO = D / 8;   // 8-column n-blocks of O
  constexpr bool kQInRegs = D <= 128;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sKV = sQ + kRows * LDS;  // stage s: K at sKV + s * 2 * kTileK * LDS, V after it
  __shared__ int s_bt[kMaxBlockIds];

  pdl_launch_dependents();  // the reduce kernel (or the o_proj GEMV) may be scheduled
  pdl_wait_primary();       // the query and the new KV rows come from the kernel before

  const int group = num_heads / num_kv_heads;
  const int chunks = (group + kRows - 1) / kRows;
  const int chunk = static_cast<int>(blockIdx.x % chunks);
  const int tk = static_cast<int>(blockIdx.x / chunks);
  const int kvh = tk % num_kv_heads;
  const int token = tk / num_kv_heads;
  const int head0 = kvh * group + chunk * kRows;
  const int rows = min(kRows, group - chunk * kRows);
  const int part = blockIdx.y;
  const bool direct = max_num_partitions == 1;
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;

  const int s = seq_idx[token];
  const int ctx = context_lens[token];
  if (s < 0 || s >= num_seqs || ctx <= 0 || ctx > max_context_len) {
    // Bad metadata -> NaN, padding (ctx == 0) -> zeros; partitioned: the reduce kernel does it.
    if (direct) {
      const float fill = ctx == 0 && s >= 0 && s < num_seqs ? 0.f : __int_as_float(0x7fc00000);
      for (int i = tid; i < rows * D; i += kThreads)
        out[(static_cast<int64_t>(token) * num_heads + head0) * D + i] = from_float<T>(fill);
    }
    return;
  }
  const int start = direct ? 0 : part * partition_size;
  if (start >= ctx) return;  // this partition lies beyond the context
  const int end = direct ? ctx : min(ctx, start + partition_size);
  const int num_tiles = (end - start + kTileK - 1) / kTileK;
  const int first_block = start >> block_shift;
  {
    const int n_bt = ((end - 1) >> block_shift) - first_block + 1;
    const int* bt = block_tables + static_cast<int64_t>(s) * max_blocks_per_seq + first_block;
    for (int i = tid; i < n_bt; i += kThreads) s_bt[i] = bt[i];
  }
  // Q: the group's rows, zeros below them (cp.async with src-size 0 reads nothing).
  for (int c = tid; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = r < rows;
    const T* src = query + (static_cast<int64_t>(token) * num_heads + head0 + (valid ? r : 0)) * D;
    cp_async16(sQ + r * LDS + col, src + col, valid);
  }
  __syncthreads();  // s_bt is filled

  const int bs_mask = (1 << block_shift) - 1;
  const int64_t head_stride = static_cast<int64_t>(D) << block_shift;
  const int64_t block_stride = head_stride * num_kv_heads;
  const T* k_head = key_cache + kvh * head_stride;
  const T* v_head = value_cache + kvh * head_stride;
  // Tile i (keys start + 64 i ..) into stage st; keys at or past `end` are zeros.
  auto load_tile = [&](int i, int st) {
    T* dk = sKV + st * 2 * kTileK * LDS;
    T* dv = dk + kTileK * LDS;
#pragma unroll
    for (int k = 0; k < kTileK * kChunks / kThreads; ++k) {
      const int c = tid + k * kThreads;
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const int j = start + i * kTileK + r;
      const bool valid = j < end;
      int64_t off = 0;
      if (valid)
        off = s_bt[(j >> block_shift) - first_block] * block_stride +
              static_cast<int64_t>(j & bs_mask) * D + col;
      cp_async16(dk + r * LDS + col, k_head + off, valid);
      cp_async16(dv + r * LDS + col, v_head + off, valid);
    }
  };
  // Prologue: tiles 0 .. kStages-2, one commit group each (group 0 also holds Q).
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < num_tiles) load_tile(st, st);
    cp_async_commit();
  }

  const int g = lane / 4, t4 = lane % 4;
  float o[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_lo = -INFINITY, m_hi = -INFINITY;  // running max (log2 units) of rows g and g + 8
  float l_lo = 0.f, l_hi = 0.f;              // this thread's part of the running row sums
  uint32_t qf[kQInRegs ? KD : 1][4];

  for (int i = 0; i < num_tiles; ++i) {
    // Tile i has landed (at most kStages-2 younger groups pending); the barrier also says every
    // warp is done with the stage the prefetch below overwrites (tile i-1's).
    cp_async_wait<kStages - 2>();
    __syncthreads();
    {
      const int nt = i + kStages - 1;
      if (nt < num_tiles) load_tile(nt, nt % kStages);
      cp_async_commit();  // possibly empty: keeps the group count uniform
    }
    if constexpr (kQInRegs) {
      if (i == 0) {
#pragma unroll
        for (int kd = 0; kd < KD; ++kd)
          ldmatrix_x4(qf[kd], sQ + (lane % 16) * LDS + kd * 16 + (lane / 16) * 8);
      }
    }
    const T* ks = sKV + (i % kStages) * 2 * kTileK * LDS + warp * 16 * LDS;
    const T* vs = ks + kTileK * LDS;

    // S = Q K^T: 16 rows x this warp's 16 keys.
    float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kd = 0; kd < KD; ++kd) {
      uint32_t a[4];
      if constexpr (kQInRegs) {
        a[0] = qf[kd][0];
        a[1] = qf[kd][1];
        a[2] = qf[kd][2];
        a[3] = qf[kd][3];
      } else {
        ldmatrix_x4(a, sQ + (lane % 16) * LDS + kd * 16 + (lane / 16) * 8);
      }
      uint32_t b[4];
      ldmatrix_x4(b, ks + (lane % 8 + (lane / 16) * 8) * LDS + kd * 16 + ((lane / 8) % 2) * 8);
      mma_16816<T>(sc[0], a, b[0], b[1]);
      mma_16816<T>(sc[1], a, b[2], b[3]);
    }

    // Scale, mask the keys past the partition (last tile only), online softmax. (The same update
    // as prefill_attention.cu's, on a 16 x 16 tile. Kept inline on purpose: a shared helper
    // measured 2-3% slower here on the H200 at head 128, another register allocation; see
    // docs/benchmarks.md.)
    const int key0 = start + i * kTileK + warp * 16;
    const bool need_mask = key0 + 16 > end;
    float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float x_lo = sc[n][e] * scale_log2, x_hi = sc[n][2 + e] * scale_log2;
        if (need_mask && key0 + n * 8 + t4 * 2 + e >= end) x_lo = x_hi = -INFINITY;
        sc[n][e] = x_lo;
        sc[n][2 + e] = x_hi;
        mx_lo = fmaxf(mx_lo, x_lo);
        mx_hi = fmaxf(mx_hi, x_hi);
      }
    const float mnew_lo = fmaxf(m_lo, quad_max(mx_lo)), mnew_hi = fmaxf(m_hi, quad_max(mx_hi));
    // A warp whose keys are all masked so far keeps m = -inf; 0 as the reference keeps exp2 away
    // from (-inf) - (-inf) = NaN (its p and alpha are exp2(-inf) = 0).
    const float ref_lo = mnew_lo == -INFINITY ? 0.f : mnew_lo;
    const float ref_hi = mnew_hi == -INFINITY ? 0.f : mnew_hi;
    const float alpha_lo = exp2f(m_lo - ref_lo), alpha_hi = exp2f(m_hi - ref_hi);
    m_lo = mnew_lo;
    m_hi = mnew_hi;
#pragma unroll
    for (int n = 0; n < 2; ++n) {
      sc[n][0] = exp2f(sc[n][0] - ref_lo);
      sc[n][1] = exp2f(sc[n][1] - ref_lo);
      sc[n][2] = exp2f(sc[n][2] - ref_hi);
      sc[n][3] = exp2f(sc[n][3] - ref_hi);
    }
    l_lo = l_lo * alpha_lo + (sc[0][0] + sc[0][1] + sc[1][0] + sc[1][1]);
    l_hi = l_hi * alpha_hi + (sc[0][2] + sc[0][3] + sc[1][2] + sc[1][3]);
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      o[n][0] *= alpha_lo;
      o[n][1] *= alpha_lo;
      o[n][2] *= alpha_hi;
      o[n][3] *= alpha_hi;
    }

    // O += P V: P (16 rows x 16 keys) is the A operand straight from the S accumulators.
    const uint32_t pa[4] = {pack2<T>(sc[0][0], sc[0][1]), pack2<T>(sc[0][2], sc[0][3]),
                            pack2<T>(sc[1][0], sc[1][1]), pack2<T>(sc[1][2], sc[1][3])};
#pragma unroll
    for (int n2 = 0; n2 < D / 16; ++n2) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, vs + (lane % 16) * LDS + n2 * 16 + (lane / 16) * 8);
      mma_16816<T>(o[2 * n2], pa, b[0], b[1]);
      mma_16816<T>(o[2 * n2 + 1], pa, b[2], b[3]);
    }
  }
  cp_async_wait<0>();  // the trailing (empty) groups
  __syncthreads();     // every warp is done with the stages: they hold the merge buffer now

  // Merge the warps: row r's result is sum_w 2^(m_w - M) O_w / sum_w 2^(m_w - M) l_w.
  float* mo = reinterpret_cast<float*>(sKV);  // [warps][16][D]
  float* mm = mo + kWarps * kRows * D;        // [warps][16]
  float* ml = mm + kWarps * kRows;            // [warps][16]
  l_lo = quad_sum(l_lo);
  l_hi = quad_sum(l_hi);
  {
    float* w_lo = mo + (warp * kRows + g) * D;
    float* w_hi = w_lo + 8 * D;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      *reinterpret_cast<float2*>(w_lo + n * 8 + t4 * 2) = make_float2(o[n][0], o[n][1]);
      *reinterpret_cast<float2*>(w_hi + n * 8 + t4 * 2) = make_float2(o[n][2], o[n][3]);
    }
    if (t4 == 0) {
      mm[warp * kRows + g] = m_lo;
      mm[warp * kRows + g + 8] = m_hi;
      ml[warp * kRows + g] = l_lo;
      ml[warp * kRows + g + 8] = l_hi;
    }
  }
  __syncthreads();
  auto row_stats = [&](int r, float (&wgt)[kWarps], float& total) {
    float M = mm[r];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) M = fmaxf(M, mm[w * kRows + r]);  // finite: >= 1 key
    total = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      wgt[w] = exp2f(mm[w * kRows + r] - M);
      total += wgt[w] * ml[w * kRows + r];
    }
    return M;
  };
  for (int idx = tid; idx < rows * D; idx += kThreads) {
    const int r = idx / D, d = idx % D;
    float wgt[kWarps], total;
    row_stats(r, wgt, total);
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v = fmaf(wgt[w], mo[(w * kRows + r) * D + d], v);
    v /= total;  // total >= 1: the maximum's own term is 2^0
    const int64_t row = static_cast<int64_t>(token) * num_heads + head0 + r;
    if (direct)
      out[row * D + d] = from_float<T>(v);
    else
      tmp_out[(row * max_num_partitions + part) * D + d] = v;
  }
  if (!direct && tid < rows) {
    float wgt[kWarps], total;
    const float M = row_stats(tid, wgt, total);
    const int64_t i = (static_cast<int64_t>(token) * num_heads + head0 + tid) * max_num_partitions +
                      part;
    exp_sums[i] = total;
    max_logits[i] = M * 0.6931471805599453f;  // log2 units -> natural: the reduce uses expf
  }
}

template <typename F>
void dispatch_head(int head_size, F&& f) {
  DAY18_REQUIRE(dispatch_paged_attention_head_size(head_size, f), "paged_attention_mma: head_size ",
                head_size, " not compiled (supported: ", paged_attention_head_sizes_text(), ")");
}

}  // namespace

bool paged_attention_mma_supported(DType dtype, int head_size) {
  if (dtype != DType::f16 && dtype != DType::bf16) return false;
  for (int h : kPagedAttentionHeadSizes)
    if (h == head_size) return true;
  return false;
}

size_t paged_attention_mma_shared_bytes(int head_size) {
  return shared_bytes_of(head_size);
}

int paged_attention_mma_blocks_per_sm(int head_size, size_t shared_per_sm) {
  constexpr size_t kReservedPerBlock = 1024;
  const size_t per_block = shared_bytes_of(head_size) + kMaxBlockIds * sizeof(int) +
                           kReservedPerBlock;
  const int by_smem = static_cast<int>(shared_per_sm / per_block);
  constexpr int kMaxThreadsPerSm = 2048;  // sm_80 .. sm_90
  return std::max(1, std::min(by_smem, kMaxThreadsPerSm / kThreads));
}

void paged_attention_mma(const Tensor& out, const Tensor& exp_sums, const Tensor& max_logits,
                         const Tensor& tmp_out, const Tensor& query, const Tensor& key_cache,
                         const Tensor& value_cache, const Tensor& block_tables,
                         const Tensor& seq_idx, const Tensor& context_lens, float scale,
                         int max_context_len, int partition_size, int max_num_partitions,
                         cudaStream_t stream) {
  const int num_tokens = static_cast<int>(query.size(0));
  const int num_heads = static_cast<int>(query.size(1));
  const int head_size = static_cast<int>(query.size(2));
  const int num_kv_heads = static_cast<int>(key_cache.size(1));
  if (num_tokens == 0 || num_heads == 0) return;
  const int group = num_heads / num_kv_heads;
  const int chunks = (group + kRows - 1) / kRows;
  const bool direct = max_num_partitions == 1;
  const dim3 grid(static_cast<unsigned>(num_tokens * num_kv_heads * chunks),
                  static_cast<unsigned>(max_num_partitions));
  const int block_shift = paged_block_shift(static_cast<int>(key_cache.size(2)));
  const float scale_log2 = scale * 1.4426950408889634f;
  auto go = [&]<typename T, int D>() {
    auto kernel = paged_attention_mma_kernel<T, D>;
    constexpr size_t smem = Geo<D>::kSmem;
    if (smem > kSharedBytesWithoutOptIn)
      DAY18_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(smem)));
    launch_pdl(kernel, grid, dim3(kThreads), smem, stream, out.ptr<T>(),
               direct ? nullptr : exp_sums.ptr<float>(), direct ? nullptr : max_logits.ptr<float>(),
               direct ? nullptr : tmp_out.ptr<float>(), static_cast<const T*>(query.ptr<T>()),
               static_cast<const T*>(key_cache.ptr<T>()),
               static_cast<const T*>(value_cache.ptr<T>()),
               static_cast<const int*>(block_tables.ptr<int32_t>()),
               static_cast<const int*>(seq_idx.ptr<int32_t>()),
               static_cast<const int*>(context_lens.ptr<int32_t>()), scale_log2, num_heads,
               num_kv_heads, block_shift, static_cast<int>(block_tables.size(1)),
               static_cast<int>(block_tables.size(0)), max_context_len, partition_size,
               max_num_partitions);
    DAY18_CHECK_LAUNCH();
  };
  switch (query.dtype()) {
    case DType::f16:
      dispatch_head(head_size, [&]<int D>() { go.template operator()<__half, D>(); });
      break;
    case DType::bf16:
      dispatch_head(head_size, [&]<int D>() { go.template operator()<__nv_bfloat16, D>(); });
      break;
    default:
      DAY18_REQUIRE(false, "paged_attention_mma: dtype ", dtype_name(query.dtype()),
                    " has no tensor-core kernel (float16 and bfloat16 only)");
  }
  if (!direct)
    paged_attention_v2_reduce(out, exp_sums, max_logits, tmp_out, seq_idx, context_lens,
                              static_cast<int>(block_tables.size(0)), max_context_len,
                              partition_size, stream);
}

}  // namespace day18::cuda
