// Bandwidth probe: the numbers every "% of peak" in this course is measured against.
//
// Done right (the seed's probe is the trap: one pageable copy timed with a host clock, no
// warm-up, PCIe copies compared with the HBM peak, and a D2D copy's bytes counted once):
//   - CUDA events around the copy, warm-up first, median of many repetitions (time_gpu(),
//     engine/profiling/timing.h);
//   - D2D counts read + write (a copy of N bytes moves 2N bytes through HBM);
//   - H2D/D2H from pinned memory, compared with each other (PCIe/NVLink-C2C), never with HBM;
//   - pageable copies measured too, to show what pinning buys.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

namespace day18 {

enum class CopyKind { d2d, h2d_pinned, d2h_pinned, h2d_pageable, d2h_pageable };
std::string_view copy_kind_name(CopyKind k);

struct BandwidthResult {
  CopyKind kind;
  size_t bytes = 0;  // bytes per copy
  double median_ms = 0;
  double min_ms = 0;
  double gbps = 0;  // bytes moved / median time; D2D counts 2x bytes
};

// Times `reps` copies of `bytes` after 3 warm-ups (time_gpu, no L2 flush); median and min.
BandwidthResult measure_copy_bandwidth(CopyKind kind, size_t bytes, int reps = 20);

// The D2D copy bandwidth "P" in bytes/s (1 GiB copies), measured once per process and cached.
double peak_d2d_bandwidth();

}  // namespace day18
