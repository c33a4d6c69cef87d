// `day18 probe`'s sweep, datasheet peaks, provenance, the seed's probe and the report
// (bandwidth_probe.h).
#include "engine/profiling/bandwidth_probe.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "engine/core/build_info.h"
#include "engine/core/error.h"

namespace day18 {
namespace {

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string version_string(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

// A device attribute, or 0 with the error's name in `why` when the device does not report it.
int attribute_or_zero(cudaDeviceAttr attr, int device, std::string* why) {
  int v = 0;
  const cudaError_t err = cudaDeviceGetAttribute(&v, attr, device);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // handled: the caller prints "unknown" and says why
    if (why) *why = detail::concat(cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
    return 0;
  }
  return v;
}

}  // namespace

// ---------------------------------------------------------------- options

size_t parse_size(std::string_view flag, std::string_view text_in) {
  const std::string text = trim(text_in);
  auto bad = [&](const char* why) {
    DAY18_REQUIRE(false, flag, ": '", text_in, "' is not a size: ", why,
                  " (examples: 4096, 4K, 64M, 1G; K/M/G/T = 1024^1..4)");
  };
  if (text.empty()) bad("it is empty");
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  const std::string number = text.substr(0, i);
  if (number.empty() || number.find_first_of("0123456789") == std::string::npos)
    bad(text[0] == '-' ? "sizes are positive" : "it does not start with a number");
  if (std::count(number.begin(), number.end(), '.') > 1) bad("the number has two decimal points");
  std::string unit = trim(std::string_view(text).substr(i));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, double> kUnits = {{"", 1},
                                                       {"B", 1},
                                                       {"K", 1024.0},
                                                       {"KB", 1024.0},
                                                       {"KIB", 1024.0},
                                                       {"M", 1 << 20},
                                                       {"MB", 1 << 20},
                                                       {"MIB", 1 << 20},
                                                       {"G", double(1 << 30)},
                                                       {"GB", double(1 << 30)},
                                                       {"GIB", double(1 << 30)},
                                                       {"T", std::ldexp(1.0, 40)},
                                                       {"TB", std::ldexp(1.0, 40)},
                                                       {"TIB", std::ldexp(1.0, 40)}};
  const auto u = kUnits.find(unit);
  if (u == kUnits.end()) bad("unknown unit (use B, K, M, G or T)");
  const double value = std::strtod(number.c_str(), nullptr) * u->second;
  if (!(value > 0)) bad("it must be > 0");
  if (value != std::floor(value)) bad("it is not a whole number of bytes");
  DAY18_REQUIRE(value <= double(kMaxProbeBytes), flag, ": '", text_in, "' is ",
                format_size(size_t(std::min(value, 1e18))), ", more than the probe's limit of ",
                format_size(kMaxProbeBytes), " per buffer");
  return static_cast<size_t>(value);
}

std::string format_size(size_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return std::to_string(bytes) + " B";
  return (v == std::floor(v) ? fmt("%.0f", v) : fmt("%.3g", v)) + " " + kUnits[u];
}

std::vector<CopyKind> parse_kinds(std::string_view flag, std::string_view text) {
  std::vector<CopyKind> kinds;
  if (trim(text) == "all") return {std::begin(kAllCopyKinds), std::end(kAllCopyKinds)};
  std::string s(text);
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const std::string key = trim(item);
    DAY18_REQUIRE(!key.empty(), flag, ": '", text,
                  "' has an empty item (kinds are separated by "
                  "single commas)");
    kinds.push_back(parse_copy_kind(key, flag));
  }
  DAY18_REQUIRE(!kinds.empty(), flag, ": '", text,
                "' names no kind (use 'all' or e.g. "
                "'d2d,h2d_pinned')");
  return kinds;
}

void validate(const ProbeOptions& o) {
  DAY18_REQUIRE(!o.kinds.empty(), "--kinds: no kind to measure");
  std::set<CopyKind> seen;
  for (CopyKind k : o.kinds)
    DAY18_REQUIRE(seen.insert(k).second, "--kinds: '", copy_kind_key(k), "' is named twice");
  DAY18_REQUIRE(o.min_bytes > 0 && o.min_bytes % 16 == 0, "--min-size: ", o.min_bytes,
                " bytes is not a positive multiple of 16 (the kernels move 16-byte words)");
  DAY18_REQUIRE(o.max_bytes > 0 && o.max_bytes % 16 == 0, "--max-size: ", o.max_bytes,
                " bytes is not a positive multiple of 16 (the kernels move 16-byte words)");
  DAY18_REQUIRE(o.max_bytes <= kMaxProbeBytes, "--max-size: ", format_size(o.max_bytes),
                " is more than the probe's limit of ", format_size(kMaxProbeBytes));
  DAY18_REQUIRE(o.min_bytes <= o.max_bytes, "--min-size ", format_size(o.min_bytes),
                " is larger than --max-size ", format_size(o.max_bytes));
  DAY18_REQUIRE(o.step == 2 || o.step == 4, "--step: ", o.step,
                " is not a size factor the sweep uses (2 or 4)");
  DAY18_REQUIRE(o.repeats >= 1 && o.repeats <= 10000, "--repeats: ", o.repeats,
                " is not in [1, 10000]");
  DAY18_REQUIRE(o.warmup >= 0 && o.warmup <= 1000, "--warmup: ", o.warmup, " is not in [0, 1000]");
}

std::vector<size_t> sweep_sizes(size_t min_bytes, size_t max_bytes, int step) {
  DAY18_REQUIRE(min_bytes > 0 && min_bytes <= max_bytes, "sweep_sizes: need 0 < min <= max, got ",
                min_bytes, " and ", max_bytes);
  DAY18_REQUIRE(step >= 2, "sweep_sizes: step must be >= 2, got ", step);
  std::vector<size_t> sizes;
  for (size_t s = min_bytes; s <= max_bytes; s *= size_t(step)) {
    sizes.push_back(s);
    if (s > max_bytes / size_t(step)) break;  // the next one would pass max (or overflow)
  }
  if (sizes.back() != max_bytes) sizes.push_back(max_bytes);
  return sizes;
}

// ---------------------------------------------------------------- datasheet peaks

double hbm_datasheet_gbps(int memory_clock_khz, int bus_width_bits) {
  if (memory_clock_khz <= 0 || bus_width_bits <= 0) return 0;
  return double(memory_clock_khz) * 1e3 * 2.0 * double(bus_width_bits) / 8.0 / 1e9;
}

HostLink parse_pcie_link(std::string_view speed_text, std::string_view width_text) {
  HostLink l;
  const std::string speed = trim(speed_text), width = trim(width_text);
  char* end = nullptr;
  const double gt = std::strtod(speed.c_str(), &end);
  const long lanes = std::strtol(width.c_str(), nullptr, 10);
  if (end == speed.c_str() || speed.find("GT/s") == std::string::npos || !(gt > 0) || lanes <= 0) {
    l.source = "unreadable link speed '" + speed + "' / width '" + width + "'";
    return l;
  }
  struct Gen {
    double gt;
    const char* name;
    double encoding;
  };
  static const Gen kGens[] = {{2.5, "1.0", 8.0 / 10},   {5, "2.0", 8.0 / 10},
                              {8, "3.0", 128.0 / 130},  {16, "4.0", 128.0 / 130},
                              {32, "5.0", 128.0 / 130}, {64, "6.0", 242.0 / 256}};
  const Gen* g = nullptr;
  for (const Gen& c : kGens)
    if (std::fabs(c.gt - gt) < 0.01) g = &c;
  l.gt_per_s = gt;
  l.lanes = int(lanes);
  if (!g) {
    l.source = "link speed " + speed + " is no PCIe generation this probe knows";
    return l;
  }
  l.name = detail::concat("PCIe ", g->name, " x", lanes);
  l.gbps = gt * g->encoding * double(lanes) / 8.0;
  return l;
}

namespace {

std::string pci_bus_id(int device) {
  char id[64] = {};
  DAY18_CUDA_CHECK(cudaDeviceGetPCIBusId(id, sizeof id, device));
  std::string s(id);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

HostLink read_pcie_link(int device) {
  const std::string dir = "/sys/bus/pci/devices/" + pci_bus_id(device);
  const std::string speed = read_text_file(dir + "/current_link_speed");
  const std::string width = read_text_file(dir + "/current_link_width");
  if (speed.empty() || width.empty()) {
    HostLink l;
    l.source = dir +
               "/current_link_{speed,width} not readable (not a PCIe link, e.g. "
               "NVLink-C2C, or no sysfs here)";
    return l;
  }
  HostLink l = parse_pcie_link(speed, width);
  if (l.gbps > 0) l.source = dir + "/current_link_{speed,width}, read during a copy";
  return l;
}

}  // namespace

DevicePeaks device_peaks(int device) {
  DevicePeaks p;
  std::string why_clock, why_bus;
  p.memory_clock_khz = attribute_or_zero(cudaDevAttrMemoryClockRate, device, &why_clock);
  p.bus_width_bits = attribute_or_zero(cudaDevAttrGlobalMemoryBusWidth, device, &why_bus);
  p.hbm_gbps = hbm_datasheet_gbps(p.memory_clock_khz, p.bus_width_bits);
  if (p.hbm_gbps == 0)
    p.hbm_note =
        detail::concat("the device reports memory clock ", p.memory_clock_khz, " kHz",
                       why_clock.empty() ? "" : " (" + why_clock + ")", " and bus width ",
                       p.bus_width_bits, " bits", why_bus.empty() ? "" : " (" + why_bus + ")");
  // The link, read while copies keep it busy (an idle GPU drops to a slower link speed).
  const size_t bytes = size_t(64) << 20;
  CopyBench busy(CopyKind::h2d_pinned, bytes);
  for (int i = 0; i < 16; ++i) busy.enqueue(bytes, busy.stream());
  p.link = read_pcie_link(device);
  DAY18_CUDA_CHECK(cudaStreamSynchronize(busy.stream()));
  return p;
}

// ---------------------------------------------------------------- provenance

Provenance collect_provenance(int device) {
  Provenance v;
  cudaDeviceProp prop{};
  DAY18_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  v.gpu = prop.name;
  v.pci_bus_id = pci_bus_id(device);
  v.sm_major = prop.major;
  v.sm_minor = prop.minor;
  v.sm_count = prop.multiProcessorCount;
  v.memory_bytes = prop.totalGlobalMem;
  v.l2_bytes = static_cast<size_t>(prop.l2CacheSize);
  int drv = 0, rt = 0;
  DAY18_CUDA_CHECK(cudaDriverGetVersion(&drv));
  DAY18_CUDA_CHECK(cudaRuntimeGetVersion(&rt));
  v.cuda_driver = version_string(drv);
  v.cuda_runtime = version_string(rt);
  v.nvidia_driver = nvidia_driver_version(read_text_file("/proc/driver/nvidia/version"));
  v.commit = git_commit();
  char host[256] = {};
  v.host = gethostname(host, sizeof host - 1) == 0 ? host : "unknown";
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  v.time_utc = when;
  return v;
}

std::string nvidia_driver_version(const std::string& nvrm) {
  // The first word after "Kernel Module" made of digits and dots: the proprietary module says
  // "Kernel Module  580.65.06  Sun Jul 27 ...", the open one "Kernel Module for x86_64  580.159.04
  // Release Build ..." (the H200 machine: reading the next word gave "for").
  const size_t k = nvrm.find("Kernel Module");
  if (k == std::string::npos) return "unknown";
  std::stringstream ss(nvrm.substr(k + std::strlen("Kernel Module")));
  for (std::string w; ss >> w;) {
    if (w == "Release" || w == "Build") break;
    const bool version = std::isdigit(static_cast<unsigned char>(w[0])) &&
                         w.find('.') != std::string::npos &&
                         w.find_first_not_of("0123456789.") == std::string::npos;
    if (version) return w;
  }
  return "unknown";
}

// ---------------------------------------------------------------- the seed's probe

SeedReplica run_seed_probe(size_t bytes) {
  DAY18_REQUIRE(bytes > 0, "run_seed_probe: bytes must be > 0");
  SeedReplica s;
  s.bytes = bytes;
  // The seed's tensors: data_cpu = torch.randn(...) (pageable, every page written), data_gpu on
  // the device; data_gpu.cpu() allocates a fresh pageable destination that nobody has touched.
  Buffer host_src(bytes, Storage::host);
  std::memset(host_src.data(), 1, bytes);
  Buffer host_dst(bytes, Storage::host);
  Buffer dev_src(bytes, Storage::device), dev_h2d(bytes, Storage::device),
      dev_clone(bytes, Storage::device);
  DAY18_CUDA_CHECK(cudaMemset(dev_src.data(), 1, bytes));
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  // time.time() around the copy and torch.cuda.synchronize(), once, no warm-up.
  auto host_clock = [](auto&& copy) {
    const auto t0 = std::chrono::steady_clock::now();
    copy();
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  struct Step {
    CopyKind kind;
    const char* what;
    void* dst;
    const void* src;
    cudaMemcpyKind dir;
  };
  const Step steps[] = {
      {CopyKind::h2d_pageable, "H2D", dev_h2d.data(), host_src.data(), cudaMemcpyHostToDevice},
      {CopyKind::d2d, "D2D (clone)", dev_clone.data(), dev_src.data(), cudaMemcpyDeviceToDevice},
      {CopyKind::d2h_pageable, "D2H", host_dst.data(), dev_src.data(), cudaMemcpyDeviceToHost}};
  for (const Step& st : steps) {
    SeedRow r;
    r.kind = st.kind;
    r.what = st.what;
    r.seconds = host_clock([&] { DAY18_CUDA_CHECK(cudaMemcpy(st.dst, st.src, bytes, st.dir)); });
    r.seed_gbps = double(bytes) / r.seconds / 1e9;  // every byte once, the clone too
    r.seed_pct_of_peak = 100.0 * r.seed_gbps / kSeedPeakGbps;
    s.rows.push_back(r);
  }
  return s;
}

// ---------------------------------------------------------------- the probe

namespace {

// Device memory (bytes) and pinned host memory the bench of `kind` at `max_bytes` allocates.
size_t device_bytes_needed(CopyKind k, size_t max_bytes) {
  switch (k) {
    case CopyKind::d2d:
    case CopyKind::d2d_kernel:
    case CopyKind::bidirectional:
      return 2 * max_bytes;
    default:
      return max_bytes;
  }
}

const BandwidthResult* find_result(const std::vector<BandwidthResult>& rs, CopyKind k,
                                   size_t bytes) {
  for (const BandwidthResult& r : rs)
    if (r.kind == k && r.bytes == bytes) return &r;
  return nullptr;
}

std::string reference_name(const DevicePeaks& p, CopyKind k) {
  if (copy_limit(k) == CopyLimit::device_memory) return "HBM datasheet";
  if (p.link.gbps <= 0) return "the host link (unknown)";
  if (k == CopyKind::bidirectional) return p.link.name + " both directions";
  return p.link.name + " per direction";
}

double reference_gbps(const DevicePeaks& p, CopyKind k) {
  if (copy_limit(k) == CopyLimit::device_memory) return p.hbm_gbps;
  return k == CopyKind::bidirectional ? 2 * p.link.gbps : p.link.gbps;
}

}  // namespace

std::vector<KindSummary> summarize_sweep(const std::vector<BandwidthResult>& results,
                                         const std::vector<CopyKind>& kinds,
                                         const DevicePeaks& peaks) {
  std::vector<KindSummary> out;
  for (CopyKind k : kinds) {
    KindSummary sum;
    sum.kind = k;
    std::vector<SweepPoint> pts;
    size_t largest = 0;
    for (const BandwidthResult& b : results)
      if (b.kind == k) {
        pts.push_back({double(b.bytes), b.gbps});
        if (b.bytes >= largest) {
          largest = b.bytes;
          sum.largest_gbps = b.gbps;
        }
      }
    DAY18_REQUIRE(!pts.empty(), "summarize_sweep: no results for ", copy_kind_name(k));
    sum.half = half_bandwidth_size(pts);
    sum.reference_gbps = reference_gbps(peaks, k);
    sum.reference = reference_name(peaks, k);
    out.push_back(sum);
  }
  return out;
}

ProbeReport run_probe(const ProbeOptions& o, const ProbeProgress& progress) {
  validate(o);
  int device = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&device));
  ProbeReport r;
  r.options = o;
  r.provenance = collect_provenance(device);
  size_t need = 0;
  for (CopyKind k : o.kinds) need = std::max(need, device_bytes_needed(k, o.max_bytes));
  if (o.seed) need = std::max(need, 3 * o.max_bytes);
  need = std::max(need, size_t(2) << 30);  // P: two 1 GiB buffers, whatever the sweep's sizes
  size_t free_b = 0, total_b = 0;
  DAY18_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  DAY18_REQUIRE(need + (size_t(256) << 20) <= free_b, "--max-size ", format_size(o.max_bytes),
                ": the probe needs ", format_size(need), " of device memory (",
                "the largest of: two buffers of a D2D copy, three for the seed's probe, two of "
                "1 GiB for P) and ",
                format_size(free_b), " of ", format_size(total_b), " are free; lower --max-size");

