// RMSNorm and fused residual-add + RMSNorm.
//
// Versions, picked by the launcher as template arguments of rms_norm_kernel<T, V, VPT> and
// fused_add_rms_norm_kernel<T, V, VPT> (V = elements of T per access):
//   1. VPT > 0 (registers): hidden_size a multiple of the 16-byte vector width (V = 8 halves /
//      4 floats) and at most 1024 * VPT vectors. Each thread loads its VPT vectors of the row
//      (and of the weight) into registers once, the block reduces the sum of squares, and the
//      same registers are scaled and written: every byte of input is read exactly once from HBM.
//      How many vectors per thread is the launcher's rule (choose_norm): rms_norm takes blocks of
//      at most 256 threads (hidden 8192 fp16: 256 threads x 4 vectors), fused_add_rms_norm one
//      vector per thread up to 1024 threads (its two input rows already give each thread two
//      loads in flight). Launch bounds ask for 2 resident blocks per SM at VPT 1.
//   2. VPT == 0 (loop): any hidden size. Two passes over the row (the second pass hits L1/L2);
//      V = 16-byte vectors when hidden allows it, else 1 (hidden 77, 1000, ...). Slower, always
//      correct.
// The math is fp32.
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

// rms_norm, one CUDA block per token (row = blockIdx.x), V elements of T per access (a Pack):
//   VPT > 0 (version 1): each thread keeps its VPT packs of the row in registers from the load
//            to the write; the launcher gives enough threads that blockDim.x * VPT >= num_vecs;
//   VPT == 0 (version 2): any blockDim.x; threads stride over the row twice (the second pass
//            re-reads the row, from L1/L2).
// out may be input (in place): every thread reads its elements before the barrier in block_sum
// and writes only those same elements after it.
template <typename T, int V, int VPT>
__global__ void __launch_bounds__(1024, VPT == 1 ? 2 : 1)
    rms_norm_kernel(T* out,                        // [num_tokens, hidden] (may be input)
                    const T* input,                // [num_tokens, hidden]
                    const T* __restrict__ weight,  // [hidden]
                    int num_vecs,                  // hidden / V
                    float inv_hidden, float eps) {
  pdl_launch_dependents();  // a GEMV after the norm may start loading its weights
  pdl_wait_primary();       // launched with PDL: the input is the previous kernel's output
  // sum of squares of the row in fp32 -> block_sum() (every thread must call it: it holds a
  // barrier) -> inv_rms = rsqrtf(sum * inv_hidden + eps) -> out = x * inv_rms * w, rounded once.
  // LAB 03 BEGIN norm_kernel [device]: fp32 sum of squares, block_sum, scale (about 20 lines)
  using P = Pack<T, V>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * num_vecs;  // in packs
  const P* x = reinterpret_cast<const P*>(input) + row;
  const P* w = reinterpret_cast<const P*>(weight);
  P* y = reinterpret_cast<P*>(out) + row;
  if constexpr (VPT > 0) {
    // The weight is loaded with the row, before the barrier: its (L2) latency hides under the
    // row's (DRAM) one instead of adding a second round trip after the reduction.
    P v[VPT], wv[VPT];
    float sum_sq = 0.f;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < num_vecs) {
        v[k] = x[i];
        wv[k] = w[i];
      }
    }
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      if (threadIdx.x + k * blockDim.x < num_vecs) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float f = to_float(v[k].v[j]);
          sum_sq += f * f;
        }
      }
    }
    const float inv_rms = rsqrtf(block_sum(sum_sq) * inv_hidden + eps);
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < num_vecs) {
        P o;
#pragma unroll
        for (int j = 0; j < V; ++j)
          o.v[j] = from_float<T>(to_float(v[k].v[j]) * inv_rms * to_float(wv[k].v[j]));
        y[i] = o;
      }
    }
  } else {
    float sum_sq = 0.f;
    for (int i = threadIdx.x; i < num_vecs; i += blockDim.x) {
      const P v = x[i];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float f = to_float(v.v[j]);
        sum_sq += f * f;
      }
    }
    const float inv_rms = rsqrtf(block_sum(sum_sq) * inv_hidden + eps);
    for (int i = threadIdx.x; i < num_vecs; i += blockDim.x) {
      const P v = x[i];
      const P wv = w[i];
      P o;
#pragma unroll
      for (int j = 0; j < V; ++j)
        o.v[j] = from_float<T>(to_float(v.v[j]) * inv_rms * to_float(wv.v[j]));
      y[i] = o;
    }
  }
  // LAB 03 END norm_kernel
}

