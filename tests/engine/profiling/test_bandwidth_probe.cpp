// The bandwidth probe's arithmetic and bookkeeping, on a CPU (engine/profiling/bandwidth.h and
// bandwidth_probe.h): the two byte conventions and GB/s, the half-bandwidth size, command-line
// sizes and kinds, the sweep's sizes, the datasheet peaks from attributes and sysfs text, and the
// JSON report (written atomically; read back by scripts/plot_bandwidth.py in
// test_plot_bandwidth.cpp). Hand-computed values throughout; no GPU, no timing.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/profiling/bandwidth_probe.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

Stats ms_of(std::vector<double> v) {
  return summarize(std::move(v));
}

// ------------------------------------------------------------------ copy_rate

TEST(CopyRate, DeviceCopyMovesTwiceTheBytesItCopies) {
  // 1e9 bytes in 1 ms: copied 1e9 -> 1000 GB/s; moved (read + write) 2e9 -> 2000 GB/s.
  for (CopyKind k : {CopyKind::d2d, CopyKind::d2d_kernel}) {
    const CopyRate r = copy_rate(k, 1000000000, ms_of({1.0}));
    EXPECT_EQ(r.bytes_copied, 1e9) << copy_kind_name(k);
    EXPECT_EQ(r.bytes_moved, 2e9) << copy_kind_name(k);
    EXPECT_DOUBLE_EQ(r.gbps, 2000.0) << copy_kind_name(k);
    EXPECT_DOUBLE_EQ(r.gbps_copied, 1000.0) << copy_kind_name(k);
  }
}

TEST(CopyRate, OneWayCopiesAndOneSidedKernelsMoveWhatTheyCopy) {
  for (CopyKind k : {CopyKind::h2d_pinned, CopyKind::d2h_pinned, CopyKind::h2d_pageable,
                     CopyKind::d2h_pageable, CopyKind::read_kernel, CopyKind::write_kernel}) {
    const CopyRate r = copy_rate(k, 1 << 20, ms_of({0.5}));
    EXPECT_EQ(r.bytes_copied, double(1 << 20)) << copy_kind_name(k);
    EXPECT_EQ(r.bytes_moved, double(1 << 20)) << copy_kind_name(k);
    EXPECT_DOUBLE_EQ(r.gbps, double(1 << 20) / 0.5e-3 / 1e9) << copy_kind_name(k);
  }
}

TEST(CopyRate, BidirectionalCountsBothDirections) {
  const CopyRate r = copy_rate(CopyKind::bidirectional, 1000, ms_of({1e-3}));
  EXPECT_EQ(r.bytes_copied, 2000.0);
  EXPECT_EQ(r.bytes_moved, 2000.0);
  EXPECT_DOUBLE_EQ(r.gbps, 2.0);  // 2000 bytes in 1 us
}

TEST(CopyRate, GigabytesAreTenToTheNinthAndTheSlowTimesGiveTheLowPercentile) {
  // Times 1..5 ms: p20 1.8 ms, median 3 ms, p80 4.2 ms. 3e9 bytes moved (H2D).
  const CopyRate r = copy_rate(CopyKind::h2d_pinned, 3000000000, ms_of({5, 1, 3, 2, 4}));
  EXPECT_DOUBLE_EQ(r.gbps, 1000.0);                  // 3e9 B / 3 ms, not 931 (GiB/s)
  EXPECT_DOUBLE_EQ(r.gbps_p20, 3e9 / 4.2e-3 / 1e9);  // the slow side: 714.3
  EXPECT_DOUBLE_EQ(r.gbps_p80, 3e9 / 1.8e-3 / 1e9);  // the fast side: 1666.7
  EXPECT_LT(r.gbps_p20, r.gbps);
  EXPECT_GT(r.gbps_p80, r.gbps);
}

TEST(CopyRate, RejectsNoBytesAndZeroTimes) {
  EXPECT_THROW_WITH(copy_rate(CopyKind::d2d, 0, ms_of({1.0})), InvalidArgument, "bytes");
  EXPECT_THROW_WITH(copy_rate(CopyKind::d2d, 16, ms_of({0.0})), InvalidArgument, "median 0");
}

