// Lab 01, the trap (not a task: plain CUDA, none of your code). The two ways to lose the
// pipeline while every result stays right:
//   (a) a cudaMemcpyAsync from PAGEABLE host memory. The driver must first copy it into a pinned
//       bounce buffer of its own, with the CPU, chunk by chunk: the call returns only when
//       (nearly) all of it is staged, so the CPU cannot enqueue the next kernel meanwhile, and the
//       copy itself is several times slower. From PINNED memory the call returns at once and the
//       DMA engine overlaps the kernel enqueued after it.
//   (b) a cudaDeviceSynchronize between two enqueues: the second stream's work cannot start before
//       everything queued anywhere has finished, so two streams become one.
// Measured with events, printed, and asserted only with wide margins (timing must not make a test
// flaky); the "[ trap ]" lines are what to look at.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "tests/labs/01/lab01.h"

namespace day18 {
namespace {

double host_ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One H2D copy on one stream, then a kernel on another, enqueued in that order (as the executor
// enqueues step N+1's H2D and then its compute). Times in ms from the copy's start event.
struct CopyThenKernel {
  double call_ms = 0;          // host time inside cudaMemcpyAsync
  double copy_ms = 0;          // copy start .. copy end (events on the copy stream)
  double kernel_start_ms = 0;  // when the kernel's stream reached it
  double overlap_ms = 0;       // time the copy and the kernel ran together
};

CopyThenKernel copy_then_kernel(void* dst, const void* src, size_t bytes, double kernel_ms) {
  Stream copy_s, kern_s;
  Event c0, c1, k0, k1;
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  c0.record(copy_s);
  const auto h0 = std::chrono::steady_clock::now();
  DAY18_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, copy_s));
  CopyThenKernel r;
  r.call_ms = host_ms_since(h0);
  c1.record(copy_s);
  k0.record(kern_s);
  lab01::spin_kernel(kern_s, kernel_ms);
  k1.record(kern_s);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  r.copy_ms = Event::elapsed_ms(c0, c1);
  r.kernel_start_ms = Event::elapsed_ms(c0, k0);
  const double kernel_end = Event::elapsed_ms(c0, k1);
  r.overlap_ms = std::max(0.0, std::min(r.copy_ms, kernel_end) - std::max(0.0, r.kernel_start_ms));
  return r;
}

TEST(Lab01_Trap, APageableCopyBlocksTheHostAndDoesNotOverlapTheNextKernel) {
  DAY18_REQUIRE_GPU();
  constexpr size_t kBytes = size_t{256} << 20;
  Buffer dev(kBytes, Storage::device), pinned(kBytes, Storage::pinned);
  std::vector<char> pageable(kBytes, 1);  // written: every page is mapped
  std::memset(pinned.data(), 1, kBytes);
  // The kernel runs well past the pinned copy, so a pinned copy can overlap all of it.
  const CopyThenKernel warm = copy_then_kernel(dev.data(), pinned.data(), kBytes, 1.0);
  const double kernel_ms = 2 * warm.copy_ms + 5;
  const CopyThenKernel pin = copy_then_kernel(dev.data(), pinned.data(), kBytes, kernel_ms);
  const CopyThenKernel pag = copy_then_kernel(dev.data(), pageable.data(), kBytes, kernel_ms);
  for (auto [name, r] : {std::pair{"pinned  ", pin}, std::pair{"pageable", pag}})
    std::printf(
        "[ trap     ] %s 256 MiB H2D: call %.3f ms, copy %.2f ms (%.1f GB/s), the kernel "
        "enqueued after it started at %.2f ms, overlapped it %.2f ms\n",
        name, r.call_ms, r.copy_ms, kBytes / (r.copy_ms * 1e-3) / 1e9, r.kernel_start_ms,
        r.overlap_ms);
  // Pinned: the call returns at once; the kernel starts while the copy runs and overlaps it.
  EXPECT_LT(pin.call_ms, 0.25 * pin.copy_ms);
  EXPECT_LT(pin.kernel_start_ms, 0.25 * pin.copy_ms);
  EXPECT_GT(pin.overlap_ms, 0.5 * pin.copy_ms);
  // Pageable: the host is held in the call for much of the copy, so the kernel starts late (the
  // margins are wide on purpose: how much the driver stages ahead varies).
  EXPECT_GT(pag.call_ms, 0.25 * pag.copy_ms);
  EXPECT_GT(pag.kernel_start_ms, 0.25 * pag.copy_ms);
  EXPECT_GT(pag.kernel_start_ms, 4 * pin.kernel_start_ms + 1.0);
}

TEST(Lab01_Trap, ADeviceSynchronizeBetweenEnqueuesSerializesTheStreams) {
  DAY18_REQUIRE_GPU();
  // Two 20 ms kernels on two streams: together they take 20 ms; with a cudaDeviceSynchronize
  // between the two launches (a "safe" host wait between stages), 40.
  constexpr double kMs = 20;
  Stream a, b;
  auto span = [&](bool sync_between) {
    Event a0, a1, b0, b1;
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    a0.record(a);
    lab01::spin_kernel(a, kMs);
    a1.record(a);
    if (sync_between) DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    b0.record(b);
    lab01::spin_kernel(b, kMs);
    b1.record(b);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    return std::max(Event::elapsed_ms(a0, a1), Event::elapsed_ms(a0, b1));
  };
  span(false);  // warm-up (first launch)
  const double together = span(false), serialized = span(true);
  std::printf(
      "[ trap     ] two %.0f ms kernels on two streams: %.1f ms; with cudaDeviceSynchronize "
      "between the launches: %.1f ms\n",
      kMs, together, serialized);
  EXPECT_LT(together, 1.5 * kMs);
  EXPECT_GT(serialized, 1.9 * kMs);
}

}  // namespace
}  // namespace day18