// fused_add_rms_norm, the same mapping and versions as rms_norm_kernel. The sum input + residual
// is rounded to T and stored in residual (the next layer's residual stream), and the norm is taken
// of that stored value; the normalized row overwrites input. Each thread re-reads (version 2: from
// residual) only the elements it wrote itself: no other thread's write is awaited, no race.
template <typename T, int V, int VPT>
__global__ void __launch_bounds__(1024, VPT == 1 ? 2 : 1)
    fused_add_rms_norm_kernel(T* input,                      // [num_tokens, hidden] x -> normed
                              T* residual,                   // [num_tokens, hidden] r -> x + r
                              const T* __restrict__ weight,  // [hidden]
                              int num_vecs, float inv_hidden, float eps) {
  pdl_launch_dependents();  // a GEMV after the norm may start loading its weights
  pdl_wait_primary();       // launched with PDL: the input is the previous kernel's output
  // residual = T(x + r) stored, then rms_norm of the stored values written over input.
  // LAB 03 BEGIN fused_add_norm_kernel [device]: residual += x (stored), norm it into input
  using P = Pack<T, V>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * num_vecs;  // in packs
  P* x = reinterpret_cast<P*>(input) + row;
  P* r = reinterpret_cast<P*>(residual) + row;
  const P* w = reinterpret_cast<const P*>(weight);
  if constexpr (VPT > 0) {
    P v[VPT], wv[VPT];  // the weight loaded with the row (as in rms_norm_kernel)
    float sum_sq = 0.f;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < num_vecs) {
        v[k] = x[i];
        wv[k] = w[i];
        const P rv = r[i];
#pragma unroll
        for (int j = 0; j < V; ++j)
          v[k].v[j] = from_float<T>(to_float(v[k].v[j]) + to_float(rv.v[j]));
        r[i] = v[k];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float f = to_float(v[k].v[j]);
          sum_sq += f * f;
        }
      }
    }
    const float inv_rms = rsqrtf(block_sum(sum_sq) * inv_hidden + eps);
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < num_vecs) {
        P o;
#pragma unroll
        for (int j = 0; j < V; ++j)
          o.v[j] = from_float<T>(to_float(v[k].v[j]) * inv_rms * to_float(wv[k].v[j]));
        x[i] = o;
      }
    }
  } else {
    float sum_sq = 0.f;
    for (int i = threadIdx.x; i < num_vecs; i += blockDim.x) {
      P v = x[i];
      const P rv = r[i];
#pragma unroll
      for (int j = 0; j < V; ++j) v.v[j] = from_float<T>(to_float(v.v[j]) + to_float(rv.v[j]));
      r[i] = v;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float f = to_float(v.v[j]);
        sum_sq += f * f;
      }
    }
    const float inv_rms = rsqrtf(block_sum(sum_sq) * inv_hidden + eps);
    for (int i = threadIdx.x; i < num_vecs; i += blockDim.x) {
      const P v = r[i];
      const P wv = w[i];
      P o;
#pragma unroll
      for (int j = 0; j < V; ++j)
        o.v[j] = from_float<T>(to_float(v.v[j]) * inv_rms * to_float(wv.v[j]));
      x[i] = o;
    }
  }
  // LAB 03 END fused_add_norm_kernel
}

int round_up_to_warp(int64_t n) {
  return static_cast<int>((n + 31) / 32 * 32);
}

// The launch configuration of a row of `hidden` elements: threads per block and version.
// threads_override 0: version 1 uses ceil(num_vecs / VPT) threads rounded up to a warp with the
// smallest VPT in {1, 2, 4} that keeps the block within max_threads (rms_norm: 256, and VPT 4
// up to 1024 threads beyond that; fused_add_rms_norm: 1024), version 2 1024 (vectorized) or min(1024,
// hidden rounded up to a warp) threads striding over the row. threads_override t (the tuning
// experiment): t threads, with the smallest VPT in {1, 2, 4} for which t * VPT >= num_vecs, else
// version 2 with t threads.
//
// Why rms_norm stops at 256 threads: a thread of version 1 has VPT 16-byte loads in flight
// before the barrier, and at VPT 1 a whole SM (2 blocks of 1024) holds only 32 KB of reads in
// flight, too few for the H200's HBM3e. Measured on the H200 (fp16, % of the D2D copy bandwidth
// of the same run; BM_rms_norm_threads), threads 128 / 256 / 512 / 1024:
//   [16384, 8192]: 69.5 (the loop version: 8 vectors do not fit) / 95.9 (4 vectors) / 95.1 (2)
//                  / 77.7% (1)
//   [16384, 4096]: 92.4 (4 vectors) / 91.5 (2) / 85.7 (1) / 54.0% (1, half the threads idle)
// (ncu at 1024 threads, [16384, 8192]: DRAM 67% of peak at 90% achieved occupancy: occupancy is
// not the limit, bytes in flight are). The fused op reads two rows per thread, which doubles its
// bytes in flight: 96% of P at 1024 threads.
constexpr int kNormMaxThreads = 256;
struct NormChoice {
  int threads = 0;
  int vpt = 0;  // 1, 2, 4: version 1; 0: version 2
  bool vec = false;
};
NormChoice choose_norm(int64_t hidden, int vec_width, bool vec_ok, int threads_override,
                       bool fused) {
  NormChoice c;
  c.vec = vec_ok;
  if (!vec_ok) {
    c.threads = threads_override ? threads_override : std::min(1024, round_up_to_warp(hidden));
    return c;
  }
  const int64_t num_vecs = hidden / vec_width;
  if (threads_override) {
    c.threads = threads_override;
    for (int vpt : {1, 2, 4})
      if (int64_t{threads_override} * vpt >= num_vecs) {
        c.vpt = vpt;
        return c;
      }
    return c;
  }
  const int max_threads = fused ? 1024 : kNormMaxThreads;
  for (int vpt : {1, 2, 4})
    if (num_vecs <= int64_t{max_threads} * vpt) {
      c.vpt = vpt;
      c.threads = round_up_to_warp((num_vecs + vpt - 1) / vpt);
      return c;
    }
  if (num_vecs <= 1024 * 4) {  // rms_norm beyond 256 x 4 vectors: 4 per thread, fewest threads
    c.vpt = 4;
    c.threads = round_up_to_warp((num_vecs + 3) / 4);
    return c;
  }
  c.threads = 1024;
  return c;
}

