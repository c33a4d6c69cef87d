// The bandwidth probe's copy, read-only and write-only kernels (see probe_kernels.h).
#include "engine/profiling/probe_kernels.h"

#include <algorithm>
#include <cstdint>

#include "engine/core/device.h"
#include "engine/core/error.h"
#include "engine/kernels/vec16.cuh"

namespace day18::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kBlocksPerSm = 4;  // 2048 threads per SM: the most an sm_90 SM holds
constexpr int kUnroll = 4;       // independent 16-byte loads in flight per thread

__global__ void copy_kernel(uint4* __restrict__ dst, const uint4* __restrict__ src, size_t n) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  // Full passes: kUnroll loads, then kUnroll stores.
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    uint4 r[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) r[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) dst[i + u * stride] = r[u];
  }
  for (; i < n; i += stride) dst[i] = src[i];  // the last partial pass
}

__global__ void read_kernel(const uint4* __restrict__ src, size_t n,
                            unsigned long long* __restrict__ sink) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned long long acc = 0;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    uint4 r[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) r[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc += (unsigned long long)r[u].x + r[u].y + r[u].z + r[u].w;
  }
  for (; i < n; i += stride) {
    const uint4 r = src[i];
    acc += (unsigned long long)r.x + r.y + r.z + r.w;
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if ((threadIdx.x & 31) == 0) atomicAdd(sink, acc);
}

__global__ void write_kernel(uint4* __restrict__ dst, size_t n) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  const uint4 pattern = make_uint4(0x5A5A5A5Au, 0xA5A5A5A5u, 0x5A5A5A5Au, 0xA5A5A5A5u);
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = pattern;
}

void require_words(const char* who, const void* p, size_t bytes) {
  DAY18_REQUIRE(bytes % 16 == 0, who, ": bytes must be a multiple of 16 (16-byte words), got ",
                bytes);
  DAY18_REQUIRE(aligned16(p), who, ": the pointer must be 16-byte aligned");
}

// Enough blocks to fill every SM (kBlocksPerSm each), fewer when there are fewer words.
unsigned grid_for(size_t words) {
  const size_t full = size_t(sm_count()) * kBlocksPerSm;
  const size_t needed = (words + kThreads - 1) / kThreads;
  return unsigned(std::max<size_t>(1, std::min(full, needed)));
}

}  // namespace

void probe_copy(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  require_words("probe_copy", dst, bytes);
  require_words("probe_copy", src, bytes);
  if (bytes == 0) return;
  const size_t n = bytes / 16;
  copy_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<uint4*>(dst),
                                                    static_cast<const uint4*>(src), n);
  DAY18_CHECK_LAUNCH();
}

void probe_read(const void* src, size_t bytes, unsigned long long* sink, cudaStream_t stream) {
  require_words("probe_read", src, bytes);
  DAY18_REQUIRE(sink != nullptr, "probe_read: sink must be a device pointer, got nullptr");
  if (bytes == 0) return;
  const size_t n = bytes / 16;
  read_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<const uint4*>(src), n, sink);
  DAY18_CHECK_LAUNCH();
}

void probe_write(void* dst, size_t bytes, cudaStream_t stream) {
  require_words("probe_write", dst, bytes);
  if (bytes == 0) return;
  const size_t n = bytes / 16;
  write_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<uint4*>(dst), n);
  DAY18_CHECK_LAUNCH();
}

}  // namespace day18::cuda
