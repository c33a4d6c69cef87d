// The device-side helpers of the lab 01 tests (lab01_device.cu): a gate that holds one stream
// still until the test opens it, and a kernel of a fixed length. Plain CUDA, no learner code.
#pragma once

#include <cuda_runtime.h>

#include "engine/core/memory.h"

namespace day18::lab01 {

// Holds `stream` still: close_on() enqueues a one-block kernel that spins until open() is called
// on the host (a flag in mapped pinned memory) or `timeout_s` has passed. Everything enqueued on
// that stream afterwards, and everything that waits on an event recorded there afterwards, waits.
// The destructor opens the gate and waits for the device, so a failing test never leaves a
// stream held.
class Gate {
 public:
  explicit Gate(double timeout_s = 5.0);
  ~Gate();
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void close_on(cudaStream_t stream);
  void open();
  // True when the kernel stopped because of the timeout: the host never opened it in time, which
  // in these tests means the host was blocked (in wait()) on work queued behind the gate.
  bool timed_out() const;

 private:
  volatile int* flags_ = nullptr;  // [0]: open, [1]: timed out (mapped pinned memory)
  double timeout_s_;
};

// A one-block kernel that busy-waits `ms` milliseconds on the GPU's global timer (the trap tests:
// "a kernel" whose length does not depend on the GPU's speed).
void spin_kernel(cudaStream_t stream, double ms);

// True if `e` completes within `ms` milliseconds (polled from the host).
bool completes_within(const Event& e, double ms);

}  // namespace day18::lab01
