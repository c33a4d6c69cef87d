// The bandwidth probe on a GPU (engine/profiling/bandwidth.h, bandwidth_probe.h, probe_kernels.h):
// the kernels move the right bytes, and one small sweep of every kind passes gross sanity checks
// (a measurement tool: no timing targets, only what would be physically wrong). Each test skips
// without a GPU (and fails with REQUIRE_GPU=1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "engine/profiling/bandwidth_probe.h"
#include "engine/profiling/probe_kernels.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

// ------------------------------------------------------------------ the kernels

TEST(GpuProbeKernels, CopyReadAndWriteMoveEveryWord) {
  DAY18_REQUIRE_GPU();
  // 3 MiB + 48 bytes: several grid-stride passes and a partial last one.
  const size_t bytes = (size_t(3) << 20) + 48, words = bytes / 4;
  std::vector<uint32_t> host(words);
  std::iota(host.begin(), host.end(), 1u);
  Buffer src(bytes, Storage::device), dst(bytes, Storage::device),
      sink(sizeof(unsigned long long), Storage::device);
  DAY18_CUDA_CHECK(cudaMemcpy(src.data(), host.data(), bytes, cudaMemcpyHostToDevice));
  DAY18_CUDA_CHECK(cudaMemset(dst.data(), 0, bytes));
  DAY18_CUDA_CHECK(cudaMemset(sink.data(), 0, sink.size()));
  Stream s;
  cuda::probe_copy(dst.data(), src.data(), bytes, s);
  cuda::probe_read(src.data(), bytes, static_cast<unsigned long long*>(sink.data()), s);
  s.synchronize();
  std::vector<uint32_t> back(words);
  DAY18_CUDA_CHECK(cudaMemcpy(back.data(), dst.data(), bytes, cudaMemcpyDeviceToHost));
  EXPECT_EQ(back, host) << "probe_copy";
  unsigned long long sum = 0, want = 0;
  DAY18_CUDA_CHECK(cudaMemcpy(&sum, sink.data(), sizeof sum, cudaMemcpyDeviceToHost));
  for (uint32_t v : host) want += v;
  EXPECT_EQ(sum, want) << "probe_read: the sum of every 32-bit word";

  cuda::probe_write(dst.data(), bytes, s);
  s.synchronize();
  DAY18_CUDA_CHECK(cudaMemcpy(back.data(), dst.data(), bytes, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < words; ++i)
    ASSERT_EQ(back[i], i % 2 == 0 ? 0x5A5A5A5Au : 0xA5A5A5A5u) << "probe_write, word " << i;
}

TEST(GpuProbeKernels, RejectSizesThatAreNotWholeWords) {
  DAY18_REQUIRE_GPU();
  Buffer b(64, Storage::device);
  EXPECT_THROW_WITH(cuda::probe_copy(b.data(), b.data(), 40, nullptr), InvalidArgument,
                    "multiple of 16", "40");
}

// ------------------------------------------------------------------ host buffers, CopyBench

TEST(GpuHostBuffer, PinnedKindsGetPageLockedMemoryPageableKindsDoNot) {
  DAY18_REQUIRE_GPU();
  for (CopyKind k : kAllCopyKinds) {
    if (!is_host_copy(k)) continue;
    Buffer b = host_buffer(k, 1 << 20);
    cudaPointerAttributes a{};
    DAY18_CUDA_CHECK(cudaPointerGetAttributes(&a, b.data()));
    const bool pinned =
        k == CopyKind::h2d_pinned || k == CopyKind::d2h_pinned || k == CopyKind::bidirectional;
    EXPECT_EQ(a.type, pinned ? cudaMemoryTypeHost : cudaMemoryTypeUnregistered) << copy_kind_key(k);
  }
}

TEST(GpuCopyBench, BidirectionalMovesBothWays) {
  DAY18_REQUIRE_GPU();
  // The bench's buffers are private; check through timing that both copies are inside the
  // events: the bidirectional time is at least the longer of the two one-way copies.
  const size_t bytes = size_t(64) << 20;
  CopyTiming t;
  t.repeats = 5;
  const double bi = CopyBench(CopyKind::bidirectional, bytes).measure(bytes, t).median_ms;
  const double h2d = CopyBench(CopyKind::h2d_pinned, bytes).measure(bytes, t).median_ms;
  const double d2h = CopyBench(CopyKind::d2h_pinned, bytes).measure(bytes, t).median_ms;
  EXPECT_GE(bi, 0.9 * std::max(h2d, d2h))
      << "bidirectional " << bi << " ms, H2D " << h2d << " ms, D2H " << d2h << " ms";
}

// ------------------------------------------------------------------ one small sweep

// One probe run shared by the tests below: every kind, 64 KiB .. 256 MiB in x4 steps, 5 repeats,
// and the seed's probe (at 256 MiB).
const ProbeReport& small_probe() {
  static const ProbeReport r = [] {
    ProbeOptions o;
    o.min_bytes = size_t(64) << 10;
    o.max_bytes = size_t(256) << 20;
    o.step = 4;
    o.repeats = 5;
    o.warmup = 2;
    return run_probe(o);
  }();
  return r;
}

std::vector<const BandwidthResult*> of_kind(const ProbeReport& r, CopyKind k) {
  std::vector<const BandwidthResult*> v;
  for (const BandwidthResult& b : r.results)
    if (b.kind == k) v.push_back(&b);
  return v;
}

double at_largest(const ProbeReport& r, CopyKind k) {
  return of_kind(r, k).back()->gbps;
}

TEST(GpuProbe, EveryKindAtEverySizeIsMeasuredInOrder) {
  DAY18_REQUIRE_GPU();
  const ProbeReport& r = small_probe();
  const std::vector<size_t> sizes = sweep_sizes(size_t(64) << 10, size_t(256) << 20, 4);
  ASSERT_EQ(r.results.size(), std::size(kAllCopyKinds) * sizes.size());
  for (CopyKind k : kAllCopyKinds) {
    const auto v = of_kind(r, k);
    ASSERT_EQ(v.size(), sizes.size()) << copy_kind_key(k);
    for (size_t i = 0; i < v.size(); ++i) {
      EXPECT_EQ(v[i]->bytes, sizes[i]);
      EXPECT_GT(v[i]->gbps, 0) << copy_kind_key(k);
      EXPECT_LE(v[i]->rate.gbps_p20, v[i]->gbps);
      EXPECT_LE(v[i]->gbps, v[i]->rate.gbps_p80);
    }
  }
}

TEST(GpuProbe, BandwidthGrowsWithSizeRoughly) {
  DAY18_REQUIRE_GPU();
  // Latency gives way to bandwidth: the largest copy is faster per byte than the smallest, and
  // not far below the best point of its sweep (no collapse at the end). Not for pageable copies:
  // the driver stages them through its own pinned buffer, and a small source still in the CPU's
  // caches goes faster than a large one (seen on the H200: pageable H2D 9.2 GB/s at the smallest
  // size, 6.0 at the largest), so their curve has no such shape to check.
  const ProbeReport& r = small_probe();
  for (CopyKind k : kAllCopyKinds) {
    if (k == CopyKind::h2d_pageable || k == CopyKind::d2h_pageable) continue;
    const auto v = of_kind(r, k);
    double best = 0;
    for (auto* b : v) best = std::max(best, b->gbps);
    EXPECT_GT(v.back()->gbps, v.front()->gbps) << copy_kind_key(k);
    EXPECT_GE(v.back()->gbps, 0.5 * best) << copy_kind_key(k);
  }
}

TEST(GpuProbe, DeviceCopiesMoveTwiceTheBytesTheyCopy) {
  DAY18_REQUIRE_GPU();
  for (CopyKind k : {CopyKind::d2d, CopyKind::d2d_kernel})
    for (auto* b : of_kind(small_probe(), k)) {
      EXPECT_EQ(b->rate.bytes_moved, 2 * b->rate.bytes_copied) << copy_kind_key(k);
      EXPECT_NEAR(b->gbps, 2 * b->rate.gbps_copied, 1e-9 * b->gbps) << copy_kind_key(k);
    }
}

TEST(GpuProbe, PinnedIsFasterThanPageable) {
  DAY18_REQUIRE_GPU();
  const ProbeReport& r = small_probe();
  EXPECT_GT(at_largest(r, CopyKind::h2d_pinned), at_largest(r, CopyKind::h2d_pageable));
  EXPECT_GT(at_largest(r, CopyKind::d2h_pinned), at_largest(r, CopyKind::d2h_pageable));
}

TEST(GpuProbe, BidirectionalBeatsEitherDirectionAlone) {
  DAY18_REQUIRE_GPU();
  // Two copy engines and a full-duplex link: both directions at once carry more than either.
  const ProbeReport& r = small_probe();
  const double one_way =
      std::max(at_largest(r, CopyKind::h2d_pinned), at_largest(r, CopyKind::d2h_pinned));
  EXPECT_GT(at_largest(r, CopyKind::bidirectional), 1.1 * one_way);
}

TEST(GpuProbe, NoKernelReadsFasterThanTheDatasheet) {
  DAY18_REQUIRE_GPU();
  const ProbeReport& r = small_probe();
  if (r.peaks.hbm_gbps == 0) GTEST_SKIP() << "datasheet peak unknown: " << r.peaks.hbm_note;
  // With the L2 flushed before every copy, every read comes from HBM: its datasheet peak bounds
  // the read-only kernel at every size (5% for rounding in the attributes). Writes are not
  // bounded below the L2's size: the L2 is write-back, so a small write-only kernel or copy can
  // end before its bytes reach HBM. At the largest size they are, and P is a 1 GiB copy.
  for (auto* b : of_kind(r, CopyKind::read_kernel))
    EXPECT_LE(b->gbps, 1.05 * r.peaks.hbm_gbps) << "read_kernel at " << format_size(b->bytes);
  for (CopyKind k : {CopyKind::write_kernel, CopyKind::d2d, CopyKind::d2d_kernel})
    EXPECT_LE(at_largest(r, k), 1.05 * r.peaks.hbm_gbps) << copy_kind_key(k) << " at 256 MiB";
  EXPECT_LE(r.p_gbps, 1.05 * r.peaks.hbm_gbps);
  EXPECT_GT(r.p_gbps, 100.0);  // any HBM or GDDR GPU; no PCIe link comes near
}

TEST(GpuProbe, HostCopiesAreComparedWithTheLinkNeverWithHbm) {
  DAY18_REQUIRE_GPU();
  const ProbeReport& r = small_probe();
  for (const KindSummary& s : r.summaries) {
    if (is_host_copy(s.kind))
      EXPECT_EQ(s.reference.find("HBM"), std::string::npos) << copy_kind_key(s.kind);
    else
      EXPECT_EQ(s.reference, "HBM datasheet");
  }
  if (r.peaks.link.gbps > 0)  // pinned copies cannot beat their link
    EXPECT_LE(at_largest(r, CopyKind::h2d_pinned), 1.05 * r.peaks.link.gbps) << r.peaks.link.name;
}

TEST(GpuProbe, TheSeedsNumbersAreOffAndSaySo) {
  DAY18_REQUIRE_GPU();
  const ProbeReport& r = small_probe();
  ASSERT_TRUE(r.seed.has_value());
  ASSERT_EQ(r.seed->rows.size(), 3u);
  for (const SeedRow& s : r.seed->rows) {
    EXPECT_GT(s.seed_gbps, 0) << s.what;
    EXPECT_GT(s.right_gbps, 0) << s.what;
    EXPECT_NEAR(s.seed_pct_of_peak, 100 * s.seed_gbps / kSeedPeakGbps, 1e-9);
  }
  // The clone counted once: at most ~half of the same copy counted right (read + write).
  const SeedRow& d2d = r.seed->rows[1];
  EXPECT_EQ(d2d.kind, CopyKind::d2d);
  EXPECT_LT(d2d.seed_gbps / d2d.right_gbps, 0.75);
  // The host copies are to be compared with the link, not with HBM.
  EXPECT_EQ(r.seed->rows[0].compare_with.find("HBM"), std::string::npos);
}

TEST(GpuProbe, JsonParsesAndCarriesItsProvenance) {
  DAY18_REQUIRE_GPU();
  const ProbeReport& r = small_probe();
  const std::string path = ::testing::TempDir() + "/day18_probe_gpu.json";
  write_json_file(path, probe_json(r));
  std::ifstream f(path);
  const nlohmann::json j = nlohmann::json::parse(f);
  for (const char* k : {"gpu", "nvidia_driver", "cuda_driver", "cuda_runtime", "commit"}) {
    ASSERT_TRUE(j["provenance"][k].is_string()) << k;
    EXPECT_FALSE(j["provenance"][k].get<std::string>().empty()) << k;
  }
  EXPECT_EQ(j["results"].size(), r.results.size());
  EXPECT_NEAR(j["p_gbps"].get<double>(), peak_d2d_bandwidth() / 1e9, 1e-9);
  EXPECT_EQ(j["seed"]["rows"].size(), 3u);
  const std::string table = probe_table(r);
  EXPECT_NE(table.find("P = "), std::string::npos);
  EXPECT_NE(table.find("peak_d2d_bandwidth()"), std::string::npos);
}

TEST(GpuProbe, RefusesASweepLargerThanTheDeviceMemory) {
  DAY18_REQUIRE_GPU();
  ProbeOptions o;
  o.kinds = {CopyKind::d2d};
  o.min_bytes = size_t(1) << 30;
  o.max_bytes = kMaxProbeBytes;  // two 64 GiB buffers: more than any GPU of 2025 has free
  size_t free_b = 0, total_b = 0;
  DAY18_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (2 * o.max_bytes < free_b) GTEST_SKIP() << "this GPU has " << format_size(free_b) << " free";
  EXPECT_THROW_WITH(run_probe(o), InvalidArgument, "--max-size 64 GiB", "lower --max-size");
}

}  // namespace
}  // namespace day18
