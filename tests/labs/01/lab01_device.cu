// The gate and the fixed-length kernel of the lab 01 tests (lab01_device.h). One block of one
// thread each: they occupy one SM slot, so the model's kernels on other streams run beside them.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "engine/core/error.h"
#include "tests/labs/01/lab01_device.h"

namespace day18::lab01 {
namespace {

// Nanoseconds of the GPU's global timer (the same clock on every SM).
__device__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel_k(uint64_t ns) {
  const uint64_t t0 = global_ns();
  while (global_ns() - t0 < ns) {
  }
}

// flags[0]: set by the host to open; flags[1]: set here when the timeout ended the wait.
__global__ void gate_kernel(volatile int* flags, uint64_t timeout_ns) {
  const uint64_t t0 = global_ns();
  while (flags[0] == 0) {
    if (global_ns() - t0 > timeout_ns) {
      flags[1] = 1;
      __threadfence_system();
      return;
    }
    __nanosleep(2000);
  }
}

}  // namespace

Gate::Gate(double timeout_s) : timeout_s_(timeout_s) {
  void* p = nullptr;
  DAY18_CUDA_CHECK(cudaHostAlloc(&p, 2 * sizeof(int), cudaHostAllocMapped));
  flags_ = static_cast<volatile int*>(p);
  flags_[0] = 0;
  flags_[1] = 0;
}

Gate::~Gate() {
  open();
  // The kernel reads flags_: let it finish before the memory goes (errors ignored: a destructor).
  (void)cudaDeviceSynchronize();
  (void)cudaFreeHost(const_cast<int*>(flags_));
}

void Gate::close_on(cudaStream_t stream) {
  flags_[0] = 0;
  flags_[1] = 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  int* dev = nullptr;
  DAY18_CUDA_CHECK(
      cudaHostGetDevicePointer(reinterpret_cast<void**>(&dev), const_cast<int*>(flags_), 0));
  gate_kernel<<<1, 1, 0, stream>>>(dev, static_cast<uint64_t>(timeout_s_ * 1e9));
  DAY18_CUDA_CHECK(cudaGetLastError());
}

void Gate::open() {
  flags_[0] = 1;
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool Gate::timed_out() const {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return flags_[1] != 0;
}

void spin_kernel(cudaStream_t stream, double ms) {
  spin_kernel_k<<<1, 1, 0, stream>>>(static_cast<uint64_t>(ms * 1e6));
  DAY18_CUDA_CHECK(cudaGetLastError());
}

bool completes_within(const Event& e, double ms) {
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    if (e.query()) return true;
    if (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() >
        ms)
      return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace day18::lab01
