// day18_bench: every kernel benchmark in one binary. Run with --benchmark_filter=<regex> and
// --benchmark_out=<file>.json; the JSON context names the GPU, the NVIDIA driver, CUDA, the SM
// count and the commit.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <string>

#include "engine/benchmarks/bench_support.h"
#include "engine/core/build_info.h"
#include "engine/profiling/bandwidth_probe.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("day18_commit", day18::git_commit());
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  benchmark::AddCustomContext("cuda_runtime", std::to_string(rt / 1000) + "." + std::to_string(rt % 1000 / 10));
  if (day18::cuda_available()) {
    cudaDriverGetVersion(&drv);
    cudaDeviceProp p{};
    cudaGetDeviceProperties(&p, 0);
    benchmark::AddCustomContext("gpu", p.name);
    benchmark::AddCustomContext("cuda_driver_api", std::to_string(drv / 1000) + "." + std::to_string(drv % 1000 / 10));
    benchmark::AddCustomContext("compute_capability", std::to_string(p.major) + "." + std::to_string(p.minor));
    benchmark::AddCustomContext("num_sms", std::to_string(p.multiProcessorCount));
    // The NVIDIA driver (kernel module) version, e.g. 580.159.04: cuda_driver_api above is only
    // the CUDA version that driver supports.
    benchmark::AddCustomContext("nvidia_driver", day18::collect_provenance(0).nvidia_driver);
    benchmark::AddCustomContext("d2d_copy_GBps", std::to_string(day18::bench::peak_bandwidth() / 1e9));
    benchmark::AddCustomContext("pinned_h2d_GBps", std::to_string(day18::bench::pinned_h2d_bandwidth() / 1e9));
    benchmark::AddCustomContext("pinned_d2h_GBps", std::to_string(day18::bench::pinned_d2h_bandwidth() / 1e9));
  } else {
    benchmark::AddCustomContext("gpu", "none: " + day18::cuda_unavailable_reason());
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