TEST(CopyKinds, KeysRoundTripAndHostCopiesAreLinkLimited) {
  for (CopyKind k : kAllCopyKinds) {
    EXPECT_EQ(parse_copy_kind(copy_kind_key(k), "--kinds"), k);
    EXPECT_EQ(copy_limit(k) == CopyLimit::host_link, is_host_copy(k)) << copy_kind_key(k);
  }
  EXPECT_EQ(copy_limit(CopyKind::d2d), CopyLimit::device_memory);
  EXPECT_EQ(copy_limit(CopyKind::read_kernel), CopyLimit::device_memory);
  EXPECT_EQ(copy_limit(CopyKind::h2d_pageable), CopyLimit::host_link);
  EXPECT_EQ(copy_limit(CopyKind::bidirectional), CopyLimit::host_link);
  EXPECT_THROW_WITH(parse_copy_kind("h2d", "--kinds"), InvalidArgument, "--kinds", "'h2d'",
                    "h2d_pinned");
}

TEST(HostBuffer, IsRefusedForKindsWithoutAHostSide) {
  EXPECT_THROW_WITH(host_buffer(CopyKind::d2d, 4096), InvalidArgument, "D2D", "no host side");
  EXPECT_THROW_WITH(host_buffer(CopyKind::read_kernel, 4096), InvalidArgument, "no host side");
}

TEST(MeasureCopyBandwidth, RejectsEmptyCopiesBeforeTouchingTheGpu) {
  EXPECT_THROW_WITH(measure_copy_bandwidth(CopyKind::h2d_pinned, 0), InvalidArgument,
                    "bytes must be > 0");
  EXPECT_THROW_WITH(measure_copy_bandwidth(CopyKind::d2d, 64, 0), InvalidArgument, "reps", "0");
}

// ------------------------------------------------------------------ half_bandwidth_size

TEST(HalfBandwidth, InterpolatesOnLogSizeNotOnSize) {
  // Peak 50, half 25, between (1 KiB, 10) and (4 KiB, 30): 3/4 of the way in log2 size from 10
  // to 12, so 2^11.5 = 2896.3 bytes (linear in size would say 3328).
  const HalfBandwidth h = half_bandwidth_size({{1024, 10}, {4096, 30}, {16384, 50}});
  EXPECT_DOUBLE_EQ(h.peak_gbps, 50);
  EXPECT_NEAR(h.bytes, std::pow(2.0, 11.5), 1e-6);
  EXPECT_FALSE(h.at_first_point);
}

TEST(HalfBandwidth, ExactHitAndUnsortedInput) {
  const HalfBandwidth h = half_bandwidth_size({{32768, 8}, {4096, 1}, {16384, 4}, {8192, 2}});
  EXPECT_DOUBLE_EQ(h.peak_gbps, 8);
  EXPECT_NEAR(h.bytes, 16384, 1e-6);
}

TEST(HalfBandwidth, PeakIsTheHighestPointNotTheLast) {
  // A dip at the end (e.g. a size past a cache): the peak is 100 at 64K, half is 50.
  const HalfBandwidth h =
      half_bandwidth_size({{4096, 20}, {16384, 80}, {65536, 100}, {262144, 60}});
  EXPECT_DOUBLE_EQ(h.peak_gbps, 100);
  // between 4K (20) and 16K (80): 30/60 = half way in log size: 8 KiB
  EXPECT_NEAR(h.bytes, 8192, 1e-6);
}

TEST(HalfBandwidth, FirstPointAlreadyAboveHalfIsAnUpperBound) {
  const HalfBandwidth h = half_bandwidth_size({{4096, 60}, {8192, 100}});
  EXPECT_TRUE(h.at_first_point);
  EXPECT_EQ(h.bytes, 4096);
}

TEST(HalfBandwidth, RejectsEmptyAndBadPoints) {
  EXPECT_THROW_WITH(half_bandwidth_size({}), InvalidArgument, "no points");
  EXPECT_THROW_WITH(half_bandwidth_size({{0, 1}}), InvalidArgument, "points[0].bytes");
  EXPECT_THROW_WITH(half_bandwidth_size({{16, 1}, {32, NAN}}), InvalidArgument, "points[1].gbps");
}

// ------------------------------------------------------------------ options

TEST(ParseSize, UnitsArePowersOf1024) {
  EXPECT_EQ(parse_size("--x", "4096"), 4096u);
  EXPECT_EQ(parse_size("--x", "4K"), 4096u);
  EXPECT_EQ(parse_size("--x", "4k"), 4096u);
  EXPECT_EQ(parse_size("--x", "4KiB"), 4096u);
  EXPECT_EQ(parse_size("--x", "64M"), size_t(64) << 20);
  EXPECT_EQ(parse_size("--x", "64MB"), size_t(64) << 20);
  EXPECT_EQ(parse_size("--x", "1G"), size_t(1) << 30);
  EXPECT_EQ(parse_size("--x", " 1.5G "), size_t(3) << 29);
  EXPECT_EQ(parse_size("--x", "100B"), 100u);
}

