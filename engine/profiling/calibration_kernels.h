// Kernels whose bottleneck is known by construction: the classifier's ground truth. Each is
// launched once by `day18 calibrate --once` inside the NVTX range "calibrate" (domain day18), so
// one Nsight Compute run captures them all (scripts/profile_ncu.sh --calibration), and
// reference/ncu/labels.json says what each must be classified as and why.
//
//   calib_stream_copy     out = in, float4, 512 MiB each way, many waves: MEMORY BOUND (DRAM)
//   (cuBLAS GEMM)         8192^3 bf16 with fp32 accumulation: COMPUTE BOUND (tensor pipe)
//   calib_fma_loop        8 independent FMA chains per thread in registers, no memory:
//                         COMPUTE BOUND (FMA pipe)
//   calib_one_block       one block of 256 threads sums 4 MiB: LATENCY BOUND (grid below one wave)
//   calib_random_gather   out[i] = table[hash(i)] over a 1 GiB table, 4-byte elements: each
//                         32-byte sector fetched serves 4 bytes: UNCOALESCED
//   calib_smem_limited    200 KiB of shared memory per block: one block (4 warps) per SM, a
//                         plain streaming sum: LATENCY BOUND (occupancy limited by shared memory)
//
// Every launcher takes the stream last and checks the launch. The kernels compute something
// checkable (tests/engine/profiling/test_calibration_gpu.cu) so that the compiler keeps the work.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace day18::calibration {

// out[i] = in[i] for i < n (float4 elements). Grid: 4 waves of 256-thread blocks, grid-stride.
void stream_copy(const float4* in, float4* out, size_t n, cudaStream_t stream);

// Each thread runs `iters` rounds of 8 independent FMA chains (a = a * b + c) in registers and
// writes one float: 16 * iters FLOPs per thread. Grid: blocks x 256 threads.
void fma_loop(float* out, int blocks, int iters, float seed, cudaStream_t stream);
// The FLOPs fma_loop(out, blocks, iters, ...) performs.
double fma_loop_flops(int blocks, int iters);

// out[0] = sum(in[0..n)), computed by ONE block of 256 threads (grid = 1).
void one_block_sum(const float* in, float* out, size_t n, cudaStream_t stream);

// out[i] = table[gather_index(i, table_n, seed)] for i < n_out: a random gather.
void random_gather(const float* table, size_t table_n, float* out, size_t n_out, uint32_t seed,
                   cudaStream_t stream);
// The index random_gather reads for output i (host and device: a 32-bit integer hash).
uint64_t gather_index(uint64_t i, uint64_t table_n, uint32_t seed);

// out[b] = sum of block b's grid-stride share of in[0..n), with `smem_bytes` of dynamic shared
// memory per 128-thread block (the launcher opts in above 48 KB), `blocks` blocks.
void smem_limited_sum(const float* in, float* out, size_t n, int blocks, size_t smem_bytes,
                      cudaStream_t stream);
// The shared memory that holds smem_limited_sum to one block per SM on this GPU: more than half
// of what an SM has for blocks, at most what one block may have (opt-in limit).
size_t one_block_per_sm_smem_bytes();
// Blocks of smem_limited_sum that fit on one SM with `smem_bytes` (the occupancy calculator).
int smem_limited_blocks_per_sm(size_t smem_bytes);

// The cuBLAS GEMM of `day18 calibrate`: kGemmN^3, bf16 (2 kGemmN^3 FLOPs: the counters of sm_90's
// tensor cores do not count them; `day18 classify --calibration` attaches them).
inline constexpr int64_t kGemmN = 8192;

// What `day18 calibrate` runs, for listings and labels.
struct CalibrationKernel {
  std::string key;     // "stream_copy"
  std::string kernel;  // the kernel name ncu prints ("calib_stream_copy"; cuBLAS's for the GEMM)
  std::string expect;  // the verdict it must get ("MEMORY BOUND (DRAM)")
  std::string how;     // how it is made so
};
const std::vector<CalibrationKernel>& calibration_kernels();

}  // namespace day18::calibration
