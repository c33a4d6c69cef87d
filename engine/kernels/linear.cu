// Linear layer = one cuBLAS GEMM. No kernel of ours: a GEMM is where a vendor library is the
// right tool, and the lesson is how to call it correctly:
//   - layouts: cuBLAS is column-major. Our row-major out[M, N] is column-major out^T [N, M], and
//     out^T = weight * input^T with weight [N, K] row-major = column-major [K, N] used
//     transposed. So one call with op(A) = T (A = weight, lda = K), op(B) = N (B = input,
//     ldb = K), C = out (ldc = N), m = N, n = M, k = K: no copies, no transposes in memory.
//   - fp16/bf16 inputs with fp32 accumulation: cublasGemmEx with CUBLAS_COMPUTE_32F.
//   - one handle per (thread, device): handles are not thread-safe to share, and creating one
//     per call costs far more than the GEMM of a decode step.
//   - cublasSetStream on every call, then cublasSetWorkspace: setting the stream resets the
//     workspace to cuBLAS's default pool, so the workspace is attached again after it.
//
// ...and one kernel of ours after all, for decode: the GEMV. With M = 1..8 tokens a GEMM is a
// matrix-vector product: 2 flops per weight element read, so the only thing that matters is
// streaming the weight from HBM at full speed. cuBLAS tiles the output in 64-128 rows per CTA, so
// for a 2048 x 2048 projection it launches 32-48 CTAs on 132 SMs and HBM sits half idle (the
// llama-1b decode step spent 1.5x its weight bytes / bandwidth in GEMMs). The GEMV gives every
// output row its own warp:
//   - a warp reads its weight row in 512-byte coalesced chunks (32 lanes x 16 bytes), UNROLL
//     independent chunks in flight per lane before the first is used, streaming past L1;
//   - each lane multiplies its 8 weights (fp16) with the matching 8 elements of each of the M
//     input rows (read through L1, where every warp of the SM finds them), accumulating fp32;
//   - a shuffle reduction over the warp gives the M outputs of the row.
// N = 2048 rows -> 2048 warps = 256 CTAs of 8 warps: every SM has work, and the loads in flight
// (not the arithmetic) set the speed. The kernel takes M <= 8, but each weight vector then needs
// M activation loads, and already at M = 2 cuBLAS's tiles (which reuse it from registers) win on
// the H100; the op's automatic choice (ops/linear.h) uses the GEMV for M = 1 only.
#include "engine/kernels/linear.h"

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/kernels/pdl.cuh"
#include "engine/kernels/vec16.cuh"

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

namespace day18::cuda {
namespace {

struct HandleEntry {
  cublasHandle_t handle = nullptr;
  void* workspace = nullptr;
};

// Handles are never destroyed: a thread that ends gives its handles back to this pool (per
// device) and the next thread reuses them. The pool itself is intentionally leaked at process
// exit, because destroying cuBLAS handles after the CUDA runtime has shut down can crash (the
// same choice PyTorch makes).
class HandlePool {
 public:
  static HandlePool& instance() {
    static HandlePool* pool = new HandlePool;  // leaked on purpose, see above
    return *pool;
  }

  HandleEntry acquire(int device) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& free_list = free_[device];
      if (!free_list.empty()) {
        HandleEntry e = free_list.back();
        free_list.pop_back();
        return e;
      }
    }
    HandleEntry e;
    DAY18_CUBLAS_CHECK(cublasCreate(&e.handle));
    // Default math: no TF32 for fp32 GEMMs, tensor cores for fp16/bf16. And no reduced-precision
    // reductions: a split-K GEMM must add its partial sums in fp32 (the compute type), not in
    // the fp16/bf16 output type, which cuBLAS would otherwise be allowed to do.
    DAY18_CUBLAS_CHECK(cublasSetMathMode(
        e.handle, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                            CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    DAY18_CUDA_CHECK(cudaMalloc(&e.workspace, kCublasWorkspaceBytes));
    // Zeroed once, when the handle is made: cuBLASLt's split-K reduce reads parts of its
    // workspace that the GEMM before it did not write (the results do not depend on them), and
    // compute-sanitizer initcheck reports each such read (56 on the H200). A defined workspace
    // makes initcheck clean for the whole engine, at the cost of one memset per handle.
    DAY18_CUDA_CHECK(cudaMemset(e.workspace, 0, kCublasWorkspaceBytes));
    return e;
  }

  void release(int device, HandleEntry e) {
    std::lock_guard<std::mutex> lock(mu_);
    free_[device].push_back(e);
  }

 private:
  std::mutex mu_;
  std::map<int, std::vector<HandleEntry>> free_;
};

// The calling thread's handles, one per device; given back to the pool when the thread ends.
struct ThreadHandles {
  std::map<int, HandleEntry> by_device;
  ~ThreadHandles() {
    for (auto& [dev, e] : by_device) HandlePool::instance().release(dev, e);
  }
};

HandleEntry& thread_handle() {
  thread_local ThreadHandles mine;
  int device = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&device));
  auto it = mine.by_device.find(device);
  if (it == mine.by_device.end())
    it = mine.by_device.emplace(device, HandlePool::instance().acquire(device)).first;
  return it->second;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::f16:
      return CUDA_R_16F;
    case DType::bf16:
      return CUDA_R_16BF;
    default:
      break;
  }
  DAY18_REQUIRE(false, "linear: dtype ", dtype_name(t), " has no cuBLAS GEMM here");
}