TEST(ParseSize, AbsurdValuesNameTheFlagAndTheValueAsWritten) {
  EXPECT_THROW_WITH(parse_size("--min-size", "4X"), InvalidArgument, "--min-size", "'4X'",
                    "unknown unit");
  EXPECT_THROW_WITH(parse_size("--min-size", ""), InvalidArgument, "--min-size", "empty");
  EXPECT_THROW_WITH(parse_size("--max-size", "-4K"), InvalidArgument, "--max-size", "'-4K'",
                    "positive");
  EXPECT_THROW_WITH(parse_size("--max-size", "0"), InvalidArgument, "--max-size", "> 0");
  EXPECT_THROW_WITH(parse_size("--max-size", "abc"), InvalidArgument, "'abc'");
  EXPECT_THROW_WITH(parse_size("--max-size", "1.2.3K"), InvalidArgument, "'1.2.3K'");
  EXPECT_THROW_WITH(parse_size("--max-size", "0.3"), InvalidArgument, "whole number");
  EXPECT_THROW_WITH(parse_size("--max-size", "1T"), InvalidArgument, "--max-size", "'1T'",
                    "limit of 64 GiB");
  EXPECT_THROW_WITH(parse_size("--max-size", "99999999999999999999G"), InvalidArgument,
                    "--max-size", "limit");
}

TEST(FormatSize, BinaryUnits) {
  EXPECT_EQ(format_size(100), "100 B");
  EXPECT_EQ(format_size(4096), "4 KiB");
  EXPECT_EQ(format_size(size_t(1) << 30), "1 GiB");
  EXPECT_EQ(format_size(size_t(3) << 19), "1.5 MiB");
}

TEST(ParseKinds, AllOrACommaList) {
  EXPECT_EQ(parse_kinds("--kinds", "all").size(), std::size(kAllCopyKinds));
  const std::vector<CopyKind> two = parse_kinds("--kinds", "d2d, h2d_pinned");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], CopyKind::d2d);
  EXPECT_EQ(two[1], CopyKind::h2d_pinned);
  EXPECT_THROW_WITH(parse_kinds("--kinds", "d2d,,read_kernel"), InvalidArgument, "--kinds",
                    "empty item");
  EXPECT_THROW_WITH(parse_kinds("--kinds", "d2d,foo"), InvalidArgument, "--kinds", "'foo'");
  EXPECT_THROW_WITH(parse_kinds("--kinds", ""), InvalidArgument, "--kinds");
}

TEST(ValidateProbeOptions, NamesTheFlagAndTheValue) {
  ProbeOptions ok;
  EXPECT_NO_THROW(validate(ok));
  auto with = [&](auto change) {
    ProbeOptions o = ok;
    change(o);
    return o;
  };
  EXPECT_THROW_WITH(validate(with([](ProbeOptions& o) { o.min_bytes = 1000; })), InvalidArgument,
                    "--min-size", "1000", "multiple of 16");
  EXPECT_THROW_WITH(validate(with([](ProbeOptions& o) {
                      o.min_bytes = size_t(1) << 30;
                      o.max_bytes = 4096;
                    })),
                    InvalidArgument, "--min-size 1 GiB", "--max-size 4 KiB");
  EXPECT_THROW_WITH(validate(with([](ProbeOptions& o) { o.step = 3; })), InvalidArgument, "--step",
                    "3");
  EXPECT_THROW_WITH(validate(with([](ProbeOptions& o) { o.repeats = 0; })), InvalidArgument,
                    "--repeats", "0");
  EXPECT_THROW_WITH(validate(with([](ProbeOptions& o) { o.warmup = -1; })), InvalidArgument,
                    "--warmup", "-1");
  EXPECT_THROW_WITH(validate(with([](ProbeOptions& o) {
                      o.kinds = {CopyKind::d2d, CopyKind::d2d};
                    })),
                    InvalidArgument, "--kinds", "'d2d' is named twice");
  EXPECT_THROW_WITH(validate(with([](ProbeOptions& o) { o.kinds.clear(); })), InvalidArgument,
                    "--kinds");
}

TEST(SweepSizes, GeometricFromMinToMax) {
  EXPECT_EQ(sweep_sizes(4096, 65536, 4), (std::vector<size_t>{4096, 16384, 65536}));
  EXPECT_EQ(sweep_sizes(4096, 32768, 2), (std::vector<size_t>{4096, 8192, 16384, 32768}));
  // max appended when the steps miss it; one size when min == max
  EXPECT_EQ(sweep_sizes(4096, 40960, 4), (std::vector<size_t>{4096, 16384, 40960}));
  EXPECT_EQ(sweep_sizes(1024, 1024, 2), (std::vector<size_t>{1024}));
  // the default sweep: 4 KiB .. 1 GiB in x2 steps is 19 sizes
  EXPECT_EQ(sweep_sizes(size_t(4) << 10, size_t(1) << 30, 2).size(), 19u);
}

