// How much memory this process can still take, asked before a big allocation so that a model
// that cannot fit is refused with the numbers instead of being killed by the OOM killer a minute
// later (host) or failing deep inside a cudaMalloc (device).
#pragma once

#include <cstdint>
#include <string>

namespace day18 {

struct AvailableMemory {
  uint64_t bytes = 0;
  std::string source;  // where the number came from, for the error message
};

// Host RAM that can be allocated without swapping: MemAvailable of /proc/meminfo, lowered to the
// cgroup's limit minus its usage when the process runs in a memory-limited container (cgroup v2
// memory.max, or v1 memory.limit_in_bytes); sysconf(_SC_AVPHYS_PAGES) where /proc is missing.
AvailableMemory available_host_memory();

// Free memory of the current CUDA device (cudaMemGetInfo). Throws if there is no device.
AvailableMemory available_device_memory();

}  // namespace day18