  // First, on a process that has timed nothing yet: the seed's way (no warm-up is its point).
  if (o.seed) r.seed = run_seed_probe(o.max_bytes);

  const std::vector<size_t> sizes = sweep_sizes(o.min_bytes, o.max_bytes, o.step);
  CopyTiming t;
  t.warmup = o.warmup;
  t.repeats = o.repeats;
  t.flush_l2 = true;  // small device copies would otherwise be served from the L2
  for (size_t k = 0; k < o.kinds.size(); ++k) {
    CopyBench bench(o.kinds[k], o.max_bytes);
    for (size_t s = 0; s < sizes.size(); ++s) {
      if (progress) progress(o.kinds[k], k, o.kinds.size(), sizes[s], s, sizes.size());
      BandwidthResult res = bench.measure(sizes[s], t);
      res.ms.samples.clear();  // kept out of the report: the summary is what is compared
      r.results.push_back(std::move(res));
    }
  }
  r.p_gbps = peak_d2d_bandwidth() / 1e9;
  r.peaks = device_peaks(device);

  r.summaries = summarize_sweep(r.results, o.kinds, r.peaks);

  if (r.seed) {
    for (SeedRow& row : r.seed->rows) {
      auto measured = [&](CopyKind k) {
        if (const BandwidthResult* b = find_result(r.results, k, r.seed->bytes)) return b->gbps;
        return measure_copy_bandwidth(k, r.seed->bytes, o.repeats).gbps;
      };
      row.right_gbps = measured(row.kind);
      row.better_kind = row.kind == CopyKind::h2d_pageable   ? CopyKind::h2d_pinned
                        : row.kind == CopyKind::d2h_pageable ? CopyKind::d2h_pinned
                                                             : CopyKind::d2d;
      row.better_gbps = row.better_kind == row.kind ? row.right_gbps : measured(row.better_kind);
      row.compare_with = reference_name(r.peaks, row.better_kind);
      row.compare_gbps = reference_gbps(r.peaks, row.better_kind);
    }
  }
  return r;
}

// ---------------------------------------------------------------- JSON

namespace {

nlohmann::json or_null(double v) {
  return v > 0 ? nlohmann::json(v) : nlohmann::json();
}

}  // namespace

nlohmann::json probe_json(const ProbeReport& r) {
  using nlohmann::json;
  const Provenance& v = r.provenance;
  json j;
  j["schema"] = "day18-bandwidth-probe/1";
  j["provenance"] = {{"gpu", v.gpu},
                     {"pci_bus_id", v.pci_bus_id},
                     {"sm", detail::concat(v.sm_major, ".", v.sm_minor)},
                     {"sm_count", v.sm_count},
                     {"memory_bytes", v.memory_bytes},
                     {"l2_bytes", v.l2_bytes},
                     {"nvidia_driver", v.nvidia_driver},
                     {"cuda_driver", v.cuda_driver},
                     {"cuda_runtime", v.cuda_runtime},
                     {"commit", v.commit},
                     {"host", v.host},
                     {"time_utc", v.time_utc}};
  json kinds = json::array();
  for (CopyKind k : r.options.kinds) kinds.push_back(std::string(copy_kind_key(k)));
  j["options"] = {{"kinds", kinds},
                  {"min_bytes", r.options.min_bytes},
                  {"max_bytes", r.options.max_bytes},
                  {"step", r.options.step},
                  {"warmup", r.options.warmup},
                  {"repeats", r.options.repeats},
                  {"seed", r.options.seed},
                  {"l2_flushed", true},
                  {"timer", "CUDA events on the copy's stream"}};
  j["convention"] = {{"gbps", "bytes moved / median time; 1 GB = 1e9 bytes"},
                     {"bytes_moved",
                      "what crosses the memory or link that limits the copy: D2D (cudaMemcpy "
                      "or kernel) 2x the bytes copied (read + write); read-only and write-only "
                      "kernels 1x; H2D, D2H 1x; bidirectional 2x (both directions)"},
                     {"bytes_copied", "the payload; bidirectional counts both directions"},
                     {"p",
                      "p_gbps = peak_d2d_bandwidth(): D2D cudaMemcpy of 1 GiB, bytes moved (read + "
                      "write) / median of 20 copies; the P of every '% of P' in the project"}};
  j["p_gbps"] = r.p_gbps;
  j["datasheet"] = {{"hbm_gbps", or_null(r.peaks.hbm_gbps)},
                    {"memory_clock_khz", r.peaks.memory_clock_khz},
                    {"bus_width_bits", r.peaks.bus_width_bits},
                    {"hbm_formula", "memory clock x 2 (DDR) x bus width / 8"},
                    {"hbm_note", r.peaks.hbm_note},
                    {"link",
                     {{"name", r.peaks.link.name},
                      {"gt_per_s", r.peaks.link.gt_per_s},
                      {"lanes", r.peaks.link.lanes},
                      {"gbps_per_direction", or_null(r.peaks.link.gbps)},
                      {"source", r.peaks.link.source}}}};
  json results = json::array();
  for (const BandwidthResult& b : r.results)
    results.push_back(
        {{"kind", std::string(copy_kind_key(b.kind))},
         {"name", std::string(copy_kind_name(b.kind))},
         {"limit", copy_limit(b.kind) == CopyLimit::host_link ? "host_link" : "device_memory"},
         {"bytes", b.bytes},
         {"bytes_copied", b.rate.bytes_copied},
         {"bytes_moved", b.rate.bytes_moved},
         {"median_ms", b.median_ms},
         {"p20_ms", b.p20_ms},
         {"p80_ms", b.p80_ms},
         {"min_ms", b.min_ms},
         {"gbps", b.rate.gbps},
         {"gbps_p20", b.rate.gbps_p20},
         {"gbps_p80", b.rate.gbps_p80},
         {"gbps_copied", b.rate.gbps_copied}});
  j["results"] = results;
  json sums = json::array();
  for (const KindSummary& s : r.summaries)
    sums.push_back({{"kind", std::string(copy_kind_key(s.kind))},
                    {"largest_gbps", s.largest_gbps},
                    {"peak_gbps", s.half.peak_gbps},
                    {"half_bandwidth_bytes", s.half.bytes},
                    {"half_at_first_point", s.half.at_first_point},
                    {"reference", s.reference},
                    {"reference_gbps", or_null(s.reference_gbps)}});
  j["summaries"] = sums;
  if (r.seed) {
    json rows = json::array();
    for (const SeedRow& s : r.seed->rows)
      rows.push_back({{"kind", std::string(copy_kind_key(s.kind))},
                      {"what", s.what},
                      {"seconds", s.seconds},
                      {"seed_gbps", s.seed_gbps},
                      {"seed_pct_of_peak", s.seed_pct_of_peak},
                      {"right_gbps", s.right_gbps},
                      {"seed_over_right", s.right_gbps > 0 ? s.seed_gbps / s.right_gbps : 0.0},
                      {"better_kind", std::string(copy_kind_key(s.better_kind))},
                      {"better_gbps", s.better_gbps},
                      {"seed_over_better", s.better_gbps > 0 ? s.seed_gbps / s.better_gbps : 0.0},
                      {"compare_with", s.compare_with},
                      {"compare_gbps", or_null(s.compare_gbps)}});
    j["seed"] = {{"bytes", r.seed->bytes},
                 {"peak_gbps", kSeedPeakGbps},
                 {"method",
                  "one pageable copy each, host clock around cudaMemcpy + device "
                  "synchronize, no warm-up, D2D bytes counted once, every copy "
                  "compared with a hard-coded HBM peak (an A100 40GB's)"},
                 {"rows", rows}};
  } else {
    j["seed"] = nullptr;
  }
  return j;
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  DAY18_REQUIRE(!path.empty(), "--json: the file name is empty");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    DAY18_REQUIRE(out.good(), "--json: cannot write '", tmp, "' (does its folder exist?)");
    out << j.dump(2) << "\n";
    out.close();
    if (!out.good()) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      DAY18_REQUIRE(false, "--json: writing '", tmp, "' failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ec2;
    std::filesystem::remove(tmp, ec2);
    DAY18_REQUIRE(false, "--json: renaming '", tmp, "' to '", path, "' failed: ", ec.message());
  }
}

// ---------------------------------------------------------------- the tables

namespace {

const char* short_name(CopyKind k) {
  switch (k) {
    case CopyKind::d2d:
      return "D2D";
    case CopyKind::d2d_kernel:
      return "D2Dkern";
    case CopyKind::read_kernel:
      return "read";
    case CopyKind::write_kernel:
      return "write";
    case CopyKind::h2d_pinned:
      return "H2Dpin";
    case CopyKind::d2h_pinned:
      return "D2Hpin";
    case CopyKind::h2d_pageable:
      return "H2Dpage";
    case CopyKind::d2h_pageable:
      return "D2Hpage";
    case CopyKind::bidirectional:
      return "bidir";
  }
  return "?";
}

std::string pad_left(const std::string& s, size_t width) {
  return s.size() >= width ? " " + s : std::string(width - s.size(), ' ') + s;
}

std::string pct(double v, double of) {
  return of > 0 ? fmt("%.0f%%", 100.0 * v / of) : "unknown";
}

std::string gbps_or_unknown(double v) {
  return v > 0 ? fmt("%.0f GB/s", v) : "unknown";
}

}  // namespace

std::string probe_table(const ProbeReport& r) {
  std::ostringstream os;
  const Provenance& v = r.provenance;
  auto line = [&](const std::string& s) { os << s << "\n"; };
  line(detail::concat("GPU: ", v.gpu, " (sm_", v.sm_major, v.sm_minor, ", ", v.sm_count, " SMs, ",
                      format_size(v.l2_bytes), " L2), NVIDIA driver ", v.nvidia_driver,
                      ", CUDA driver ", v.cuda_driver, ", runtime ", v.cuda_runtime, ", commit ",
                      v.commit));
  line("");
  line("GB/s = bytes moved / median time (CUDA events, " + std::to_string(r.options.warmup) +
       " warm-ups, median of " + std::to_string(r.options.repeats) +
       ", L2 flushed); D2D and the copy kernel count read + write");
  std::string head = pad_left("size", 10);
  for (CopyKind k : r.options.kinds) head += pad_left(short_name(k), 9);
  line(head);
  std::vector<size_t> sizes;
  for (const BandwidthResult& b : r.results)
    if (std::find(sizes.begin(), sizes.end(), b.bytes) == sizes.end()) sizes.push_back(b.bytes);
  std::sort(sizes.begin(), sizes.end());
  for (size_t s : sizes) {
    std::string row = pad_left(format_size(s), 10);
    for (CopyKind k : r.options.kinds) {
      const BandwidthResult* b = find_result(r.results, k, s);
      row += b ? fmt("%9.1f", b->gbps) : pad_left("-", 9);
    }
    line(row);
  }
  line(
      "(the L2 is flushed before each copy, so reads come from HBM; but the L2 is write-back: "
      "below its size (" +
      format_size(v.l2_bytes) +
      ") writes may end in it, so small write "
      "and copy points can show more than HBM gives)");
  line("");
  line("kind                  moved/copied  GB/s at " + format_size(r.options.max_bytes) +
       " (p20-p80)    copied GB/s  half at      compared with");
  for (const KindSummary& s : r.summaries) {
    const BandwidthResult* b = find_result(r.results, s.kind, r.options.max_bytes);
    const double ratio = b ? b->rate.bytes_moved / b->rate.bytes_copied : 0;
    std::string half = s.half.at_first_point ? "<= " + format_size(size_t(s.half.bytes))
                                             : format_size(size_t(std::llround(s.half.bytes)));
    std::string cmp;
    if (copy_limit(s.kind) == CopyLimit::device_memory)
      cmp = pct(s.largest_gbps, r.peaks.hbm_gbps) + " of HBM datasheet, " +
            pct(s.largest_gbps, r.p_gbps) + " of P";
    else
      cmp = s.reference_gbps > 0 ? pct(s.largest_gbps, s.reference_gbps) + " of " + s.reference
                                 : "no link peak known: compare with the other host kinds";
    char spread[64], buf[320];
    std::snprintf(spread, sizeof spread, "(%.0f-%.0f)", b ? b->rate.gbps_p20 : 0.0,
                  b ? b->rate.gbps_p80 : 0.0);
    std::snprintf(buf, sizeof buf, "%-20s  %4.0fx        %8.1f %-13s  %10.1f  %-11s  %s",
                  std::string(copy_kind_name(s.kind)).c_str(), ratio, b ? b->gbps : 0.0, spread,
                  b ? b->rate.gbps_copied : 0.0, half.c_str(), cmp.c_str());
    line(buf);
  }
  line("");
  line(fmt("P = %.0f GB/s: ", r.p_gbps) +
       "peak_d2d_bandwidth(), a 1 GiB D2D cudaMemcpy, bytes moved (read + write) / median of "
       "20; the P of every \"% of P\" in the project" +
       fmt(" (bytes copied: %.0f GB/s)", r.p_gbps / 2));
  if (r.peaks.hbm_gbps > 0)
    line(detail::concat("HBM datasheet peak: ", fmt("%.0f", r.peaks.hbm_gbps),
                        " GB/s (device attributes: memory clock ",
                        fmt("%.0f", r.peaks.memory_clock_khz / 1e3), " MHz x 2 (DDR) x ",
                        r.peaks.bus_width_bits, "-bit bus / 8); P is ",
                        pct(r.p_gbps, r.peaks.hbm_gbps), " of it"));
  else
    line("HBM datasheet peak: unknown (" + r.peaks.hbm_note + ")");
  if (r.peaks.link.gbps > 0)
    line(detail::concat("host link: ", r.peaks.link.name, ", ", fmt("%.1f", r.peaks.link.gbps),
                        " GB/s per direction after encoding (", r.peaks.link.source, ")"));
  else
    line("host link: unknown (" + r.peaks.link.source +
         "); host copies are compared with "
         "each other only");
  if (r.seed) {
    line("");
    line("The seed's probe, reproduced (" + format_size(r.seed->bytes) +
         ", one copy each, host clock, no warm-up, bytes counted once, every number against a "
         "hard-coded 1555 GB/s):");
    line(
        "  copy         seed says   seed's %peak   right (same copy)  seed/right   pinned / "
        "right kind   seed/that   should be compared with");
    for (const SeedRow& s : r.seed->rows) {
      char buf[320];
      std::snprintf(buf, sizeof buf,
                    "  %-11s %8.1f GB/s   %6.1f%%      %8.1f GB/s      %6.2fx    %8.1f GB/s      "
                    "  %6.2fx    %s: %s",
                    s.what.c_str(), s.seed_gbps, s.seed_pct_of_peak, s.right_gbps,
                    s.right_gbps > 0 ? s.seed_gbps / s.right_gbps : 0.0, s.better_gbps,
                    s.better_gbps > 0 ? s.seed_gbps / s.better_gbps : 0.0, s.compare_with.c_str(),
                    (gbps_or_unknown(s.compare_gbps) + ", the right one is " +
                     pct(s.better_gbps, s.compare_gbps) + " of it")
                        .c_str());
      line(buf);
    }
  }
  return os.str();
}

}  // namespace day18
