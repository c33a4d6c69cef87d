// Programmatic dependent launch (PDL, sm_90): letting a kernel start before the one before it on
// the stream has finished.
//
// A kernel launched with launch_pdl() may be scheduled as soon as every CTA of the previous
// kernel (the primary) has called pdl_launch_dependents() or exited. It must call
// pdl_wait_primary() before it touches anything the primary writes, or anything later kernels
// may overwrite; the wait returns when the primary has completed and its writes are visible.
// What it does before the wait is the point: work that depends on nothing mutable (a GEMV
// loading its weights, which are constant) overlaps the primary's tail and the launch latency.
// A kernel that calls pdl_launch_dependents() early (its first instruction) lets its dependents
// in as soon as its last wave has started. Both instructions are no-ops when the launch has no
// programmatic dependency, so a kernel works the same launched either way.
// Stream capture keeps the dependency as a programmatic edge of the CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "engine/core/error.h"

namespace day18::cuda {

// griddepcontrol exists from sm_90 on: compiled for an older architecture these are empty, so
// the code builds there (the engine's default and tested target is sm_90).
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_wait_primary() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialization allowed.
template <typename... KernelArgs, typename... Args>
void launch_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  DAY18_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace day18::cuda
