// The bandwidth probe's kernels (engine/profiling/bandwidth.h, CopyKind::d2d_kernel, read_kernel,
// write_kernel): the plainest memory-bound kernels there are, so that what they reach is what the
// memory gives a kernel, and a kernel of the engine can be compared with them.
//
// One mapping for all three (stated once, here): 16-byte words (uint4); a grid of 4 blocks of 512
// threads per SM (enough warps in flight to cover HBM latency), grid-stride over the words, each
// thread issuing 4 independent 16-byte loads before it uses them. `bytes` must be a multiple of
// 16 and the pointers 16-byte aligned (cudaMalloc's are); InvalidArgument otherwise.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace day18::cuda {

// dst[i] = src[i] for the bytes / 16 words: reads `bytes`, writes `bytes`.
void probe_copy(void* dst, const void* src, size_t bytes, cudaStream_t stream);

// Reads every word and adds them up (a sum of the four 32-bit lanes of each word, per thread,
// then per warp with shuffles): one atomicAdd per warp into *sink. The sum depends on every
// load, so the compiler cannot drop one; it writes 8 bytes per warp, nothing per word.
void probe_read(const void* src, size_t bytes, unsigned long long* sink, cudaStream_t stream);

// Stores a 16-byte pattern into every word: writes `bytes`, reads nothing.
void probe_write(void* dst, size_t bytes, cudaStream_t stream);

}  // namespace day18::cuda
