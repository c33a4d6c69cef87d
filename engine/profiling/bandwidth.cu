#include "engine/profiling/bandwidth.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/core/memory.h"

namespace day18 {

std::string_view copy_kind_name(CopyKind k) {
  switch (k) {
    case CopyKind::d2d: return "D2D";
    case CopyKind::h2d_pinned: return "H2D pinned";
    case CopyKind::d2h_pinned: return "D2H pinned";
    case CopyKind::h2d_pageable: return "H2D pageable";
    case CopyKind::d2h_pageable: return "D2H pageable";
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
  if (kind != CopyKind::d2d) std::memset(other.data(), 1, bytes);
  else DAY18_CUDA_CHECK(cudaMemset(other.data(), 1, bytes));
  void* dst = to_device || kind == CopyKind::d2d ? dev_a.data() : other.data();
  const void* src = to_device || kind == CopyKind::d2d ? other.data() : dev_a.data();

  Stream s;
  Event a, b;
  for (int i = 0; i < 3; ++i)
    DAY18_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s));
  s.synchronize();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    a.record(s);
    DAY18_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s));
    b.record(s);
    b.synchronize();
    ms.push_back(Event::elapsed_ms(a, b));
  }
  std::sort(ms.begin(), ms.end());
  BandwidthResult r{kind, bytes, ms[ms.size() / 2], ms.front(), 0};
  const double moved = kind == CopyKind::d2d ? 2.0 * bytes : 1.0 * bytes;
  r.gbps = moved / (r.median_ms * 1e-3) / 1e9;
  return r;
}

double peak_d2d_bandwidth() {
  static const double bw = measure_copy_bandwidth(CopyKind::d2d, size_t(1) << 30, 20).gbps * 1e9;
  return bw;
}

void flush_l2(cudaStream_t stream) {
  static Buffer scratch = [] {
    int dev = 0, l2 = 0;
    DAY18_CUDA_CHECK(cudaGetDevice(&dev));
    DAY18_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    return Buffer(std::max<size_t>(2 * static_cast<size_t>(l2), size_t(64) << 20), Storage::device);
  }();
  DAY18_CUDA_CHECK(cudaMemsetAsync(scratch.data(), 0, scratch.size(), stream));
}

}  // namespace day18
