// Bandwidth probe: the numbers every "% of P" in this course is measured against.
//
// Done right (the seed's probe is the trap: one pageable copy timed with a host clock, no
// warm-up, PCIe copies compared with the HBM peak, and a D2D copy's bytes counted once):
//   - CUDA events around the copy, warm-up first, median and p20/p80 of many repeats
//     (time_gpu(), engine/profiling/timing.h);
//   - bytes counted in both conventions and said which is which (copy_rate()): "copied" is the
//     payload, "moved" is what crosses the memory or link that limits the copy; a D2D copy of
//     N bytes reads N and writes N, so it moves 2N through HBM;
//   - host<->device copies compared with each other and with the host link (PCIe / NVLink-C2C),
//     never with HBM; pageable copies measured too, to show what pinning buys.
//
// P is peak_d2d_bandwidth(): bytes MOVED per second by a 1 GiB cudaMemcpy device to device. It is
// the one bandwidth every "% of P" in the project uses (the tour, the benchmarks, the labs'
// timing, `day18 probe`).
//
//   BandwidthResult r = measure_copy_bandwidth(CopyKind::h2d_pinned, 64 << 20);
//   std::printf("%.1f GB/s\n", r.gbps);              // bytes moved / median time, 1 GB = 1e9 B
//
// The size sweep, the datasheet peaks, the seed's probe reproduced and the JSON of `day18 probe`
// are in engine/profiling/bandwidth_probe.h; the probe's kernels in probe_kernels.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/memory.h"
#include "engine/profiling/stats.h"

namespace day18 {

enum class CopyKind : uint8_t {
  d2d,         // cudaMemcpyAsync device -> device (P is this one, at 1 GiB)
  h2d_pinned,  // cudaMemcpyAsync from page-locked host memory (cudaMallocHost)
  d2h_pinned,
  h2d_pageable,  // from ordinary (malloc) memory: the driver stages it through its own buffer
  d2h_pageable,
  d2d_kernel,     // a copy kernel: 16-byte loads and stores, grid-stride (probe_kernels.h)
  read_kernel,    // a read-only kernel: a reduction of every 16-byte word
  write_kernel,   // a write-only kernel: a 16-byte pattern stored everywhere
  bidirectional,  // H2D and D2H of `bytes` each at the same time, pinned, on two streams (both
                  // copy engines at once)
};
inline constexpr CopyKind kAllCopyKinds[] = {
    CopyKind::d2d,          CopyKind::d2d_kernel,   CopyKind::read_kernel,
    CopyKind::write_kernel, CopyKind::h2d_pinned,   CopyKind::d2h_pinned,
    CopyKind::h2d_pageable, CopyKind::d2h_pageable, CopyKind::bidirectional};

// "D2D", "H2D pinned", ... (tables).
std::string_view copy_kind_name(CopyKind k);
// "d2d", "h2d_pinned", ... (command line, JSON).
std::string_view copy_kind_key(CopyKind k);
// The kind of a key (copy_kind_key), or InvalidArgument naming `flag`, the key as written and the
// keys there are.
CopyKind parse_copy_kind(std::string_view key, std::string_view flag);

// What limits a kind, so what it may be compared with: the GPU's own memory (HBM) or the link to
// the host (PCIe or NVLink-C2C, far slower). A host copy is never a "% of HBM".
enum class CopyLimit : uint8_t { device_memory, host_link };
CopyLimit copy_limit(CopyKind k);
bool is_host_copy(CopyKind k);  // one side is host memory (h2d_*, d2h_*, bidirectional)

// ---------------------------------------------------------------- bytes and GB/s (lab 04 task 1)

// The rate of copies of `bytes` (per direction for bidirectional) from their times `ms`
// (milliseconds, summarize()), in both conventions for the bytes:
//   copied: the payload, what the caller asked to copy (bidirectional: both directions, 2x);
//   moved:  what crosses the memory or link that limits the copy: a D2D copy (cudaMemcpy or
//           kernel) reads every byte and writes it, 2x; a read-only or a write-only kernel 1x;
//           H2D/D2H 1x over the link; bidirectional 2x (1x each way, at once).
// P and every `gbps` of the project are "moved"; the seed counts a D2D copy as "copied".
// 1 GB = 1e9 bytes (GB/s, as datasheets and nvidia-smi say; not GiB/s).
struct CopyRate {
  double bytes_copied = 0, bytes_moved = 0;
  double gbps = 0;         // bytes moved / median time
  double gbps_p20 = 0;     // bytes moved / p80 time: the slow side (20% of the repeats were slower)
  double gbps_p80 = 0;     // bytes moved / p20 time: the fast side
  double gbps_copied = 0;  // bytes copied / median time (the other convention)
};
// Throws InvalidArgument for bytes == 0 or times that are not > 0.
CopyRate copy_rate(CopyKind kind, size_t bytes, const Stats& ms);

// ---------------------------------------------------------------- the host side (lab 04 task 3)

// The byte every page of a host buffer is filled with before anything is timed.
inline constexpr unsigned char kHostTouchByte = 0x5A;

// The host side of a copy of `kind`: `bytes` of pinned memory (Storage::pinned, cudaMallocHost:
// page-locked, so the copy engines DMA it directly and cudaMemcpyAsync really is asynchronous)
// for the pinned kinds, of pageable memory (Storage::host, malloc) for the pageable ones; every
// page written with kHostTouchByte first, so that no first-touch page fault lands inside a timed
// copy. Throws InvalidArgument for a kind with no host side (d2d, the kernels).
Buffer host_buffer(CopyKind kind, size_t bytes);

// ---------------------------------------------------------------- measuring

struct BandwidthResult {
  CopyKind kind = CopyKind::d2d;
  size_t bytes = 0;  // bytes per copy (per direction for bidirectional)
  double median_ms = 0, min_ms = 0, p20_ms = 0, p80_ms = 0;
  double gbps = 0;  // bytes moved / median time (D2D counts read + write); = rate.gbps
  CopyRate rate;    // both conventions and the spread
  Stats ms;         // every sample
};

struct CopyTiming {
  int warmup = 3;         // untimed copies first (first-touch, driver staging, clocks)
  int repeats = 20;       // timed copies, one pair of CUDA events each
  bool flush_l2 = false;  // flush the L2 before each timed copy (outside the events): needed
                          // below a few times the L2's size, where a device copy would find
                          // its source in L2 and report more than HBM can give
};

// The buffers of one kind, allocated once for copies of up to `max_bytes` and reused for every
// size of a sweep (allocating 1 GiB of pinned memory takes longer than copying it), with the
// probe's own streams (and, for bidirectional, the second stream and the fork/join events).
class CopyBench {
 public:
  CopyBench(CopyKind kind, size_t max_bytes);
  // Times copies of `bytes` (0 < bytes <= max_bytes; a multiple of 16 for the kernels).
  BandwidthResult measure(size_t bytes, const CopyTiming& t = {});
  // Enqueues one copy of `bytes` on the bench's stream (bidirectional: forks to the second
  // stream and joins back). For callers that time or overlap it themselves.
  void enqueue(size_t bytes, cudaStream_t stream);
  cudaStream_t stream() const { return stream_; }
  CopyKind kind() const { return kind_; }
  size_t max_bytes() const { return max_bytes_; }

