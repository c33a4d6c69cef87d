// What the lab 04 tests share: a kernel of known length (lab04_device.cu), a host clock for
// "did that call wait?", and small helpers. Plain CUDA and C++, no learner code.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "engine/kernels/cache.h"
#include "engine/profiling/bandwidth.h"
#include "tests/labs/support/lab.h"

namespace day18::lab04 {

// One thread that busy-waits `ms` milliseconds on the GPU's global timer: work of a known length
// whatever the GPU, for "is this timed?" and "did the host wait for it?".
void spin(cudaStream_t stream, double ms);

// Milliseconds of host time that fn() takes (std::chrono::steady_clock).
template <typename F>
double host_ms(F&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Stats of hand-written times (ms).
inline Stats times(std::vector<double> ms) {
  return summarize(std::move(ms));
}

// "[(3 -> 10) x 3, (7 -> 7) x 1]": runs as a learner reads them in a failure message.
inline std::string describe(const std::vector<BlockRun>& runs) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < runs.size(); ++i)
    os << (i ? ", " : "") << "(" << runs[i].src << " -> " << runs[i].dst << ") x " << runs[i].count;
  os << "]";
  return os.str();
}

}  // namespace day18::lab04