// ------------------------------------------------------------------ datasheet peaks

TEST(Datasheet, HbmPeakIsClockTimesTwoTimesBusWidth) {
  // An H100 SXM reports 2619 MHz and 5120 bits: 2.619e9 x 2 x 640 bytes = 3352.3 GB/s.
  EXPECT_NEAR(hbm_datasheet_gbps(2619000, 5120), 3352.32, 1e-6);
  EXPECT_EQ(hbm_datasheet_gbps(0, 5120), 0);  // not reported: unknown, never a made-up number
  EXPECT_EQ(hbm_datasheet_gbps(2619000, 0), 0);
}

TEST(Datasheet, PcieLinkFromSysfsText) {
  const HostLink g5 = parse_pcie_link("32.0 GT/s PCIe\n", "16\n");
  EXPECT_EQ(g5.name, "PCIe 5.0 x16");
  EXPECT_NEAR(g5.gbps, 32.0 * 16 * 128 / 130 / 8, 1e-9);  // 63.0 GB/s per direction
  const HostLink g4 = parse_pcie_link("16 GT/s", "8");    // older kernels print no "PCIe"
  EXPECT_EQ(g4.name, "PCIe 4.0 x8");
  EXPECT_NEAR(g4.gbps, 16.0 * 8 * 128 / 130 / 8, 1e-9);
  const HostLink g1 = parse_pcie_link("2.5 GT/s PCIe", "16");  // 8b/10b
  EXPECT_NEAR(g1.gbps, 2.5 * 16 * 0.8 / 8, 1e-9);
  const HostLink unknown = parse_pcie_link("Unknown", "0");
  EXPECT_EQ(unknown.gbps, 0);
  EXPECT_EQ(unknown.name, "unknown");
  EXPECT_NE(unknown.source.find("Unknown"), std::string::npos);
}

// ------------------------------------------------------------------ the report

// A report as run_probe would fill it, by hand: two kinds at two sizes, a seed replica.
ProbeReport hand_report() {
  ProbeReport r;
  r.provenance.gpu = "Test GPU";
  r.provenance.nvidia_driver = "580.00";
  r.provenance.cuda_driver = "13.0";
  r.provenance.cuda_runtime = "13.0";
  r.provenance.commit = "abc1234";
  r.options.kinds = {CopyKind::d2d, CopyKind::h2d_pinned};
  r.options.min_bytes = 4096;
  r.options.max_bytes = 16384;
  r.options.step = 4;
  r.p_gbps = 3000;
  r.peaks.memory_clock_khz = 2619000;
  r.peaks.bus_width_bits = 5120;
  r.peaks.hbm_gbps = hbm_datasheet_gbps(2619000, 5120);
  r.peaks.link = parse_pcie_link("32.0 GT/s PCIe", "16");
  for (CopyKind k : r.options.kinds)
    for (size_t b : {size_t(4096), size_t(16384)}) {
      BandwidthResult res;
      res.kind = k;
      res.bytes = b;
      const double t = 0.004 + double(b) / 3e6;  // 4 us of fixed cost, then 3 GB/s
      res.ms = ms_of({t, 1.1 * t, 0.95 * t});
      res.median_ms = res.ms.median;
      res.p20_ms = res.ms.p20;
      res.p80_ms = res.ms.p80;
      res.min_ms = res.ms.min;
      res.rate = copy_rate(k, b, res.ms);
      res.gbps = res.rate.gbps;
      r.results.push_back(res);
    }
  r.summaries = summarize_sweep(r.results, r.options.kinds, r.peaks);
  SeedReplica seed;
  seed.bytes = 16384;
  SeedRow row;
  row.kind = CopyKind::d2d;
  row.what = "D2D (clone)";
  row.seconds = 1e-5;
  row.seed_gbps = 1.6;
  row.right_gbps = 3.2;
  row.better_gbps = 3.2;
  row.compare_with = "HBM datasheet";
  row.compare_gbps = r.peaks.hbm_gbps;
  seed.rows.push_back(row);
  r.seed = seed;
  return r;
}

