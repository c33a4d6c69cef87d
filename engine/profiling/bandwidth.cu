#include "engine/profiling/bandwidth.h"

#include <cstring>

#include "engine/core/memory.h"
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
  }
  return "?";
}

BandwidthResult measure_copy_bandwidth(CopyKind kind, size_t bytes, int reps) {
  DAY18_REQUIRE(bytes > 0, "measure_copy_bandwidth: bytes must be > 0");
  DAY18_REQUIRE(reps > 0, "measure_copy_bandwidth: reps must be > 0, got ", reps);
  const bool pageable = kind == CopyKind::h2d_pageable || kind == CopyKind::d2h_pageable;
  const bool to_device = kind == CopyKind::h2d_pinned || kind == CopyKind::h2d_pageable;
  Buffer dev_a(bytes, Storage::device);
  Buffer other(bytes, kind == CopyKind::d2d ? Storage::device
                      : pageable            ? Storage::host
                                            : Storage::pinned);
  // Touch host pages first so page faults are not timed.
  if (kind != CopyKind::d2d)
    std::memset(other.data(), 1, bytes);
  else
    DAY18_CUDA_CHECK(cudaMemset(other.data(), 1, bytes));
  void* dst = to_device || kind == CopyKind::d2d ? dev_a.data() : other.data();
  const void* src = to_device || kind == CopyKind::d2d ? other.data() : dev_a.data();

  Stream s;
  TimingOptions t;
  t.warmup = 3;
  t.repeats = reps;
  // No flush: the copies P is measured with (1 GiB) are many times the L2, and a host-device
  // copy is limited by the link, not by HBM.
  t.flush_l2 = false;
  t.stream = s;
  const Stats ms = time_gpu(
      [&](cudaStream_t st) {
        DAY18_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st));
      },
      t);
  BandwidthResult r{kind, bytes, ms.median, ms.min, 0};
  const double moved = kind == CopyKind::d2d ? 2.0 * bytes : 1.0 * bytes;
  r.gbps = moved / (r.median_ms * 1e-3) / 1e9;
  return r;
}

double peak_d2d_bandwidth() {
  static const double bw = measure_copy_bandwidth(CopyKind::d2d, size_t(1) << 30, 20).gbps * 1e9;
  return bw;
}

}  // namespace day18
