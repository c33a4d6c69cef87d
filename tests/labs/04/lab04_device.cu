// The fixed-length kernel of the lab 04 tests (lab04.h).
#include <cstdint>

#include "engine/core/error.h"
#include "tests/labs/04/lab04.h"

namespace day18::lab04 {
namespace {

__device__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel(uint64_t ns) {
  const uint64_t t0 = global_ns();
  while (global_ns() - t0 < ns) {
  }
}

}  // namespace

void spin(cudaStream_t stream, double ms) {
  spin_kernel<<<1, 1, 0, stream>>>(static_cast<uint64_t>(ms * 1e6));
  DAY18_CHECK_LAUNCH();
}

}  // namespace day18::lab04
