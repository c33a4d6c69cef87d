#include "engine/benchmarks/bench_support.h"

#include <vector>

#include "engine/profiling/bandwidth.h"
#include "engine/profiling/timing.h"

namespace day18::bench {
double peak_bandwidth() {
  return peak_d2d_bandwidth();
}

double pinned_h2d_bandwidth() {
  static const double bw =
      measure_copy_bandwidth(CopyKind::h2d_pinned, size_t(256) << 20, 10).gbps * 1e9;
  return bw;
}

double pinned_d2h_bandwidth() {
  static const double bw =
      measure_copy_bandwidth(CopyKind::d2h_pinned, size_t(256) << 20, 10).gbps * 1e9;
  return bw;
}

bool require_gpu(benchmark::State& state) {
  if (cuda_available()) return true;
  state.SkipWithError(("skipped: " + cuda_unavailable_reason()).c_str());
  return false;
}

void run_timed(benchmark::State& state, double bytes, double flops,
               const std::function<void(cudaStream_t)>& launch, double ref_bandwidth,
               const char* ref_name) {
  Stream stream;
  launch(stream);  // warm-up: module load, first-touch
  stream.synchronize();
  GpuTimer timer(stream, /*flush_l2=*/true);
  std::vector<double> ms;
  for (auto _ : state) {
    ms.push_back(timer.time_once(launch));
    state.SetIterationTime(ms.back() * 1e-3);
  }
  if (ms.empty()) return;
  const double per_iter = summarize(std::move(ms)).mean * 1e-3;
  const double ref = ref_bandwidth > 0 ? ref_bandwidth : peak_bandwidth();
  state.counters["bytes"] = bytes;
  state.counters["GB/s"] = bytes / per_iter / 1e9;
  state.counters[ref_name] = 100.0 * bytes / per_iter / ref;
  state.counters["P_GB/s"] = peak_bandwidth() / 1e9;
  if (flops > 0) state.counters["TFLOP/s"] = flops / per_iter / 1e12;
}

}  // namespace day18::bench
