// Benchmark harness for GPU kernels (Google Benchmark), on the course's one timing helper
// (engine/profiling/timing.h, GpuTimer):
//   - manual time from CUDA events around the launch only,
//   - L2 flushed before every timed launch, outside the events (a kernel never reads its inputs
//     from a warm L2),
//   - bytes and FLOPs as counters, and the share of the D2D copy bandwidth P measured in the
//     same process ("pct_of_P"), so results compare across GPUs.
//
//   static void BM_rms_norm(benchmark::State& st) {
//     ... set up tensors ...
//     day18::bench::run_timed(st, bytes, flops, [&](cudaStream_t s) { rms_norm(..., s); });
//   }
//   BENCHMARK(BM_rms_norm)->UseManualTime()->Unit(benchmark::kMicrosecond);
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <functional>
#include <string>

#include "engine/core/memory.h"
#include "engine/profiling/bandwidth.h"
#include "engine/profiling/timing.h"

namespace day18::bench {

// D2D copy bandwidth in bytes/s, counting read + write (a copy of N bytes moves 2N), measured
// once per process: 1 GiB copies, warm-up then median of 20.
double peak_bandwidth();
double pinned_h2d_bandwidth();  // bytes/s, 256 MiB pinned -> device, median of 10
double pinned_d2h_bandwidth();

// True if a GPU is there; otherwise marks the benchmark skipped with the reason.
bool require_gpu(benchmark::State& state);

// Times `launch` once per benchmark iteration (one warm-up launch first; GpuTimer::time_once with
// the L2 flushed before each), reports manual time and sets counters from the mean time per
// launch: bytes, GB/s, pct_of_P (bytes / time / peak_bandwidth()), and TFLOP/s when flops > 0.
// `ref_bandwidth` replaces P as the 100% mark when given (e.g. pinned copies).
void run_timed(benchmark::State& state, double bytes, double flops,
               const std::function<void(cudaStream_t)>& launch, double ref_bandwidth = 0,
               const char* ref_name = "pct_of_P");

}  // namespace day18::bench
