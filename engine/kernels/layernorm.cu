// RMSNorm and fused residual-add + RMSNorm.
//
// Versions, picked by the launcher:
//   1. rms_norm_regs_kernel<T, VPT>: hidden_size a multiple of the 16-byte vector width
//      (8 halves / 4 floats) and at most 1024 * VPT vectors. Each thread loads its VPT vectors
//      of the row into registers once, the block reduces the sum of squares, and the same
//      registers are scaled and written: every byte of input is read exactly once from HBM.
//      For hidden 8192 fp16 that is 1024 threads x one 16-byte vector each; launch bounds ask
//      for 2 resident blocks per SM (2048 threads, the H100 maximum) so that one block streams
//      its loads while the other reduces.
//   2. rms_norm_loop_kernel<T, kVec>: any hidden size. Two passes over the row (the second pass
//      hits L1/L2); kVec = 16-byte vectors when hidden allows it, else one element at a time
//      (hidden 77, 1000, ...). Slower, always correct.
// Both exist for rms_norm and fused_add_rms_norm (kFused template flag). The math is fp32.
// out and input are not __restrict__: the fused op writes its result over input.
#include "engine/kernels/layernorm.h"

#include <algorithm>
#include <cstdint>

#include "engine/kernels/pdl.cuh"
#include "engine/kernels/vec16.cuh"

namespace day18::cuda {
namespace {

// N elements of T in one aligned 16-byte (or smaller, for N == 1) unit: a single LDG/STG.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T>
constexpr int kVecWidth = 16 / sizeof(T);  // elements per 16-byte vector

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of `v` over the block, returned to every thread. Warps reduce with shuffles, write one
// partial each to shared memory, and after the barrier every warp re-reduces the partials (so no
// second barrier is needed to broadcast the result). Called once per kernel: the scratch is not
// reused after the barrier, so there is no write-after-read race.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int num_warps = (blockDim.x + 31) >> 5;
  return warp_sum(lane < num_warps ? partial[lane] : 0.f);
}

// Version 1: the row lives in registers between the reduction and the write.
template <typename T, int VPT, bool kFused>
__global__ void __launch_bounds__(1024, VPT == 1 ? 2 : 1)
    rms_norm_regs_kernel(T* out,                        // [num_tokens, hidden] (fused: = input)
                         const T* input,                // [num_tokens, hidden]
                         T* residual,                   // [num_tokens, hidden] (fused only)
                         const T* __restrict__ weight,  // [hidden]
                         int num_vecs, float inv_hidden, float eps) {
  constexpr int V = kVecWidth<T>;
  using P = Pack<T, V>;
  pdl_launch_dependents();  // a GEMV after the norm may start loading its weights
  pdl_wait_primary();       // launched with PDL: the input is the previous kernel's output
  const int64_t row = static_cast<int64_t>(blockIdx.x) * num_vecs;  // in vectors
  const P* x = reinterpret_cast<const P*>(input) + row;
  const P* w = reinterpret_cast<const P*>(weight);

  P v[VPT];
  float sum_sq = 0.f;
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < num_vecs) {
      v[k] = x[i];
      if constexpr (kFused) {
        // residual = input + residual, rounded to T and stored; the norm uses the stored value.
        P* r = reinterpret_cast<P*>(residual) + row;
        const P rv = r[i];
#pragma unroll
        for (int j = 0; j < V; ++j)
          v[k].v[j] = from_float<T>(to_float(v[k].v[j]) + to_float(rv.v[j]));
        r[i] = v[k];
      }
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float f = to_float(v[k].v[j]);
        sum_sq += f * f;
      }
    }
  }
  const float inv_rms = rsqrtf(block_sum(sum_sq) * inv_hidden + eps);

  P* y = reinterpret_cast<P*>(out) + row;
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < num_vecs) {
      const P wv = w[i];
      P o;
#pragma unroll
      for (int j = 0; j < V; ++j)
        o.v[j] = from_float<T>(to_float(v[k].v[j]) * inv_rms * to_float(wv.v[j]));
      y[i] = o;
    }
  }
}

