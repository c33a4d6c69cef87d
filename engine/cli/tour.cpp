// `day18 tour`: the README's main job. Runs every Day 18 kernel on a realistic shape, checks the
// CUDA result against the CPU oracle, and on a GPU reports time and the share of the bandwidth P
// measured by the probe in this same run. Without a GPU it says so and runs the CPU backend.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "engine/cli/commands.h"
#include "engine/core/build_info.h"
#include "engine/ops/registry.h"
#include "engine/profiling/bandwidth.h"

namespace day18::cli {
namespace {

struct TourOptions {
  std::string device = "auto";
  std::vector<std::string> ops;
  uint64_t seed = 18;
  int reps = 20;
};

std::string case_summary(const OpDef& op, const TensorStore& io) {
  if (op.inputs.empty()) return "";
  const Tensor& t = io.get(op.inputs.front().name);
  return op.inputs.front().name + shape_string(t.sizes());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int run_tour(const TourOptions& o) {
  bool gpu = false;
  if (o.device == "cuda") {
    DAY18_REQUIRE(cuda_available(), "tour: --device cuda but ", cuda_unavailable_reason());
    gpu = true;
  } else if (o.device == "auto") {
    gpu = cuda_available();
  }

  std::printf("Day 18 — the kernels of one inference step\n");
  std::printf("==========================================\n\n");
  double P = 0;
  if (gpu) {
    cudaDeviceProp p{};
    DAY18_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    int rt = 0, drv = 0;
    DAY18_CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    DAY18_CUDA_CHECK(cudaDriverGetVersion(&drv));
    std::printf("engine commit %s\n", git_commit());
    std::printf("GPU: %s (sm_%d%d, %d SMs, %.0f MB L2), CUDA runtime %d.%d, driver API %d.%d\n",
                p.name, p.major, p.minor, p.multiProcessorCount, p.l2CacheSize / 1e6, rt / 1000,
                rt % 1000 / 10, drv / 1000, drv % 1000 / 10);
    std::printf("Bandwidth probe: a 1 GiB device-to-device copy, timed with CUDA events...\n");
    P = peak_d2d_bandwidth();
    std::printf("  P = %.0f GB/s (bytes read + bytes written). Every %% below is of this P.\n\n",
                P / 1e9);
  } else {
    std::printf("No GPU here (%s).\n", o.device == "cpu" ? "--device cpu" : cuda_unavailable_reason().c_str());
    std::printf("Running the CPU backend: the same ops, computed by the plain C++ oracles that the\n"
                "GPU kernels are tested against. Timings are CPU timings.\n\n");
  }

  std::printf("%-20s %-5s %-28s %-8s %10s %10s %8s %10s\n", "op", "dtype", "case", "check",
              gpu ? "GPU us" : "", gpu ? "GB/s" : "", gpu ? "% of P" : "", "CPU ms");
  int failures = 0;
  for (const OpDef& op : OpRegistry::instance().all()) {
    if (!o.ops.empty() && std::find(o.ops.begin(), o.ops.end(), op.name) == o.ops.end()) continue;
    if (!op.make_case) continue;
    for (DType dt : op.tour_dtypes) {
      Rng rng(o.seed);
      TensorStore host(Device::cpu);
      Attrs attrs;
      op.make_case(rng, dt, host, attrs);
      const TensorStore inputs = host.to(Device::cpu);  // pristine copy (ops update in place)

      auto t0 = std::chrono::steady_clock::now();
      run_op(op, host, attrs);
      const double cpu_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

      std::string check = "cpu only";
      double gpu_us = 0, gbps = 0;
      if (gpu) {
        Stream s;
        TensorStore dev = inputs.to(Device::cuda);
        run_op(op, dev, attrs, s);
        CompareResult r = compare_outputs(op, dev, host);
        check = r.ok ? "ok" : "MISMATCH";
        if (!r.ok) {
          ++failures;
          std::printf("%s\n", r.report.c_str());
        }
        // Time repeated runs on the store of the checked run (outputs already allocated, so
        // nothing is allocated inside the timed region); L2 flushed before each launch. Ops
        // that update in place see their own previous output as input, which costs the same.
        if (!op.tour_timed) {
          std::printf("%-20s %-5s %-28s %-8s %10s  (timed by day18_bench: BM_%s)\n", op.name.c_str(),
                      dt == DType::f32 ? "fp32" : dt == DType::f16 ? "fp16" : "bf16",
                      case_summary(op, inputs).c_str(), check.c_str(), "-", op.name.c_str());
          continue;
        }
        std::vector<double> ms;
        Event a, b;
        for (int i = 0; i < o.reps + 2; ++i) {
          OpContext ctx{dev, attrs, s};
          flush_l2(s);
          a.record(s);
          op.run(ctx);
          b.record(s);
          b.synchronize();
          if (i >= 2) ms.push_back(Event::elapsed_ms(a, b));
        }
        gpu_us = median(ms) * 1e3;
        if (op.bytes_moved) gbps = op.bytes_moved(inputs, attrs) / (gpu_us * 1e-6) / 1e9;
      }
      std::printf("%-20s %-5s %-28s %-8s", op.name.c_str(),
                  dt == DType::f32 ? "fp32" : dt == DType::f16 ? "fp16" : "bf16",
                  case_summary(op, inputs).c_str(), check.c_str());
      if (gpu)
        std::printf(" %10.1f %10.0f %7.1f%%", gpu_us, gbps, gbps > 0 ? 100.0 * gbps * 1e9 / P : 0.0);
      else
        std::printf(" %10s %10s %8s", "", "", "");
      std::printf(" %10.1f\n", cpu_ms);
    }
  }
  std::printf("\n%s\n", failures ? "Some GPU results did not match the CPU oracle (see above)."
                                 : gpu ? "Every GPU result matched its CPU oracle."
                                       : "Every op ran on the CPU backend.");
  return failures ? 1 : 0;
}

}  // namespace

Runner add_tour_command(CLI::App& app) {
  auto o = std::make_shared<TourOptions>();
  CLI::App* sub = app.add_subcommand("tour", "Guided run of the Day 18 kernels on this machine");
  sub->add_option("--device", o->device, "auto (GPU if there is one), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sub->add_option("--ops", o->ops, "Only these ops (default: all)");
  sub->add_option("--seed", o->seed, "Seed of the random inputs");
  sub->add_option("--reps", o->reps, "Timed repetitions per op on the GPU (median reported)");
  return [o] { return run_tour(*o); };
}

}  // namespace day18::cli
