// Limits of a CUDA device that launchers and planners size their work by: the SM count and the
// shared memory one thread block may use. Queried once per device (the attribute queries cost a
// driver round trip, and launchers read these at every launch) and cached; every CUDA call is
// checked (DAY18_CUDA_CHECK), so without a usable GPU the device queries throw day18::Error with
// the CUDA error and its hint.
//
//   const int sms = cuda::sm_count();                       // the current device's
//   if (smem > cuda::max_shared_bytes_per_block()) ...     // dynamic shared memory budget
//   const DeviceLimits lim = device_limits_or_nominal();   // planning, with or without a GPU
#pragma once

#include <cstddef>

namespace day18 {

// Static shared memory (__shared__ arrays) set aside for a kernel whose dynamic shared memory is
// sized by max_shared_bytes_per_block(): static and dynamic come out of one per-block budget.
// Every engine kernel that uses dynamic shared memory declares at most this much static memory,
// or checks against the exact figure itself (paged_attention_readable.cu).
inline constexpr size_t kStaticSharedReserve = 1024;
// Dynamic shared memory a kernel may use without opting in; above it the launcher must raise
// cudaFuncAttributeMaxDynamicSharedMemorySize first (up to the opt-in limit below).
inline constexpr size_t kSharedBytesWithoutOptIn = 48 * 1024;

struct DeviceLimits {
  int sm_count = 0;  // streaming multiprocessors
  // cudaDevAttrMaxSharedMemoryPerBlockOptin: static + dynamic shared memory of one block, for a
  // kernel that opts in (cudaFuncAttributeMaxDynamicSharedMemorySize) above the default 48 KB.
  size_t shared_bytes_per_block_optin = 0;
  // The dynamic shared memory a kernel with <= kStaticSharedReserve static bytes may ask for.
  size_t max_dynamic_shared_bytes() const {
    return shared_bytes_per_block_optin - kStaticSharedReserve;
  }
};

// The limits of `device`, or of the current device (cudaGetDevice). Throws without a GPU.
DeviceLimits device_limits(int device);
DeviceLimits device_limits();

// For planning (choosing a kernel variant, sizing a workspace) on any machine: the current
// device's limits, or, when cuda_available() is false, those of a nominal H100 SXM (132 SMs,
// 227 KB opt-in shared memory), so that plans and their validation run on a CPU-only machine
// the same way as on the GPU the engine is tuned for.
DeviceLimits device_limits_or_nominal();

namespace cuda {

// Streaming multiprocessors of the current device.
int sm_count();
// Largest dynamic shared memory one block may use on the current device (opt-in limit, less
// kStaticSharedReserve for the kernel's static shared arrays).
size_t max_shared_bytes_per_block();

}  // namespace cuda
}  // namespace day18