TEST(ProbeJson, HasProvenanceConventionsAndEveryResult) {
  const nlohmann::json j = probe_json(hand_report());
  EXPECT_EQ(j["schema"], "day18-bandwidth-probe/1");
  for (const char* f : {"gpu", "nvidia_driver", "cuda_driver", "cuda_runtime", "commit"})
    EXPECT_TRUE(j["provenance"].contains(f)) << f;
  EXPECT_EQ(j["provenance"]["commit"], "abc1234");
  EXPECT_NE(j["convention"]["p"].get<std::string>().find("peak_d2d_bandwidth"), std::string::npos);
  EXPECT_EQ(j["p_gbps"], 3000);
  EXPECT_NEAR(j["datasheet"]["hbm_gbps"].get<double>(), 3352.32, 1e-6);
  EXPECT_EQ(j["datasheet"]["link"]["name"], "PCIe 5.0 x16");
  ASSERT_EQ(j["results"].size(), 4u);
  const nlohmann::json& d2d = j["results"][0];
  EXPECT_EQ(d2d["kind"], "d2d");
  EXPECT_EQ(d2d["limit"], "device_memory");
  EXPECT_EQ(d2d["bytes_moved"].get<double>(), 2 * d2d["bytes_copied"].get<double>());
  EXPECT_EQ(j["results"][2]["limit"], "host_link");
  ASSERT_EQ(j["summaries"].size(), 2u);
  EXPECT_EQ(j["summaries"][0]["reference"], "HBM datasheet");
  EXPECT_EQ(j["summaries"][1]["reference"], "PCIe 5.0 x16 per direction");
  EXPECT_NEAR(j["seed"]["rows"][0]["seed_over_right"].get<double>(), 0.5, 1e-12);
  EXPECT_EQ(j["seed"]["peak_gbps"], kSeedPeakGbps);
}

TEST(ProbeJson, UnknownPeaksAreNullNotZero) {
  ProbeReport r = hand_report();
  r.peaks.hbm_gbps = 0;
  r.peaks.link = HostLink{};
  r.seed.reset();
  const nlohmann::json j = probe_json(r);
  EXPECT_TRUE(j["datasheet"]["hbm_gbps"].is_null());
  EXPECT_TRUE(j["datasheet"]["link"]["gbps_per_direction"].is_null());
  EXPECT_TRUE(j["seed"].is_null());
}

TEST(ProbeTable, SaysWhatPIsAndComparesHostCopiesWithTheLink) {
  const std::string t = probe_table(hand_report());
  EXPECT_NE(t.find("P = 3000 GB/s: peak_d2d_bandwidth()"), std::string::npos) << t;
  EXPECT_NE(t.find("bytes moved (read + write)"), std::string::npos) << t;
  EXPECT_NE(t.find("HBM datasheet peak: 3352 GB/s"), std::string::npos) << t;
  EXPECT_NE(t.find("of PCIe 5.0 x16 per direction"), std::string::npos) << t;
  EXPECT_NE(t.find("The seed's probe, reproduced"), std::string::npos) << t;
  ProbeReport r = hand_report();
  r.peaks.hbm_gbps = 0;
  r.peaks.hbm_note = "the device reports memory clock 0 kHz";
  EXPECT_NE(probe_table(r).find("HBM datasheet peak: unknown"), std::string::npos);
}

TEST(WriteJsonFile, WritesThroughATemporaryFileAndLeavesNoneBehind) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "day18_probe_json";
  fs::create_directories(dir);
  const std::string path = (dir / "bw.json").string();
  write_json_file(path, {{"a", 1}});
  write_json_file(path, {{"a", 2}});  // replaces
  std::ifstream f(path);
  EXPECT_EQ(nlohmann::json::parse(f)["a"], 2);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_THROW_WITH(write_json_file((dir / "no" / "such" / "x.json").string(), {}), InvalidArgument,
                    "--json", "cannot write");
}

}  // namespace
}  // namespace day18

namespace day18 {
namespace {

TEST(ProbeProvenance, TheDriverVersionIsReadFromBothKernelModules) {
  // Before: the open kernel module's text gave "for" (the word after "Kernel Module"), and the
  // H200 results said "driver for".
  EXPECT_EQ(nvidia_driver_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  "
                                  "580.159.04  Release Build  (dvs-builder@U16)  Thu Oct 2 2025\n"),
            "580.159.04");
  EXPECT_EQ(nvidia_driver_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun "
                                  "Jul 27 06:54:38 UTC 2025\nGCC version:  gcc 12\n"),
            "580.65.06");
  EXPECT_EQ(nvidia_driver_version(""), "unknown");
  EXPECT_EQ(nvidia_driver_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64 Release "
                                  "Build 2025"),
            "unknown");
}

}  // namespace
}  // namespace day18