// ---- GEMV (M <= kGemvMaxM) ---------------------------------------------------------------------

constexpr int kGemvWarps = 8;  // warps per CTA
constexpr int kGemvThreads = kGemvWarps * 32;
constexpr int kGemvUnroll = 8;           // 16-byte weight loads in flight per lane (per buffer)
constexpr int kGemvStagedCtasPerSm = 4;  // grid cap with a staged prologue (see launch_gemv)

// GATED: before the GEMV, the CTA computes the activation silu(gate) * up of its M input rows
// once into shared memory, rounded to T exactly as silu_and_mul writes it (so the fused down
// projection equals the unfused pair bit for bit); the warps then read it from there. Computing
// it per warp instead, in the weight loop, repeats each exp N times: measured 2x slower than the
// unfused pair at M = 1, K = 8192, N = 2048.
template <typename T>
__device__ __forceinline__ void stage_silu_mul(T* __restrict__ act,            // [M, K] shared
                                               const T* __restrict__ gate_up,  // [M, 2K]
                                               int M, int K) {
  constexpr int V = kVec16<T>;
  const int vecs = K / V;
  for (int i = threadIdx.x; i < M * vecs; i += blockDim.x) {
    const int m = i / vecs, k = (i % vecs) * V;
    const T* row = gate_up + static_cast<int64_t>(m) * 2 * K;
    float g[V], u[V];
    unpack16<T>(load16(row + k), g);
    unpack16<T>(load16(row + K + k), u);
    alignas(16) T a[V];
#pragma unroll
    for (int e = 0; e < V; ++e) a[e] = from_float<T>(g[e] / (1.f + expf(-g[e])) * u[e]);
    *reinterpret_cast<uint4*>(act + static_cast<int64_t>(m) * K + k) =
        *reinterpret_cast<const uint4*>(a);
  }
}

// What the CTA computes into shared memory before the GEMV (the input x of the GEMV).
enum class Prologue { none, silu_mul, rms_norm };
struct NormArgs {                     // Prologue::rms_norm
  const void* residual = nullptr;     // [1, K] or null (plain RMSNorm)
  const void* norm_weight = nullptr;  // [K]
  void* residual_out = nullptr;       // [1, K] input + residual, written by CTA 0; or null
  float inv_k = 0, eps = 0;
};

