// The GPU timer (engine/profiling/timing.h) on work of known duration. Each test skips without a
// GPU (and fails with REQUIRE_GPU=1).
#include <gtest/gtest.h>

#include <cstdint>

#include "engine/profiling/timing.h"
#include "tests/support/test_support.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

// Spins one thread until the GPU's global nanosecond timer has advanced by `ns`: a kernel whose
// duration is known whatever the GPU.
__global__ void spin_kernel(uint64_t ns) {
  uint64_t t0 = 0, t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
}

void expect_ordered(const Stats& s) {
  EXPECT_LE(s.min, s.p20);
  EXPECT_LE(s.p20, s.median);
  EXPECT_LE(s.median, s.p80);
  EXPECT_LE(s.p80, s.max);
  EXPECT_GE(s.mean, s.min);
  EXPECT_LE(s.mean, s.max);
}

TEST(GpuL2Flusher, BufferIsAtLeastTwiceTheL2) {
  DAY18_REQUIRE_GPU();
  int dev = 0, l2 = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&dev));
  DAY18_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  ASSERT_GT(l2, 0);
  L2Flusher f;
  EXPECT_EQ(f.l2_bytes(), static_cast<size_t>(l2));
  EXPECT_GE(f.bytes(), 2 * static_cast<size_t>(l2));
  EXPECT_GE(L2Flusher::shared().bytes(), 2 * static_cast<size_t>(l2));
  Stream s;
  f.flush(s);
  s.synchronize();
}

TEST(GpuTimeGpu, MemsetHonoursRepeatsAndGivesOrderedStatistics) {
  DAY18_REQUIRE_GPU();
  Buffer big(size_t(256) << 20, Storage::device);
  Stream s;
  int calls = 0;
  TimingOptions o;
  o.warmup = 2;
  o.repeats = 7;
  o.stream = s;
  const Stats ms = time_gpu(
      [&](cudaStream_t st) {
        ++calls;
        EXPECT_EQ(st, s.get()) << "fn must run on options.stream";
        DAY18_CUDA_CHECK(cudaMemsetAsync(big.data(), 1, big.size(), st));
      },
      o);
  EXPECT_EQ(calls, 2 + 7);
  ASSERT_EQ(ms.samples.size(), 7u);
  for (double v : ms.samples) EXPECT_GT(v, 0.0);
  expect_ordered(ms);
  // 256 MiB at >= 0.27 GB/s (any GPU): a second or more would mean the timer waits for more
  // than the memset.
  EXPECT_LT(ms.median, 1000.0);
}

TEST(GpuTimeGpu, KernelOfKnownDurationIsTimedAtThatDuration) {
  DAY18_REQUIRE_GPU();
  Stream s;
  TimingOptions o;
  o.repeats = 5;
  o.stream = s;
  const Stats ms = time_gpu(
      [](cudaStream_t st) {
        spin_kernel<<<1, 1, 0, st>>>(2'000'000);  // 2 ms
        DAY18_CHECK_LAUNCH();
      },
      o);
  expect_ordered(ms);
  EXPECT_GE(ms.min, 1.9);  // globaltimer ticks at 1 us or finer on every GPU since Volta
  EXPECT_LT(ms.median, 20.0);
}

TEST(GpuTimeGpu, TheL2FlushIsOutsideTheTimedInterval) {
  DAY18_REQUIRE_GPU();
  Stream s;
  TimingOptions flush_alone;
  flush_alone.flush_l2 = false;
  flush_alone.repeats = 5;
  flush_alone.stream = s;
  const double flush_ms =
      time_gpu([](cudaStream_t st) { L2Flusher::shared().flush(st); }, flush_alone).median;
  TimingOptions nothing_flushed;  // nothing between the events, the flush before them
  nothing_flushed.flush_l2 = true;
  nothing_flushed.repeats = 5;
  nothing_flushed.stream = s;
  const double empty_ms = time_gpu([](cudaStream_t) {}, nothing_flushed).median;
  EXPECT_LT(empty_ms, 0.5 * flush_ms)
      << "flush " << flush_ms << " ms, empty interval " << empty_ms << " ms";
}

TEST(GpuTimeGpu, DefaultStreamWorks) {
  DAY18_REQUIRE_GPU();
  TimingOptions o;  // stream nullptr: the legacy default stream
  o.repeats = 3;
  const Stats ms = time_gpu(
      [](cudaStream_t st) {
        spin_kernel<<<1, 1, 0, st>>>(100'000);  // 0.1 ms
        DAY18_CHECK_LAUNCH();
      },
      o);
  EXPECT_EQ(ms.samples.size(), 3u);
  EXPECT_GE(ms.min, 0.09);
}

TEST(GpuTimer, TimeOnceReturnsOneSampleOfTheWork) {
  DAY18_REQUIRE_GPU();
  Stream s;
  GpuTimer timer(s);
  const double ms = timer.time_once([](cudaStream_t st) {
    spin_kernel<<<1, 1, 0, st>>>(500'000);  // 0.5 ms
    DAY18_CHECK_LAUNCH();
  });
  EXPECT_GE(ms, 0.49);
  EXPECT_LT(ms, 20.0);
}

}  // namespace
}  // namespace day18
