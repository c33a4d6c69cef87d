// `day18 probe`: every copy kind at every size, the datasheet peaks beside the measured ones, the
// seed's own probe reproduced beside the right one, and the JSON that scripts/plot_bandwidth.py
// draws. The measuring itself is engine/profiling/bandwidth.h (CopyBench, copy_rate, P).
//
//   ProbeOptions o;                       // every kind, 4 KiB .. 1 GiB in x2 steps, 20 repeats
//   ProbeReport r = run_probe(o, progress);
//   std::fputs(probe_table(r).c_str(), stdout);
//   write_json_file("bandwidth.json", probe_json(r));
//
// What is compared with what (the seed's mistake is to compare everything with the HBM peak):
//   device kinds (D2D, the kernels)  with the HBM datasheet peak and with P;
//   host kinds (H2D, D2H, both)      with the host link's peak (PCIe, from sysfs) and with each
//                                    other (pinned vs pageable), never with HBM.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/profiling/bandwidth.h"

namespace day18 {

// ---------------------------------------------------------------- options

// The largest copy the probe accepts (per buffer; D2D needs two): more than any GPU's L2 by far,
// and an upper bound that catches a typo ("1T") before anything is allocated.
inline constexpr size_t kMaxProbeBytes = size_t(64) << 30;

// A size as written on the command line: "4096", "4K", "64M", "1G", "4KiB", "64MB", "1.5G"
// (K, M, G, T are powers of 1024; case-insensitive; an optional "B" or "iB"). The result must be
// a whole number of bytes, > 0 and <= kMaxProbeBytes; otherwise InvalidArgument naming `flag` and
// `text` as written.
size_t parse_size(std::string_view flag, std::string_view text);
// "4 KiB", "64 MiB", "1 GiB", "1.5 MiB", "100 B".
std::string format_size(size_t bytes);

// "all", or kinds' keys separated by commas ("d2d,h2d_pinned"); InvalidArgument naming `flag`.
std::vector<CopyKind> parse_kinds(std::string_view flag, std::string_view text);

struct ProbeOptions {
  std::vector<CopyKind> kinds{std::begin(kAllCopyKinds), std::end(kAllCopyKinds)};
  size_t min_bytes = size_t(4) << 10;  // --min-size
  size_t max_bytes = size_t(1) << 30;  // --max-size
  int step = 2;                        // --step: size factor between points, 2 or 4
  int warmup = 3;                      // --warmup
  int repeats = 20;                    // --repeats
  bool seed = true;                    // --no-seed turns the seed's probe off
};

// Checks every option, naming its flag and value: --min-size <= --max-size, both multiples of
// 16 bytes (the kernels move 16-byte words), --step 2 or 4, --repeats in [1, 10000], --warmup in
// [0, 1000], at least one kind, no kind twice.
void validate(const ProbeOptions& o);

// min, min * step, min * step^2, ... up to max (max itself appended when the steps miss it).
std::vector<size_t> sweep_sizes(size_t min_bytes, size_t max_bytes, int step);

// ---------------------------------------------------------------- datasheet peaks

// The HBM (or GDDR) peak in GB/s from the device attributes: memory clock (kHz) x 2 transfers
// per clock (double data rate) x bus width (bits) / 8. 0 (unknown) when either attribute is 0.
double hbm_datasheet_gbps(int memory_clock_khz, int bus_width_bits);

// A PCIe link from the contents of sysfs' current_link_speed ("32.0 GT/s PCIe") and
// current_link_width ("16"). Per direction: GT/s x lanes x encoding (8b/10b up to 5 GT/s,
// 128b/130b for 8-32 GT/s, FLIT 242/256 at 64 GT/s) / 8 bits.
struct HostLink {
  std::string name = "unknown";  // "PCIe 5.0 x16", or "unknown"
  double gt_per_s = 0;
  int lanes = 0;
  double gbps = 0;     // per direction; 0 = unknown
  std::string source;  // where it was read, or why it is unknown
};
HostLink parse_pcie_link(std::string_view speed_text, std::string_view width_text);

struct DevicePeaks {
  int memory_clock_khz = 0;  // cudaDevAttrMemoryClockRate (0: not reported)
  int bus_width_bits = 0;    // cudaDevAttrGlobalMemoryBusWidth (0: not reported)
  double hbm_gbps = 0;       // hbm_datasheet_gbps(); 0 = unknown
  std::string hbm_note;      // why it is unknown, when it is
  HostLink link;
};
// The attributes of `device`, and its PCIe link from /sys/bus/pci/devices/<bus id>/ (read while
// a copy runs: an idle GPU lowers its link speed to save power).
DevicePeaks device_peaks(int device);

// ---------------------------------------------------------------- provenance

struct Provenance {
  std::string gpu, pci_bus_id;
  int sm_major = 0, sm_minor = 0, sm_count = 0;
  size_t memory_bytes = 0, l2_bytes = 0;
  std::string nvidia_driver;  // the kernel module's version (/proc/driver/nvidia/version)
  std::string cuda_driver;    // cudaDriverGetVersion: the CUDA version the driver supports
  std::string cuda_runtime;   // cudaRuntimeGetVersion: the runtime this binary links
  std::string commit;         // git_commit()
  std::string host, time_utc;
};
Provenance collect_provenance(int device);
// The NVIDIA driver version in the text of /proc/driver/nvidia/version (proprietary or open
// kernel module), "unknown" when there is none.
std::string nvidia_driver_version(const std::string& proc_driver_version_text);

// ---------------------------------------------------------------- the seed's probe

// The seed's hard-coded "peak" (an A100 40GB's HBM), which it prints every copy against.
inline constexpr double kSeedPeakGbps = 1555;

// One number of the seed's probe, and the same copy measured right.
struct SeedRow {
  CopyKind kind = CopyKind::d2d;  // the copy the seed times: h2d_pageable, d2d or d2h_pageable
  std::string what;               // as the seed names it: "H2D", "D2D (clone)", "D2H"
  double seconds = 0;             // its one host-clock time (no warm-up)
  double seed_gbps = 0;           // bytes / seconds / 1e9: every byte once, D2D included
  double seed_pct_of_peak = 0;    // of kSeedPeakGbps, as the seed prints it
  double right_gbps = 0;          // the same copy: events, warm-up, median, bytes moved
  CopyKind better_kind = CopyKind::d2d;  // what the pipeline uses (pinned for H2D/D2H)
  double better_gbps = 0;
  std::string compare_with;  // what it should be compared with ("PCIe 5.0 x16", "HBM")
  double compare_gbps = 0;   // ... its peak (0: unknown)
};
struct SeedReplica {
  size_t bytes = 0;
  std::vector<SeedRow> rows;
};
// The seed's measurement, as its Python does it: fresh buffers of `bytes` (a pageable host source
// with every page touched, as torch.randn does; a pageable host destination never touched, as
// .cpu() allocates one), one cudaMemcpy each with std::chrono around it and a device
// synchronize, no warm-up. Run it before anything else is timed. Fills seconds, seed_gbps and
// seed_pct_of_peak; run_probe fills the rest.
SeedReplica run_seed_probe(size_t bytes);

// ---------------------------------------------------------------- the probe

struct KindSummary {
  CopyKind kind = CopyKind::d2d;
  HalfBandwidth half;         // of gbps (bytes moved) over the sweep
  double largest_gbps = 0;    // at the largest size
  double reference_gbps = 0;  // what it is compared with: HBM datasheet or host link (0: unknown)
  std::string reference;      // "HBM datasheet", "PCIe 5.0 x16 per direction", ...
};

struct ProbeReport {
  Provenance provenance;
  ProbeOptions options;
  DevicePeaks peaks;
  double p_gbps = 0;                     // peak_d2d_bandwidth() / 1e9: THE P
  std::vector<BandwidthResult> results;  // kinds in options' order, sizes ascending
  std::vector<KindSummary> summaries;    // one per kind
  std::optional<SeedReplica> seed;
};

// One summary per kind of `kinds`, from the sweep's results: the half-bandwidth size, the
// bandwidth at the largest size, and what the kind is compared with (HBM datasheet for device
// kinds, the host link for host kinds).
std::vector<KindSummary> summarize_sweep(const std::vector<BandwidthResult>& results,
                                         const std::vector<CopyKind>& kinds,
                                         const DevicePeaks& peaks);

// Called before each measurement: the kind (k-th of n), the size (s-th of m).
using ProbeProgress =
    std::function<void(CopyKind kind, size_t k, size_t n, size_t bytes, size_t s, size_t m)>;

// validate(o), then: the seed's probe (if o.seed), the sweep of every kind (L2 flushed before
// each timed copy), P, the datasheet peaks and the link, the summaries. Checks first that the
// device has the memory the largest kind needs. Needs a GPU (throws day18::Error without one).
ProbeReport run_probe(const ProbeOptions& o, const ProbeProgress& progress = {});

// The report as JSON: {"schema", "provenance", "options", "convention", "p_gbps", "datasheet",
// "results": [...], "summaries": [...], "seed": {...} | null}.
nlohmann::json probe_json(const ProbeReport& r);

// The tables `day18 probe` prints at the end.
std::string probe_table(const ProbeReport& r);

// Writes `j` (2-space indented) to `path` through `path`.tmp and a rename: a reader never sees a
// half-written file. InvalidArgument naming the path when it cannot be written.
void write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace day18