// NORM: v = input (+ residual, rounded to T: the new residual stream, which CTA 0 stores), then
// x = v * rsqrt(mean(v^2) + eps) * norm_weight rounded to T: fused_add_rms_norm's arithmetic
// (rms_norm's without a residual). Each CTA recomputes the norm of the one row (K elements,
// read from L2): far cheaper than a launch of its own. The sum of squares is reduced in
// another order than the norm kernel's, so x may differ from the unfused path by a rounding.
template <typename T>
__device__ __forceinline__ void stage_rms_norm(T* __restrict__ x, const T* __restrict__ input,
                                               const NormArgs& a, int K) {
  constexpr int V = kVec16<T>;
  __shared__ float red[kGemvWarps];
  const T* res = static_cast<const T*>(a.residual);
  T* res_out = blockIdx.x == 0 ? static_cast<T*>(a.residual_out) : nullptr;
  float ss = 0.f;
  for (int k = threadIdx.x * V; k < K; k += blockDim.x * V) {
    float f[V];
    unpack16<T>(load16(input + k), f);
    alignas(16) T v[V];
    if (res) {
      float r[V];
      unpack16<T>(load16(res + k), r);
#pragma unroll
      for (int e = 0; e < V; ++e) v[e] = from_float<T>(f[e] + r[e]);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) v[e] = from_float<T>(f[e]);
    }
    const uint4 packed = *reinterpret_cast<const uint4*>(v);
    *reinterpret_cast<uint4*>(x + k) = packed;
    if (res_out) *reinterpret_cast<uint4*>(res_out + k) = packed;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float g = to_float(v[e]);
      ss += g * g;
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = ss;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kGemvWarps; ++w) total += red[w];
  const float inv_rms = rsqrtf(total * a.inv_k + a.eps);
  const T* nw = static_cast<const T*>(a.norm_weight);
  for (int k = threadIdx.x * V; k < K; k += blockDim.x * V) {  // the same thread's elements
    float v[V], w[V];
    unpack16<T>(*reinterpret_cast<const uint4*>(x + k), v);
    unpack16<T>(load16(nw + k), w);
    alignas(16) T o[V];
#pragma unroll
    for (int e = 0; e < V; ++e) o[e] = from_float<T>(v[e] * inv_rms * w[e]);
    *reinterpret_cast<uint4*>(x + k) = *reinterpret_cast<const uint4*>(o);
  }
}

// out[m, n] = sum_k x[m, k] * weight[n, k] for m < M, where x is `input` [M, K] (or, GATED, the
// activation of `input` [M, 2K] staged in shared memory). One warp per output row n.
// K is cut in groups of kGemvUnroll warp-wide chunks (32 lanes x 16 bytes each); the groups are
// double-buffered in registers: group g + 1 is in flight while group g is multiplied, so a row
// of 4 groups (K = 8192 halves) waits for memory about once, not four times.
// Launched with PDL: the first group of weights is loaded BEFORE waiting for the previous
// kernel, whose output x is. (Split-K over 2-4 warps per row was measured too: 40 us slower per
// llama-1b decode step than one warp per row with this prefetch.)
template <typename T, int MAXM, Prologue PRO>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(T* __restrict__ out,           // [M, N]
                const T* __restrict__ input,   // [M, K] or, silu_mul, [M, 2K]
                const T* __restrict__ weight,  // [N, K]
                int M, int N, int K, const NormArgs norm) {
  constexpr bool GATED = PRO == Prologue::silu_mul;
  constexpr bool STAGED = PRO != Prologue::none;  // x lives in shared memory
  constexpr int V = kVec16<T>;
  constexpr int kChunk = 32 * V;                // elements of one warp-wide 16-byte load
  constexpr int kGroup = kGemvUnroll * kChunk;  // elements of one group
  extern __shared__ uint4 staged[];
  pdl_launch_dependents();

  const int lane = threadIdx.x % 32;
  const int row_stride = gridDim.x * kGemvWarps;
  const int n0 = blockIdx.x * kGemvWarps + threadIdx.x / 32;
  const int num_groups = K / kGroup;
  const T* w = nullptr;
  auto load_group = [&](uint4(&buf)[kGemvUnroll], int g) {
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) buf[u] = load16_stream(w + g * kGroup + u * kChunk);
  };

  // Prefetch the first group of the first row: the weights do not depend on the previous kernel.
  uint4 wa[kGemvUnroll], wb[kGemvUnroll];
  if (n0 < N) {
    w = weight + static_cast<int64_t>(n0) * K + lane * V;
    if (num_groups > 0) load_group(wa, 0);
  }
  pdl_wait_primary();  // x is the previous kernel's output

  const T* x = input;
  if constexpr (GATED) {
    stage_silu_mul(reinterpret_cast<T*>(staged), input, M, K);
    x = reinterpret_cast<const T*>(staged);
    __syncthreads();
  } else if constexpr (PRO == Prologue::rms_norm) {  // M == 1
    stage_rms_norm(reinterpret_cast<T*>(staged), input, norm, K);
    x = reinterpret_cast<const T*>(staged);
    __syncthreads();
  }

  auto consume_into = [&](float(&acc)[MAXM], const uint4& wq, int k) {  // k: lane's 1st element
    float wf[V];
    unpack16<T>(wq, wf);
#pragma unroll
    for (int m = 0; m < MAXM; ++m) {
      if (m < M) {
        float xf[V];
        const T* xp = x + static_cast<int64_t>(m) * K + k;
        // Shared memory (staged) or global through L1: every warp of the SM reads the same x.
        unpack16<T>(STAGED ? *reinterpret_cast<const uint4*>(xp) : load16(xp), xf);
#pragma unroll
        for (int e = 0; e < V; ++e) acc[m] = fmaf(wf[e], xf[e], acc[m]);
      }
    }
  };

  // Rows n0, n0 + row_stride, ...: one row per warp when the grid covers N (no prologue), a few
  // when a staged prologue capped the grid (see launch_gemv).
  for (int n = n0; n < N; n += row_stride) {
    if (n != n0) {
      w = weight + static_cast<int64_t>(n) * K + lane * V;
      if (num_groups > 0) load_group(wa, 0);
    }
    float acc[MAXM];
#pragma unroll
    for (int m = 0; m < MAXM; ++m) acc[m] = 0.f;
    auto consume_group = [&](const uint4(&buf)[kGemvUnroll], int g) {
#pragma unroll
      for (int u = 0; u < kGemvUnroll; ++u)
        consume_into(acc, buf[u], g * kGroup + u * kChunk + lane * V);
    };
    for (int g = 0; g < num_groups; g += 2) {
      if (g + 1 < num_groups) load_group(wb, g + 1);
      consume_group(wa, g);
      if (g + 1 >= num_groups) break;
      if (g + 2 < num_groups) load_group(wa, g + 2);
      consume_group(wb, g + 1);
    }
    // The chunks after the last whole group (the last one may cover only some lanes).
    for (int k = num_groups * kGroup + lane * V; k < K; k += kChunk)
      consume_into(acc, load16_stream(weight + static_cast<int64_t>(n) * K + k), k);

#pragma unroll
    for (int m = 0; m < MAXM; ++m)
#pragma unroll
      for (int off = 16; off > 0; off /= 2) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
    if (lane < M) {
      // Lane m writes row m's output (a static index: acc stays in registers).
      float v = acc[0];
#pragma unroll
      for (int m = 1; m < MAXM; ++m)
        if (lane == m) v = acc[m];
      out[static_cast<int64_t>(lane) * N + n] = from_float<T>(v);
    }
  }
}

