#include "engine/core/system_memory.h"

#include <unistd.h>

#include <cuda_runtime.h>

#include <fstream>
#include <sstream>

#include "engine/core/error.h"

namespace day18 {
namespace {

// The first number in a one-line file ("max" or a missing file: false).
bool read_number(const char* path, uint64_t& v) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return false;
  try {
    size_t used = 0;
    v = std::stoull(s, &used);
    return used == s.size();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

AvailableMemory available_host_memory() {
  AvailableMemory m;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      m.bytes = kb * 1024;
      m.source = "MemAvailable in /proc/meminfo";
      break;
    }
  }
  if (m.source.empty()) {
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    m.bytes = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
    m.source = "sysconf(_SC_AVPHYS_PAGES)";
  }
  // A container's limit is what the OOM killer enforces.
  uint64_t limit = 0, usage = 0;
  const bool v2 = read_number("/sys/fs/cgroup/memory.max", limit) &&
                  read_number("/sys/fs/cgroup/memory.current", usage);
  const bool v1 = !v2 && read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
                  read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", usage);
  if ((v2 || v1) && limit > usage && limit - usage < m.bytes) {
    m.bytes = limit - usage;
    m.source = v2 ? "the cgroup's memory.max minus memory.current" : "the cgroup's memory limit";
  }
  return m;
}

AvailableMemory available_device_memory() {
  size_t free_b = 0, total_b = 0;
  DAY18_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  std::ostringstream os;
  os << "cudaMemGetInfo: free of " << total_b / double(1 << 30) << " GiB on the device";
  return {free_b, os.str()};
}

}  // namespace day18