// Version 2: any hidden size, two passes over the row. V = elements per access (1 or 16 bytes).
// Each thread touches the same indices in both passes, so the fused second pass reads back the
// residual that this very thread wrote: no cross-thread dependency, no race.
template <typename T, int V, bool kFused>
__global__ void __launch_bounds__(1024)
    rms_norm_loop_kernel(T* out, const T* input, T* residual, const T* __restrict__ weight,
                         int num_vecs, float inv_hidden, float eps) {
  using P = Pack<T, V>;
  pdl_launch_dependents();  // a GEMV after the norm may start loading its weights
  pdl_wait_primary();       // launched with PDL: the input is the previous kernel's output
  const int64_t row = static_cast<int64_t>(blockIdx.x) * num_vecs;
  const P* x = reinterpret_cast<const P*>(input) + row;
  P* r = kFused ? reinterpret_cast<P*>(residual) + row : nullptr;
  const P* w = reinterpret_cast<const P*>(weight);

  float sum_sq = 0.f;
  for (int i = threadIdx.x; i < num_vecs; i += blockDim.x) {
    P v = x[i];
    if constexpr (kFused) {
      const P rv = r[i];
#pragma unroll
      for (int j = 0; j < V; ++j) v.v[j] = from_float<T>(to_float(v.v[j]) + to_float(rv.v[j]));
      r[i] = v;
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float f = to_float(v.v[j]);
      sum_sq += f * f;
    }
  }
  const float inv_rms = rsqrtf(block_sum(sum_sq) * inv_hidden + eps);

  P* y = reinterpret_cast<P*>(out) + row;
  for (int i = threadIdx.x; i < num_vecs; i += blockDim.x) {
    const P v = kFused ? r[i] : x[i];
    const P wv = w[i];
    P o;
#pragma unroll
    for (int j = 0; j < V; ++j)
      o.v[j] = from_float<T>(to_float(v.v[j]) * inv_rms * to_float(wv.v[j]));
    y[i] = o;
  }
}

int round_up_to_warp(int64_t n) {
  return static_cast<int>((n + 31) / 32 * 32);
}

// Shared launcher of both ops. Grid: one block per token (blockIdx.x = token). Block: the
// threads of that token's row; version 1 uses ceil(num_vecs / VPT) threads rounded up to a warp
// (<= 1024), version 2 min(1024, num_vecs rounded up to a warp) threads striding over the row.
template <bool kFused>
void launch_rms_norm(const Tensor& out, const Tensor& input, const Tensor& residual,
                     const Tensor& weight, double eps, cudaStream_t stream) {
  const int64_t num_tokens = input.size(0), hidden = input.size(1);
  if (num_tokens == 0 || hidden == 0) return;
  const float inv_hidden = static_cast<float>(1.0 / static_cast<double>(hidden));
  const float feps = static_cast<float>(eps);
  const dim3 grid(static_cast<unsigned>(num_tokens));
  dispatch_float(input.dtype(), [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* x = input.ptr<T>();
    T* r = kFused ? residual.ptr<T>() : nullptr;
    const T* w = weight.ptr<T>();
    constexpr int V = kVecWidth<T>;
    const bool vec_ok = hidden % V == 0 && aligned16(o) && aligned16(x) && aligned16(w) &&
                        (!kFused || aligned16(r));
    if (vec_ok) {
      const int64_t num_vecs = hidden / V;
      auto regs = [&]<int VPT>() {
        const int threads = round_up_to_warp((num_vecs + VPT - 1) / VPT);
        launch_pdl(rms_norm_regs_kernel<T, VPT, kFused>, grid, dim3(threads), 0, stream, o, x, r, w,
                   static_cast<int>(num_vecs), inv_hidden, feps);
        DAY18_CHECK_LAUNCH();
      };
      if (num_vecs <= 1024) return regs.template operator()<1>();
      if (num_vecs <= 2048) return regs.template operator()<2>();
      if (num_vecs <= 4096) return regs.template operator()<4>();
      launch_pdl(rms_norm_loop_kernel<T, V, kFused>, grid, dim3(1024), 0, stream, o, x, r, w,
                 static_cast<int>(num_vecs), inv_hidden, feps);
      DAY18_CHECK_LAUNCH();
      return;
    }
    const int threads = std::min(1024, round_up_to_warp(hidden));
    launch_pdl(rms_norm_loop_kernel<T, 1, kFused>, grid, dim3(threads), 0, stream, o, x, r, w,
               static_cast<int>(hidden), inv_hidden, feps);
    DAY18_CHECK_LAUNCH();
  });
}

}  // namespace

void rms_norm(const Tensor& out, const Tensor& input, const Tensor& weight, double eps,
              cudaStream_t stream) {
  launch_rms_norm<false>(out, input, Tensor(), weight, eps, stream);
}

void fused_add_rms_norm(const Tensor& input, const Tensor& residual, const Tensor& weight,
                        double eps, cudaStream_t stream) {
  // The normalized result overwrites input: out and input are the same buffer. Each element is
  // read (into registers, or by the same thread in the loop version) before it is written.
  launch_rms_norm<true>(input, input, residual, weight, eps, stream);
}

}  // namespace day18::cuda