// Grid: ceil(N / 8) CTAs of 8 warps; warp w of CTA b computes output column n = 8 b + w for
// every token m < M. MAXM = M rounded up to 1, 2, 4 or 8 (the accumulators are registers).
// Launched with PDL (see pdl.cuh).
template <Prologue PRO>
void launch_gemv(const Tensor& out, const Tensor& input, const Tensor& weight, cudaStream_t stream,
                 const NormArgs& norm = {}) {
  const int M = static_cast<int>(input.size(0));
  const int N = static_cast<int>(weight.size(0)), K = static_cast<int>(weight.size(1));
  if (M == 0 || N == 0) return;
  const size_t smem =
      PRO != Prologue::none ? static_cast<size_t>(M) * K * dtype_size(input.dtype()) : 0;
  // One row per warp; but a staged prologue (the activation or the norm, computed by every CTA)
  // is paid once per CTA, so those grids stop at kGemvStagedCtasPerSm CTAs per SM and loop over
  // rows (the LM head's 16032 CTAs each normalizing the row cost more than the launch it saves).
  int ctas = (N + kGemvWarps - 1) / kGemvWarps;
  if constexpr (PRO != Prologue::none) {
    ctas = std::min(ctas, sm_count() * kGemvStagedCtasPerSm);
  }
  const dim3 grid(ctas);
  dispatch_float(input.dtype(), [&]<typename T>() {
    auto go = [&]<int MAXM>() {
      launch_pdl(gemv_kernel<T, MAXM, PRO>, grid, dim3(kGemvThreads), smem, stream, out.ptr<T>(),
                 static_cast<const T*>(input.ptr<T>()), static_cast<const T*>(weight.ptr<T>()), M,
                 N, K, norm);
      DAY18_CHECK_LAUNCH();
    };
    if constexpr (PRO != Prologue::none) {  // the fused prologues serve a decode token
      DAY18_REQUIRE(M == 1, "gemv with a fused prologue: M = ", M, ", only 1 is compiled");
      go.template operator()<1>();
    } else if (M == 1)
      go.template operator()<1>();
    else if (M == 2)
      go.template operator()<2>();
    else if (M <= 4)
      go.template operator()<4>();
    else
      go.template operator()<8>();
  });
}
}  // namespace

