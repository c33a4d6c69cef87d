// generated from engine/profiling/bandwidth.cpp by scripts/make_labs.py (lab 04);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
// The bandwidth probe's measuring code (bandwidth.h). Lab 04 writes three regions of this file:
// the two byte conventions and GB/s (task 1), the host side of a copy (task 3) and the size at
// which a copy reaches half its bandwidth (task 6). P itself (peak_d2d_bandwidth) is measured
// with them, and with time_gpu (timing.cu, task 2).
#include "engine/profiling/bandwidth.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/error.h"
#include "engine/profiling/probe_kernels.h"
#include "engine/profiling/timing.h"

namespace day18 {

std::string_view copy_kind_name(CopyKind k) {
  switch (k) {
    case CopyKind::d2d:
      return "D2D";
    case CopyKind::h2d_pinned:
      return "H2D pinned";
    case CopyKind::d2h_pinned:
      return "D2H pinned";
    case CopyKind::h2d_pageable:
      return "H2D pageable";
    case CopyKind::d2h_pageable:
      return "D2H pageable";
    case CopyKind::d2d_kernel:
      return "D2D kernel";
    case CopyKind::read_kernel:
      return "read-only kernel";
    case CopyKind::write_kernel:
      return "write-only kernel";
    case CopyKind::bidirectional:
      return "H2D+D2H pinned";
  }
  return "?";
}

std::string_view copy_kind_key(CopyKind k) {
  switch (k) {
    case CopyKind::d2d:
      return "d2d";
    case CopyKind::h2d_pinned:
      return "h2d_pinned";
    case CopyKind::d2h_pinned:
      return "d2h_pinned";
    case CopyKind::h2d_pageable:
      return "h2d_pageable";
    case CopyKind::d2h_pageable:
      return "d2h_pageable";
    case CopyKind::d2d_kernel:
      return "d2d_kernel";
    case CopyKind::read_kernel:
      return "read_kernel";
    case CopyKind::write_kernel:
      return "write_kernel";
    case CopyKind::bidirectional:
      return "bidirectional";
  }
  return "?";
}

CopyKind parse_copy_kind(std::string_view key, std::string_view flag) {
  std::string known;
  for (CopyKind k : kAllCopyKinds) {
    if (copy_kind_key(k) == key) return k;
    known += (known.empty() ? "" : ", ") + std::string(copy_kind_key(k));
  }
  DAY18_REQUIRE(false, flag, ": '", key, "' is not a copy kind (kinds: ", known, ")");
  return CopyKind::d2d;
}

CopyLimit copy_limit(CopyKind k) {
  return is_host_copy(k) ? CopyLimit::host_link : CopyLimit::device_memory;
}

bool is_host_copy(CopyKind k) {
  switch (k) {
    case CopyKind::h2d_pinned:
    case CopyKind::d2h_pinned:
    case CopyKind::h2d_pageable:
    case CopyKind::d2h_pageable:
    case CopyKind::bidirectional:
      return true;
    default:
      return false;
  }
}

CopyRate copy_rate(CopyKind kind, size_t bytes, const Stats& ms) {
  DAY18_REQUIRE(bytes > 0, "copy_rate: bytes must be > 0");
  DAY18_REQUIRE(ms.median > 0 && ms.p20 > 0 && ms.p80 > 0,
                "copy_rate: times must be > 0 ms, got median ", ms.median, " (p20 ", ms.p20,
                ", p80 ", ms.p80, ")");
  CopyRate r;
  // LAB 04 BEGIN bytes: bytes copied and moved by kind, then GB/s (1e9) at the median, p20, p80 (about 20 lines)
  // TODO lab 04 task 1: Bytes copied and bytes moved: a D2D copy reads and writes every byte
  // (labs/04-memory-ops/README.md, Task 1)
  throw ::day18::LabNotImplemented("04", 1, "bytes", "labs/04-memory-ops/README.md");
  // LAB 04 END bytes
  return r;
}

Buffer host_buffer(CopyKind kind, size_t bytes) {
  DAY18_REQUIRE(is_host_copy(kind), "host_buffer: ", copy_kind_name(kind),
                " has no host side (only the H2D, D2H and bidirectional kinds do)");
  DAY18_REQUIRE(bytes > 0, "host_buffer: bytes must be > 0");
  // LAB 04 BEGIN pinned: pinned memory for the pinned kinds (and bidirectional), pageable for the others; touch every page (about 8 lines)
  // TODO lab 04 task 3: The host side of a copy: pinned memory, every page touched first
  // (labs/04-memory-ops/README.md, Task 3)
  throw ::day18::LabNotImplemented("04", 3, "pinned", "labs/04-memory-ops/README.md");
  // LAB 04 END pinned
}

// ---------------------------------------------------------------- CopyBench

CopyBench::CopyBench(CopyKind kind, size_t max_bytes) : kind_(kind), max_bytes_(max_bytes) {
  DAY18_REQUIRE(max_bytes > 0, "CopyBench: max_bytes must be > 0");
  switch (kind) {
    case CopyKind::d2d:
    case CopyKind::d2d_kernel:
      dev_a_ = Buffer(max_bytes, Storage::device);
      dev_b_ = Buffer(max_bytes, Storage::device);
      DAY18_CUDA_CHECK(cudaMemset(dev_b_.data(), 1, max_bytes));
      break;
    case CopyKind::read_kernel:
      dev_b_ = Buffer(max_bytes, Storage::device);
      DAY18_CUDA_CHECK(cudaMemset(dev_b_.data(), 1, max_bytes));
      sink_ = Buffer(sizeof(unsigned long long), Storage::device);
      DAY18_CUDA_CHECK(cudaMemset(sink_.data(), 0, sink_.size()));
      break;
    case CopyKind::write_kernel:
      dev_a_ = Buffer(max_bytes, Storage::device);
      break;
    case CopyKind::bidirectional:
      host_b_ = host_buffer(kind, max_bytes);       // the H2D source
      host_a_ = host_buffer(kind, max_bytes);       // the D2H destination
      dev_a_ = Buffer(max_bytes, Storage::device);  // the H2D destination
      dev_b_ = Buffer(max_bytes, Storage::device);  // the D2H source
      DAY18_CUDA_CHECK(cudaMemset(dev_b_.data(), 1, max_bytes));
      break;
    default:  // one host side, one device side
      host_a_ = host_buffer(kind, max_bytes);
      dev_a_ = Buffer(max_bytes, Storage::device);
      DAY18_CUDA_CHECK(cudaMemset(dev_a_.data(), 1, max_bytes));
      break;
  }
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
}

void CopyBench::enqueue(size_t bytes, cudaStream_t s) {
  switch (kind_) {
    case CopyKind::d2d:
      DAY18_CUDA_CHECK(
          cudaMemcpyAsync(dev_a_.data(), dev_b_.data(), bytes, cudaMemcpyDeviceToDevice, s));
      break;
    case CopyKind::d2d_kernel:
      cuda::probe_copy(dev_a_.data(), dev_b_.data(), bytes, s);
      break;
    case CopyKind::read_kernel:
      cuda::probe_read(dev_b_.data(), bytes, static_cast<unsigned long long*>(sink_.data()), s);
      break;
    case CopyKind::write_kernel:
      cuda::probe_write(dev_a_.data(), bytes, s);
      break;
    case CopyKind::h2d_pinned:
    case CopyKind::h2d_pageable:
      DAY18_CUDA_CHECK(
          cudaMemcpyAsync(dev_a_.data(), host_a_.data(), bytes, cudaMemcpyHostToDevice, s));
      break;
    case CopyKind::d2h_pinned:
    case CopyKind::d2h_pageable:
      DAY18_CUDA_CHECK(
          cudaMemcpyAsync(host_a_.data(), dev_a_.data(), bytes, cudaMemcpyDeviceToHost, s));
      break;
    case CopyKind::bidirectional:
      // The second stream joins in after everything before this point on `s` (fork), and `s`
      // waits for it at the end (join): the events around this call cover both copies, which
      // run at once on the two copy engines.
      fork_.record(s);
      second_.wait(fork_);
      DAY18_CUDA_CHECK(
          cudaMemcpyAsync(dev_a_.data(), host_b_.data(), bytes, cudaMemcpyHostToDevice, s));
      DAY18_CUDA_CHECK(
          cudaMemcpyAsync(host_a_.data(), dev_b_.data(), bytes, cudaMemcpyDeviceToHost, second_));
      join_.record(second_);
      DAY18_CUDA_CHECK(cudaStreamWaitEvent(s, join_, 0));
      break;
  }
}

BandwidthResult CopyBench::measure(size_t bytes, const CopyTiming& t) {
  DAY18_REQUIRE(bytes > 0 && bytes <= max_bytes_, "CopyBench::measure: bytes must be in [1, ",
                max_bytes_, "], got ", bytes);
  TimingOptions o;
  o.warmup = t.warmup;
  o.repeats = t.repeats;
  o.flush_l2 = t.flush_l2;
  o.stream = stream_;
  BandwidthResult r;
  r.kind = kind_;
  r.bytes = bytes;
  r.ms = time_gpu([&](cudaStream_t s) { enqueue(bytes, s); }, o);
  r.median_ms = r.ms.median;
  r.min_ms = r.ms.min;
  r.p20_ms = r.ms.p20;
  r.p80_ms = r.ms.p80;
  r.rate = copy_rate(kind_, bytes, r.ms);
  r.gbps = r.rate.gbps;
  return r;
}

BandwidthResult measure_copy_bandwidth(CopyKind kind, size_t bytes, int reps) {
  DAY18_REQUIRE(bytes > 0, "measure_copy_bandwidth: bytes must be > 0");
  DAY18_REQUIRE(reps > 0, "measure_copy_bandwidth: reps must be > 0, got ", reps);
  CopyBench bench(kind, bytes);
  CopyTiming t;
  t.warmup = 3;
  t.repeats = reps;
  // No flush: the copies P is measured with (1 GiB) are many times the L2, and a host-device
  // copy is limited by the link, not by HBM. (The sweep of `day18 probe` flushes: its small
  // sizes would otherwise be served by the L2.)
  t.flush_l2 = false;
  return bench.measure(bytes, t);
}

double peak_d2d_bandwidth() {
  static const double bw = measure_copy_bandwidth(CopyKind::d2d, size_t(1) << 30, 20).gbps * 1e9;
  return bw;
}

// ---------------------------------------------------------------- half bandwidth

HalfBandwidth half_bandwidth_size(std::vector<SweepPoint> points) {
  DAY18_REQUIRE(!points.empty(), "half_bandwidth_size: no points (nothing was measured)");
  for (size_t i = 0; i < points.size(); ++i) {
    DAY18_REQUIRE(points[i].bytes > 0, "half_bandwidth_size: points[", i,
                  "].bytes must be > 0, got ", points[i].bytes);
    DAY18_REQUIRE(std::isfinite(points[i].gbps) && points[i].gbps >= 0,
                  "half_bandwidth_size: points[", i, "].gbps must be finite and >= 0, got ",
                  points[i].gbps);
  }
  std::sort(points.begin(), points.end(),
            [](const SweepPoint& a, const SweepPoint& b) { return a.bytes < b.bytes; });
  HalfBandwidth h;
  // LAB 04 BEGIN half_size: the peak, then the first point at or above half of it, interpolated in log(size) from the point before (about 15 lines)
  // TODO lab 04 task 6: The size at which a copy reaches half its bandwidth
  // (labs/04-memory-ops/README.md, Task 6)
  throw ::day18::LabNotImplemented("04", 6, "half_size", "labs/04-memory-ops/README.md");
  // LAB 04 END half_size
  return h;
}

}  // namespace day18