 private:
  CopyKind kind_;
  size_t max_bytes_;
  Buffer dev_a_, dev_b_, host_a_, host_b_, sink_;
  Stream stream_, second_;
  Event fork_{false}, join_{false};
};

// One kind at one size: CopyBench(kind, bytes).measure(bytes, {3 warm-ups, reps, no flush}).
BandwidthResult measure_copy_bandwidth(CopyKind kind, size_t bytes, int reps = 20);

// P: the D2D copy bandwidth in bytes/s (bytes moved by 1 GiB cudaMemcpy copies, median of 20),
// measured once per process and cached.
double peak_d2d_bandwidth();

// ---------------------------------------------------------------- half bandwidth (lab 04 task 6)

struct SweepPoint {
  double bytes = 0;  // copy size
  double gbps = 0;   // its measured bandwidth (any one convention, the same for every point)
};
struct HalfBandwidth {
  double bytes = 0;             // the size at which the sweep first reaches half its peak
  double peak_gbps = 0;         // the highest gbps of the sweep
  bool at_first_point = false;  // the smallest size measured already reaches half the peak:
                                // `bytes` is that size, an upper bound of the true one
};
// Where a copy's bandwidth, rising with its size as the fixed cost of a copy (~microseconds)
// is spread over more bytes, first reaches half of the sweep's peak: between the last point
// below half and the first at or above it, interpolated linearly in gbps against log(size)
// (the sweep's sizes are geometric). Points in any order (sorted by size here); throws
// InvalidArgument for no points, a size <= 0, or a gbps that is negative or not finite.
HalfBandwidth half_bandwidth_size(std::vector<SweepPoint> points);

}  // namespace day18