cublasHandle_t cublas_handle(cudaStream_t stream) {
  HandleEntry& e = thread_handle();
  DAY18_CUBLAS_CHECK(cublasSetStream(e.handle, stream));
  // After SetStream, which resets the workspace to the default pool.
  DAY18_CUBLAS_CHECK(cublasSetWorkspace(e.handle, e.workspace, kCublasWorkspaceBytes));
  return e.handle;
}

// Mapping: no grid of ours; cuBLAS picks the kernel and its tiling from (m, n, k) = (N, M, K).
void linear_cublas(const Tensor& out, const Tensor& input, const Tensor& weight,
                   cudaStream_t stream) {
  const int M = static_cast<int>(input.size(0)), K = static_cast<int>(input.size(1));
  const int N = static_cast<int>(weight.size(0));
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: out = 0 (not left to cuBLAS's reading of the k = 0 corner)
    DAY18_CUDA_CHECK(cudaMemsetAsync(out.data(), 0, out.nbytes(), stream));
    return;
  }
  cublasHandle_t handle = cublas_handle(stream);
  const cudaDataType_t type = cuda_type(input.dtype());
  const float alpha = 1.f, beta = 0.f;  // fp32 scalars: they match CUBLAS_COMPUTE_32F
  DAY18_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, weight.data(),
                                  type, K,                     // A: [N, K] row-major, transposed
                                  input.data(), type, K,       // B: [M, K] row-major
                                  &beta, out.data(), type, N,  // C: [M, N] row-major
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

bool gemv_supported(const Tensor& out, const Tensor& input, const Tensor& weight) {
  const int64_t M = input.size(0), K = weight.size(1);
  const int V = 16 / static_cast<int>(dtype_size(input.dtype()));
  return M >= 1 && M <= kGemvMaxM && K > 0 && K % V == 0 && input.size(1) % V == 0 &&
         aligned16(out.data()) && aligned16(input.data()) && aligned16(weight.data());
}

void gemv(const Tensor& out, const Tensor& input, const Tensor& weight, cudaStream_t stream) {
  launch_gemv<Prologue::none>(out, input, weight, stream);
}

bool gemv_silu_mul_supported(const Tensor& out, const Tensor& gate_up, const Tensor& weight) {
  return gate_up.size(0) == 1 && gemv_supported(out, gate_up, weight) &&
         weight.size(1) * dtype_size(gate_up.dtype()) <= kGemvMaxStagedBytes;
}

bool gemv_rms_norm_supported(const Tensor& out, const Tensor& input, const Tensor& weight,
                             const Tensor& residual, const Tensor& norm_weight,
                             const Tensor& residual_out) {
  auto ok = [](const Tensor& t) { return !t.defined() || aligned16(t.data()); };
  return input.size(0) == 1 && gemv_supported(out, input, weight) &&
         weight.size(1) * dtype_size(input.dtype()) <= kGemvMaxStagedBytes && ok(residual) &&
         aligned16(norm_weight.data()) && ok(residual_out);
}

void gemv_rms_norm(const Tensor& out, const Tensor& residual_out, const Tensor& input,
                   const Tensor& residual, const Tensor& norm_weight, float eps,
                   const Tensor& weight, cudaStream_t stream) {
  NormArgs a;
  a.residual = residual.defined() ? residual.data() : nullptr;
  a.norm_weight = norm_weight.data();
  a.residual_out = residual_out.defined() ? residual_out.data() : nullptr;
  a.inv_k = 1.f / static_cast<float>(input.size(1));
  a.eps = eps;
  launch_gemv<Prologue::rms_norm>(out, input, weight, stream, a);
}

void gemv_silu_mul(const Tensor& out, const Tensor& gate_up, const Tensor& weight,
                   cudaStream_t stream) {
  launch_gemv<Prologue::silu_mul>(out, gate_up, weight, stream);
}

}  // namespace day18::cuda
