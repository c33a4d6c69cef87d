// Lab 04, task 1 (CPU): copy_rate, the two conventions for a copy's bytes and the GB/s of its
// times. Hand-computed cases; the numbers are the seed's own mistakes turned into tests.
#include "tests/labs/04/lab04.h"

namespace day18 {
namespace {

using lab04::times;

TEST(Lab04_Task1_Bytes, ADeviceCopyMovesTwiceTheBytesItCopies) {
  // A 1 GiB cudaMemcpy device to device reads 1 GiB and writes 1 GiB: 2 GiB cross HBM. The
  // seed's `size / d2d_time` counts 1 GiB, and reports half of what the memory did.
  const size_t gib = size_t(1) << 30;
  for (CopyKind k : {CopyKind::d2d, CopyKind::d2d_kernel}) {
    const CopyRate r = copy_rate(k, gib, times({0.5}));
    EXPECT_EQ(r.bytes_copied, double(gib)) << copy_kind_name(k) << ": bytes copied = the payload";
    EXPECT_EQ(r.bytes_moved, 2.0 * gib)
        << copy_kind_name(k) << ": bytes moved = bytes read + bytes written";
    EXPECT_NEAR(r.gbps, 2.0 * gib / 0.5e-3 / 1e9, 1e-9) << copy_kind_name(k) << ": gbps is moved";
    EXPECT_NEAR(r.gbps_copied, gib / 0.5e-3 / 1e9, 1e-9) << copy_kind_name(k);
  }
}

TEST(Lab04_Task1_Bytes, OneWayCopiesAndOneSidedKernelsMoveWhatTheyCopy) {
  // H2D/D2H: each byte crosses the link once. The read-only kernel reads each byte once, the
  // write-only kernel writes each once.
  for (CopyKind k : {CopyKind::h2d_pinned, CopyKind::d2h_pinned, CopyKind::h2d_pageable,
                     CopyKind::d2h_pageable, CopyKind::read_kernel, CopyKind::write_kernel}) {
    const CopyRate r = copy_rate(k, 4096, times({0.001}));
    EXPECT_EQ(r.bytes_copied, 4096.0) << copy_kind_name(k);
    EXPECT_EQ(r.bytes_moved, 4096.0) << copy_kind_name(k);
  }
}

TEST(Lab04_Task1_Bytes, BidirectionalCountsBothDirections) {
  // `bytes` per direction: 1 MiB goes in and 1 MiB comes out at the same time.
  const CopyRate r = copy_rate(CopyKind::bidirectional, 1 << 20, times({0.1}));
  EXPECT_EQ(r.bytes_copied, 2.0 * (1 << 20)) << "both directions are payload";
  EXPECT_EQ(r.bytes_moved, 2.0 * (1 << 20)) << "1x each way over a full-duplex link";
}

TEST(Lab04_Task1_Bytes, AGigabyteIsTenToTheNinthBytes) {
  // 3e9 bytes in 3 ms is 1000 GB/s. With 2^30 it would print 931 "GB/s" (GiB/s), 7% below
  // every datasheet, nvidia-smi and P.
  const CopyRate r = copy_rate(CopyKind::h2d_pinned, 3000000000, times({3.0}));
  EXPECT_NEAR(r.gbps, 1000.0, 1e-9);
  EXPECT_NEAR(r.gbps_copied, 1000.0, 1e-9);
}

TEST(Lab04_Task1_Bytes, TheSlowRepeatsGiveTheLowPercentile) {
  // Times 1, 2, 3, 4, 5 ms: p20 1.8 ms, median 3 ms, p80 4.2 ms (stats.h). Bandwidth falls as
  // time rises: gbps_p20 (20% of the repeats were slower) comes from the p80 TIME.
  const CopyRate r = copy_rate(CopyKind::d2h_pinned, 3000000000, times({5, 1, 3, 2, 4}));
  EXPECT_NEAR(r.gbps, 1000.0, 1e-9) << "the median time";
  EXPECT_NEAR(r.gbps_p20, 3e9 / 4.2e-3 / 1e9, 1e-9) << "bytes / p80 time";
  EXPECT_NEAR(r.gbps_p80, 3e9 / 1.8e-3 / 1e9, 1e-9) << "bytes / p20 time";
}

}  // namespace
}  // namespace day18