// Calls f(kernel) with the __global__ function of (kFused, T, choice): the one place that maps a
// choice to a template instance, shared by the launch and the occupancy query.
template <bool kFused, typename T, typename F>
void with_norm_kernel(const NormChoice& c, F&& f) {
  constexpr int V = kVecWidth<T>;
  auto pick = [&]<int VV, int VPT>() {
    if constexpr (kFused)
      f(fused_add_rms_norm_kernel<T, VV, VPT>);
    else
      f(rms_norm_kernel<T, VV, VPT>);
  };
  if (!c.vec) return pick.template operator()<1, 0>();
  switch (c.vpt) {
    case 1:
      return pick.template operator()<V, 1>();
    case 2:
      return pick.template operator()<V, 2>();
    case 4:
      return pick.template operator()<V, 4>();
    default:
      return pick.template operator()<V, 0>();
  }
}

void require_norm_threads(int threads, const char* what) {
  if (threads < 32 || threads > 1024 || threads % 32 != 0)
    throw InvalidArgument(detail::concat(what, ": threads ", threads,
                                         " must be a multiple of 32 in [32, 1024]"));
}

// Shared launcher of both ops. Grid: one block per token (blockIdx.x = token). Block: the
// threads of that token's row, as choose_norm() says.
template <bool kFused>
void launch_rms_norm(const Tensor& out, const Tensor& input, const Tensor& residual,
                     const Tensor& weight, double eps, cudaStream_t stream,
                     int threads_override = 0) {
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
    const NormChoice c = choose_norm(hidden, V, vec_ok, threads_override, kFused);
    const int num_vecs = static_cast<int>(vec_ok ? hidden / V : hidden);
    // The fused op works in place: out is input.
    with_norm_kernel<kFused, T>(c, [&](auto kernel) {
      if constexpr (kFused)
        launch_pdl(kernel, grid, dim3(c.threads), 0, stream, o, r, w, num_vecs, inv_hidden, feps);
      else
        launch_pdl(kernel, grid, dim3(c.threads), 0, stream, o, x, w, num_vecs, inv_hidden, feps);
      DAY18_CHECK_LAUNCH();
    });
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

RmsNormLaunch rms_norm_launch(DType dtype, int64_t hidden, bool fused, int threads_override) {
  if (threads_override != 0) require_norm_threads(threads_override, "rms_norm_launch");
  RmsNormLaunch l;
  dispatch_float(dtype, [&]<typename T>() {
    constexpr int V = kVecWidth<T>;
    const NormChoice c = choose_norm(hidden, V, hidden % V == 0, threads_override, fused);
    l.threads = c.threads;
    l.vectors_per_thread = c.vpt;
    l.vectorized = c.vec;
    auto take = [&](auto kernel) { l.kernel = reinterpret_cast<const void*>(kernel); };
    if (fused)
      with_norm_kernel<true, T>(c, take);
    else
      with_norm_kernel<false, T>(c, take);
  });
  return l;
}

void rms_norm_with_threads(const Tensor& out, const Tensor& input, const Tensor& weight,
                           double eps, int threads, cudaStream_t stream) {
  require_norm_threads(threads, "rms_norm_with_threads");
  launch_rms_norm<false>(out, input, Tensor(), weight, eps, stream, threads);
}

void fused_add_rms_norm_with_threads(const Tensor& input, const Tensor& residual,
                                     const Tensor& weight, double eps, int threads,
                                     cudaStream_t stream) {
  require_norm_threads(threads, "fused_add_rms_norm_with_threads");
  launch_rms_norm<true>(input, input, residual, weight, eps, stream, threads);
}

}  // namespace day18::cuda
