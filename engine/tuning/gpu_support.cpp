// The GPU experiments' shared pieces (gpu_support.h).
#include "engine/tuning/gpu_support.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/core/build_info.h"
#include "engine/core/device.h"
#include "engine/core/error.h"
#include "engine/core/memory.h"
#include "engine/core/rng.h"
#include "engine/ops/linear.h"
#include "engine/profiling/bandwidth.h"
#include "engine/profiling/bandwidth_probe.h"
#include "engine/profiling/calibration_kernels.h"
#include "engine/profiling/classifier.h"
#include "engine/profiling/kernel_analysis.h"
#include "engine/profiling/timing.h"
#include "engine/runtime/model_kernels.h"

namespace day18::tuning {

Occupancy occupancy_of(const void* kernel, int threads, size_t dynamic_smem, double grid_blocks) {
  DAY18_REQUIRE(kernel != nullptr, "occupancy_of: no kernel (not compiled for this configuration)");
  cudaFuncAttributes attr{};
  DAY18_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  int blocks = 0;
  DAY18_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, dynamic_smem));
  int device = 0, max_threads_sm = 0, sms = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&device));
  DAY18_CUDA_CHECK(
      cudaDeviceGetAttribute(&max_threads_sm, cudaDevAttrMaxThreadsPerMultiProcessor, device));
  DAY18_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  Occupancy o;
  o.blocks_per_sm = blocks;
  o.registers = attr.numRegs;
  o.shared_bytes = static_cast<double>(attr.sharedSizeBytes + dynamic_smem);
  const int warps = (threads + 31) / 32;
  o.theoretical_pct = max_threads_sm > 0 ? 100.0 * blocks * warps * 32 / max_threads_sm : 0;
  o.waves = blocks > 0 && sms > 0 ? grid_blocks / (static_cast<double>(sms) * blocks) : 0;
  o.threads = threads;
  o.grid = grid_blocks;
  return o;
}

namespace {

double measure_tensor_tflops() {
  constexpr int64_t n = calibration::kGemmN;
  Stream stream;
  OwnedTensor a({n, n}, DType::bf16, Storage::device), b({n, n}, DType::bf16, Storage::device),
      c({n, n}, DType::bf16, Storage::device);
  fill_random_normal(a, 18, 2, 0.0, 1.0, stream);
  fill_random_normal(b, 18, 3, 0.0, 0.02, stream);
  TimingOptions t;
  t.stream = stream;
  t.repeats = 10;
  const Stats ms = time_gpu([&](cudaStream_t s) { linear(c, a, b, LinearAlgo::cublas, s); }, t);
  return 2.0 * n * n * n / (ms.median * 1e-3) / 1e12;
}

double measure_fma_tflops() {
  Stream stream;
  const int blocks = cuda::sm_count() * 64, iters = 4096;
  OwnedTensor out({int64_t(blocks) * 256}, DType::f32, Storage::device);
  TimingOptions t;
  t.stream = stream;
  t.repeats = 10;
  const Stats ms = time_gpu(
      [&](cudaStream_t s) { calibration::fma_loop(out.ptr<float>(), blocks, iters, 1.0f, s); }, t);
  return calibration::fma_loop_flops(blocks, iters) / (ms.median * 1e-3) / 1e12;
}

}  // namespace

Roof resolve_roof(const std::string& roof_file) {
  Roof r;
  if (!roof_file.empty()) {
    const ::day18::Roof f = read_roof_json(roof_file);
    DAY18_REQUIRE(f.peak_bw > 0, "--roof ", roof_file, ": has no p_gbps");
    r.p_gbps = f.peak_bw / 1e9;
    r.peak_tflops = f.peak_flops / 1e12;
    r.peak_fma_tflops = f.peak_fma_flops / 1e12;
    r.p_source = "--roof " + roof_file;
  } else {
    r.p_gbps = peak_d2d_bandwidth() / 1e9;
    r.p_source = "probe run in this process";
  }
  if (r.peak_tflops <= 0) r.peak_tflops = measure_tensor_tflops();
  if (r.peak_fma_tflops <= 0) r.peak_fma_tflops = measure_fma_tflops();
  return r;
}

Provenance make_provenance(const std::string& command) {
  int device = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&device));
  const ::day18::Provenance p = collect_provenance(device);
  Provenance v;
  v.gpu = p.gpu;
  v.driver = p.nvidia_driver.empty() ? p.cuda_driver : p.nvidia_driver;
  v.cuda_runtime = p.cuda_runtime;
  v.commit = p.commit;
  v.date = p.time_utc;
  v.command = command;
  v.sm_count = p.sm_count;
  return v;
}

void finish_point(Point& p, const Roof& roof, const std::string& kernel_name, bool tensor_op) {
  if (!p.timed) return;
  const double s = p.median_us * 1e-6;
  p.pct_of_p = roof.p_gbps > 0 && s > 0 ? 100.0 * p.bytes / s / (roof.p_gbps * 1e9) : 0;
  KernelEvidence k;
  k.name = kernel_name;
  k.source = "tune";
  k.duration_s = s;
  k.bytes = p.bytes;
  k.flops = p.flops;
  k.bytes_source = k.flops_source = "cost model";
  k.tensor_op = tensor_op;
  if (p.occupancy) {
    const Occupancy& o = *p.occupancy;
    k.theoretical_occupancy_pct = o.theoretical_pct;
    k.waves_per_sm = o.waves;
    k.block_size = o.threads;
    k.grid_size = o.grid;
    k.registers_per_thread = o.registers;
    k.shared_mem_per_block = o.shared_bytes;
  }
  ::day18::Roof r;
  r.peak_bw = roof.p_gbps * 1e9;
  r.peak_flops = roof.peak_tflops * 1e12;
  r.peak_fma_flops = roof.peak_fma_tflops * 1e12;
  r.source = roof.p_source;
  p.verdict = classify(k, r).label();
}

CheckResult compare_output(const Tensor& device_out, const Tensor& expected, Tolerance tol) {
  const OwnedTensor got = OwnedTensor(device_out.sizes(), device_out.dtype(), Storage::host);
  copy_tensor(got, device_out);
  const CompareResult c = compare_tensors(got, expected, tol);
  double max_expected = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double v = std::fabs(host_get(expected, i));
    if (std::isfinite(v)) max_expected = std::max(max_expected, v);
  }
  CheckResult r;
  r.ok = c.ok;
  r.max_abs_err = c.max_abs_err;
  r.tolerance = tol.atol + tol.rtol * max_expected;
  r.report = c.report;
  return r;
}

void Progress::step(const std::string& label) {
  ++done;
  std::fprintf(stderr, "tune %s [%3zu/%zu] %s\n", what.c_str(), done, total, label.c_str());
}

double point_budget(const RunOptions& o, size_t points) {
  const double total = o.budget_s > 0 ? o.budget_s : (o.quick ? 45.0 : 240.0);
  return std::max(0.2, total / std::max<size_t>(points, 1));
}

void require_gpu_for(const std::string& what) {
  if (!cuda_available())
    throw Error(detail::concat(
        "tune ", what, ": needs a CUDA GPU, but ", cuda_unavailable_reason(),
        ". Recorded results can be shown on any machine: day18 tune show FILE.json [--plot DIR] "
        "(reference/results/ has some)"));
}

}  // namespace day18::tuning
