// Lab 04, task 3: host_buffer, the host side of a copy. On a CPU: pageable buffers have every
// page touched. On a GPU: pinned kinds get page-locked memory, which is what lets a
// cudaMemcpyAsync return at once and the copy engines run at the link's speed.
#include <cstring>

#include "tests/labs/04/lab04.h"

namespace day18 {
namespace {

// Every byte holds kHostTouchByte: every page was written before anything is timed.
::testing::AssertionResult touched(const Buffer& b) {
  const auto* p = static_cast<const unsigned char*>(b.data());
  for (size_t i = 0; i < b.size(); ++i)
    if (p[i] != kHostTouchByte)
      return ::testing::AssertionFailure()
             << "byte " << i << " (page " << i / 4096 << ") is " << int(p[i]) << ", not "
             << int(kHostTouchByte) << ": that page was never touched, so its first-touch page "
             << "fault would land inside a timed copy";
  return ::testing::AssertionSuccess();
}

TEST(Lab04_Task3_Pinned, PageableKindsGetHostMemoryWithEveryPageTouched) {
  for (CopyKind k : {CopyKind::h2d_pageable, CopyKind::d2h_pageable}) {
    const size_t bytes = (size_t(3) << 20) + 123;
    const Buffer b = host_buffer(k, bytes);
    EXPECT_EQ(b.storage(), Storage::host) << copy_kind_name(k) << ": ordinary (pageable) memory";
    EXPECT_EQ(b.size(), bytes) << copy_kind_name(k);
    EXPECT_TRUE(touched(b)) << copy_kind_name(k);
  }
}

TEST(Lab04_Task3_Pinned, PinnedKindsGetPageLockedMemory) {
  DAY18_REQUIRE_GPU();
  for (CopyKind k : {CopyKind::h2d_pinned, CopyKind::d2h_pinned, CopyKind::bidirectional}) {
    const Buffer b = host_buffer(k, 1 << 20);
    EXPECT_EQ(b.storage(), Storage::pinned) << copy_kind_name(k) << ": cudaMallocHost memory";
    cudaPointerAttributes a{};
    DAY18_CUDA_CHECK(cudaPointerGetAttributes(&a, b.data()));
    EXPECT_EQ(a.type, cudaMemoryTypeHost)
        << copy_kind_name(k) << ": the driver does not know this memory as page-locked";
    EXPECT_TRUE(touched(b)) << copy_kind_name(k);
  }
}

TEST(Lab04_Task3_Pinned, AnAsyncCopyFromPinnedMemoryDoesNotWaitForTheStream) {
  DAY18_REQUIRE_GPU();
  // 20 ms of work ahead of the copy on its stream. From pinned memory, cudaMemcpyAsync only
  // queues the DMA and returns. From pageable memory the driver must first copy the bytes into
  // its own pinned staging buffer, chunk by chunk as the DMA drains it: the call waits for the
  // stream (printed, for comparison; not asserted).
  const size_t bytes = size_t(256) << 20;
  Buffer dev(bytes, Storage::device);
  Stream s;
  auto enqueue_ms = [&](CopyKind k) {
    Buffer host = host_buffer(k, bytes);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    lab04::spin(s, 20.0);
    const double ms = lab04::host_ms([&] {
      DAY18_CUDA_CHECK(cudaMemcpyAsync(dev.data(), host.data(), bytes, cudaMemcpyHostToDevice, s));
    });
    s.synchronize();
    return ms;
  };
  const double pinned = enqueue_ms(CopyKind::h2d_pinned);
  const double pageable = enqueue_ms(CopyKind::h2d_pageable);
  std::printf(
      "[ lesson   ] cudaMemcpyAsync of 256 MiB behind a 20 ms kernel returned after "
      "%.2f ms from pinned memory, %.2f ms from pageable memory\n",
      pinned, pageable);
  EXPECT_LT(pinned, 10.0) << "the copy from your pinned buffer waited " << pinned
                          << " ms for the stream: is it really page-locked?";
}

TEST(Lab04_Task3_Pinned, TimingPinnedAndPageableCopiesOf64MiB) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  const size_t bytes = size_t(64) << 20;
  for (CopyKind k : {CopyKind::h2d_pinned, CopyKind::h2d_pageable, CopyKind::d2h_pinned,
                     CopyKind::d2h_pageable}) {
    CopyBench bench(k, bytes);
    lab::time_and_record(
        std::string(copy_kind_key(k)) + "_64M", double(bytes),
        [&](cudaStream_t st) { bench.enqueue(bytes, st); }, bench.stream(), 10);
  }
}

}  // namespace
}  // namespace day18
