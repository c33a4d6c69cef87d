#include "engine/core/device.h"

#include <cuda_runtime.h>

#include <map>
#include <mutex>

#include "engine/core/error.h"
#include "engine/core/memory.h"

namespace day18 {
namespace {

// An H100 SXM: what planning assumes when there is no GPU (see device_limits_or_nominal).
constexpr DeviceLimits kNominalLimits{132, 227 * 1024};

DeviceLimits query(int device) {
  int sms = 0, optin = 0;
  DAY18_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  DAY18_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return {sms, static_cast<size_t>(optin)};
}

}  // namespace

DeviceLimits device_limits(int device) {
  static std::mutex mu;
  static std::map<int, DeviceLimits> cache;  // by device ordinal
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(device);
  if (it == cache.end()) it = cache.emplace(device, query(device)).first;
  return it->second;
}

DeviceLimits device_limits() {
  int device = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&device));
  return device_limits(device);
}

DeviceLimits device_limits_or_nominal() {
  return cuda_available() ? device_limits() : kNominalLimits;
}

namespace cuda {

int sm_count() {
  return device_limits().sm_count;
}

size_t max_shared_bytes_per_block() {
  return device_limits().max_dynamic_shared_bytes();
}

}  // namespace cuda
}  // namespace day18
