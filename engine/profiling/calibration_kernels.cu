// The calibration kernels (calibration_kernels.h): each one is built so that ONE resource limits
// it, and nothing else comes close. Names are global (namespace-qualified only) and prefixed
// calib_ so that `ncu -k regex:calib_` and the labels find them.
#include "engine/profiling/calibration_kernels.h"

#include <algorithm>

#include "engine/core/device.h"
#include "engine/core/error.h"

namespace day18::calibration {

// ---------------------------------------------------------------------------- the kernels
// Streaming copy: every thread moves 16-byte words with a grid stride; reads and writes are
// perfectly coalesced and nothing is reused, so DRAM bandwidth is all that limits it.
__global__ void calib_stream_copy(const float4* __restrict__ in, float4* __restrict__ out,
                                  size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = in[i];
}

// FMA loop: 8 independent chains per thread hide the FMA latency (4 cycles), registers only, one
// store at the end: the FP32 FMA pipe is the only busy unit.
__global__ void calib_fma_loop(float* __restrict__ out, int iters, float seed) {
  float a[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) a[j] = seed + 1e-3f * static_cast<float>(threadIdx.x + j);
  const float b = 0.9999f, c = 1e-4f;
  for (int i = 0; i < iters; ++i) {
#pragma unroll
    for (int j = 0; j < 8; ++j) a[j] = fmaf(a[j], b, c);
  }
  float s = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) s += a[j];
  out[blockIdx.x * size_t(blockDim.x) + threadIdx.x] = s;
}

// Block-wide sum of 256 threads' partial sums into out[blockIdx.x].
__device__ void block_sum_256(float v, float* smem, float* out) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] += smem[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = smem[0];
}

// One block: 256 threads on one SM of 132; the other SMs idle whatever the code does.
__global__ void calib_one_block(const float* __restrict__ in, float* __restrict__ out, size_t n) {
  __shared__ float smem[256];
  float s = 0;
#pragma unroll 1
  for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += in[i];
  block_sum_256(s, smem, out);
}

__host__ __device__ __forceinline__ uint64_t hash_index(uint64_t i, uint64_t table_n,
                                                        uint32_t seed) {
  uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return (static_cast<uint64_t>(h) ^ (i >> 32) * 0x9e3779b97f4a7c15ull) & (table_n - 1);
}

// Random gather: a warp's 32 loads land in 32 different sectors of a 1 GiB table; each 32-byte
// sector fetched serves one 4-byte float (12.5% of it used).
__global__ void calib_random_gather(const float* __restrict__ table, uint64_t table_n,
                                    float* __restrict__ out, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = table[hash_index(i, table_n, seed)];
}

// Held to one block (4 warps) per SM by its dynamic shared memory: a plain streaming sum, one
// load in flight per thread (unroll 1), so 4 warps per SM cannot cover the memory latency.
__global__ void calib_smem_limited(const float* __restrict__ in, float* __restrict__ out,
                                   size_t n) {
  extern __shared__ float smem[];  // smem_bytes, most of it only reserved
  float s = 0;
#pragma unroll 1
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    s += in[i];
  smem[threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0;
    for (int k = 0; k < blockDim.x; ++k) t += smem[k];
    out[blockIdx.x] = t;
  }
}

// ---------------------------------------------------------------------------- launchers
namespace {
constexpr int kThreads = 256;
int waves_grid(int waves) {
  // 256-thread blocks: 8 fit on an SM of 2048 threads; `waves` waves of them.
  return cuda::sm_count() * 8 * waves;
}
}  // namespace

// Grid: 4 waves (sm_count x 8 x 4 blocks) of 256 threads, grid-stride over n.
void stream_copy(const float4* in, float4* out, size_t n, cudaStream_t stream) {
  calib_stream_copy<<<waves_grid(4), kThreads, 0, stream>>>(in, out, n);
  DAY18_CHECK_LAUNCH();
}

double fma_loop_flops(int blocks, int iters) {
  return static_cast<double>(blocks) * kThreads * iters * 8 * 2;
}

// Grid: `blocks` x 256 threads, one float out per thread.
void fma_loop(float* out, int blocks, int iters, float seed, cudaStream_t stream) {
  DAY18_REQUIRE(blocks >= 1 && iters >= 1, "fma_loop: blocks and iters must be >= 1, got ", blocks,
                ", ", iters);
  calib_fma_loop<<<blocks, kThreads, 0, stream>>>(out, iters, seed);
  DAY18_CHECK_LAUNCH();
}

// Grid: 1 block of 256 threads.
void one_block_sum(const float* in, float* out, size_t n, cudaStream_t stream) {
  calib_one_block<<<1, kThreads, 0, stream>>>(in, out, n);
  DAY18_CHECK_LAUNCH();
}

uint64_t gather_index(uint64_t i, uint64_t table_n, uint32_t seed) {
  return hash_index(i, table_n, seed);
}

// Grid: 4 waves of 256 threads, grid-stride over the outputs.
void random_gather(const float* table, size_t table_n, float* out, size_t n_out, uint32_t seed,
                   cudaStream_t stream) {
  DAY18_REQUIRE(table_n > 0 && (table_n & (table_n - 1)) == 0,
                "random_gather: table_n must be a power of two, got ", table_n);
  calib_random_gather<<<waves_grid(4), kThreads, 0, stream>>>(table, table_n, out, n_out, seed);
  DAY18_CHECK_LAUNCH();
}

size_t one_block_per_sm_smem_bytes() {
  int dev = 0, per_sm = 0, optin = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&dev));
  DAY18_CUDA_CHECK(
      cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  DAY18_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  // More than half of the SM's shared memory (two blocks cannot fit), within one block's limit.
  return std::min<size_t>(static_cast<size_t>(optin), static_cast<size_t>(per_sm) / 2 + 16 * 1024);
}

int smem_limited_blocks_per_sm(size_t smem_bytes) {
  DAY18_CUDA_CHECK(cudaFuncSetAttribute(calib_smem_limited,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_bytes)));
  int blocks = 0;
  DAY18_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, calib_smem_limited, 128, smem_bytes));
  return blocks;
}

// Grid: `blocks` x 128 threads, `smem_bytes` dynamic shared memory each.
void smem_limited_sum(const float* in, float* out, size_t n, int blocks, size_t smem_bytes,
                      cudaStream_t stream) {
  constexpr int kSmemThreads = 128;
  DAY18_REQUIRE(smem_bytes >= kSmemThreads * sizeof(float),
                "smem_limited_sum: smem_bytes must hold one float per thread, got ", smem_bytes);
  DAY18_CUDA_CHECK(cudaFuncSetAttribute(calib_smem_limited,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_bytes)));
  calib_smem_limited<<<blocks, kSmemThreads, smem_bytes, stream>>>(in, out, n);
  DAY18_CHECK_LAUNCH();
}

const std::vector<CalibrationKernel>& calibration_kernels() {
  static const std::vector<CalibrationKernel> v = {
      {"stream_copy", "calib_stream_copy", "MEMORY BOUND (DRAM)",
       "out = in over 512 MiB of float4 (16-byte coalesced loads and stores, no reuse), 4 waves"},
      {"tensor_gemm", "(cuBLAS GEMM kernel)", "COMPUTE BOUND (tensor pipe)",
       "cublasGemmEx 8192 x 8192 x 8192, bf16 in, fp32 accumulation (engine linear, algo cublas)"},
      {"fma_loop", "calib_fma_loop", "COMPUTE BOUND (FMA pipe)",
       "8 independent fmaf chains per thread in registers, 4096 rounds, one store per thread"},
      {"one_block", "calib_one_block", "LATENCY BOUND (grid below one wave)",
       "ONE block of 256 threads sums 4 MiB: 1 of the GPU's SMs works"},
      {"random_gather", "calib_random_gather", "UNCOALESCED",
       "out[i] = table[hash(i)], 4-byte floats from a 1 GiB table: 4 of each 32-byte sector used"},
      {"smem_limited", "calib_smem_limited", "LATENCY BOUND (occupancy limited by shared memory)",
       "a streaming sum with more than half an SM's shared memory per 128-thread block: 1 block "
       "(4 warps) per SM, 8 waves"},
  };
  return v;
}

}  // namespace day18::calibration
