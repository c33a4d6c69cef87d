// `day18 calibrate`: the kernels whose bottleneck is known by construction
// (engine/profiling/calibration_kernels.h), each in its own NVTX range inside "calibrate".
//
//   day18 calibrate --list                 what runs, and the verdict each must get
//   day18 calibrate --once                 each kernel exactly once: for ncu
//                                          (scripts/profile_ncu.sh --calibration)
//   day18 calibrate --json roof.json       timed (warm-up, L2 flushed, median): the roof of this
//                                          GPU, measured: P, the tensor-core and FMA peaks
//   day18 calibrate --decode-step --preset llama-1b --batch 8 --context 1024 [--once]
//                                          one decode step of the engine's model (random
//                                          weights) inside the NVTX range "decode_step": what
//                                          ncu profiles for the kernel analysis page (the cost
//                                          model's plan is this same step: classify --preset ...)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include <cuda_profiler_api.h>
#include <nlohmann/json.hpp>

#include "engine/cli/kernel_analysis_cmds.h"
#include "engine/core/build_info.h"
#include "engine/core/device.h"
#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/core/memory.h"
#include "engine/core/nvtx.h"
#include "engine/ops/linear.h"
#include "engine/profiling/bandwidth.h"
#include "engine/profiling/calibration_kernels.h"
#include "engine/profiling/timing.h"
#include "engine/runtime/contiguous_batch.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/model_kernels.h"

namespace day18::cli {
namespace {

struct CalibrateOptions {
  bool list = false;
  bool once = false;
  std::string json;
  int repeats = 10;
  std::vector<std::string> only;
  bool decode_step = false;
  std::string preset = "llama-1b";
  int64_t batch = 8, context = 1024;
  std::string dtype = "fp16";
};

// One decode step: `batch` sequences, one new token each at position context - 1, contiguous KV
// blocks (make_contiguous_batch), the model's forward() inside NVTX "decode_step". --once: just
// that (under ncu); else warm-up and timed steps.
int run_decode_step(const CalibrateOptions& o) {
  constexpr int64_t kBlock = 16;
  const DType dt = parse_dtype(o.dtype);
  const int64_t blocks_per_seq = (o.context + kBlock - 1) / kBlock;
  RuntimeLimits lim;
  lim.max_num_tokens = std::max<int64_t>(o.batch, 16);
  lim.max_num_seqs = o.batch;
  lim.max_model_len = blocks_per_seq * kBlock;
  lim.kv.block_size = kBlock;
  lim.kv.num_blocks = o.batch * blocks_per_seq;
  LlamaModel model = LlamaModel::from_preset(o.preset, dt, Device::cuda, 18, lim);
  std::vector<SequenceChunk> chunks;
  for (int64_t s = 0; s < o.batch; ++s)
    chunks.push_back({{int32_t(1 + s)}, o.context - 1, s, false});
  ContiguousBatch b = make_contiguous_batch(chunks, kBlock, blocks_per_seq, Device::cuda);
  Stream stream;
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  if (o.once) {
    // Under ncu --profile-from-start off only what runs between these two calls is profiled:
    // the step, not the model's set-up (no-ops without a profiler).
    DAY18_CUDA_CHECK(cudaProfilerStart());
    {
      DAY18_NVTX_RANGE("decode_step");
      model.forward(b.batch, stream);
      stream.synchronize();
    }
    DAY18_CUDA_CHECK(cudaProfilerStop());
    std::fprintf(stderr, "calibrate: one decode step of %s (%ld sequences x %ld context, %s)\n",
                 o.preset.c_str(), long(o.batch), long(o.context), o.dtype.c_str());
    return 0;
  }
  TimingOptions t;
  t.stream = stream;
  t.repeats = o.repeats;
  t.warmup = 2;
  const Stats ms = time_gpu(
      [&](cudaStream_t s) {
        DAY18_NVTX_RANGE("decode_step");
        model.forward(b.batch, s);
      },
      t);
  std::printf(
      "decode step of %s, %ld sequences x %ld context, %s: median %.1f us (p20 %.1f, p80 "
      "%.1f), L2 flushed before each\n",
      o.preset.c_str(), long(o.batch), long(o.context), o.dtype.c_str(), ms.median * 1e3,
      ms.p20 * 1e3, ms.p80 * 1e3);
  return 0;
}

int print_list() {
  std::printf("%-14s %-24s %-50s\n", "key", "kernel", "expected verdict");
  for (const auto& k : calibration::calibration_kernels())
    std::printf("%-14s %-24s %-50s\n%-14s %-24s   %s\n", k.key.c_str(), k.kernel.c_str(),
                k.expect.c_str(), "", "", k.how.c_str());
  std::printf(
      "\nreference/ncu/labels.json holds the same labels; scripts/profile_ncu.sh "
      "--calibration profiles them.\n");
  return 0;
}

struct Result {
  std::string key;
  double ms = 0, bytes = 0, flops = 0;
};

int run_calibrate(const CalibrateOptions& o) {
  if (o.list) return print_list();
  DAY18_REQUIRE(cuda_available(), "calibrate: needs a CUDA GPU, but ", cuda_unavailable_reason(),
                " (--list shows what it runs; reference/ncu/ has results from real GPUs)");
  if (o.decode_step) return run_decode_step(o);
  DAY18_REQUIRE(!(o.once && !o.json.empty()),
                "calibrate: --json needs the timed runs; --once launches each kernel once, untimed "
                "(for ncu): give one of them");
  auto wanted = [&](const std::string& key) {
    if (o.only.empty()) return true;
    for (const auto& k : o.only)
      if (k == key) return true;
    return false;
  };
  for (const auto& k : o.only) {
    bool known = false;
    for (const auto& c : calibration::calibration_kernels()) known |= c.key == k;
    DAY18_REQUIRE(known, "calibrate --only ", k, ": no such kernel (day18 calibrate --list)");
  }
  Stream stream;
  const int sms = cuda::sm_count();
  // Buffers: a 1 GiB table (the gather's, also the sums' input), the copy's 512 MiB destination.
  constexpr size_t kTableFloats = size_t{1} << 28;  // 1 GiB
  constexpr size_t kCopyBytes = size_t{512} << 20;
  OwnedTensor table({int64_t(kTableFloats)}, DType::f32, Storage::device);
  fill_random_normal(table, 18, 1, 0.0, 1.0, stream);
  OwnedTensor copy_out({int64_t(kCopyBytes / 4)}, DType::f32, Storage::device);
  constexpr size_t kGatherOut = size_t{64} << 20;  // floats
  OwnedTensor gather_out({int64_t(kGatherOut)}, DType::f32, Storage::device);
  const int fma_blocks = sms * 8 * 8, fma_iters = 4096;
  OwnedTensor fma_out({int64_t(fma_blocks) * 256}, DType::f32, Storage::device);
  OwnedTensor sums({int64_t(sms) * 8}, DType::f32, Storage::device);
  const size_t smem = calibration::one_block_per_sm_smem_bytes();
  constexpr int64_t kGemm = calibration::kGemmN;
  OwnedTensor ga, gb, gc;
  if (wanted("tensor_gemm")) {
    ga = OwnedTensor({kGemm, kGemm}, DType::bf16, Storage::device);
    gb = OwnedTensor({kGemm, kGemm}, DType::bf16, Storage::device);
    gc = OwnedTensor({kGemm, kGemm}, DType::bf16, Storage::device);
    fill_random_normal(ga, 18, 2, 0.0, 1.0, stream);
    fill_random_normal(gb, 18, 3, 0.0, 0.02, stream);
  }
  stream.synchronize();

  struct Kernel {
    std::string key;
    double bytes, flops;
    std::function<void(cudaStream_t)> launch;
  };
  const float* tab = table.ptr<float>();
  const std::vector<Kernel> kernels = {
      {"stream_copy", 2.0 * kCopyBytes, 0,
       [&](cudaStream_t s) {
         calibration::stream_copy(reinterpret_cast<const float4*>(tab),
                                  reinterpret_cast<float4*>(copy_out.ptr<float>()), kCopyBytes / 16,
                                  s);
       }},
      {"tensor_gemm", 3.0 * kGemm * kGemm * 2, 2.0 * kGemm * kGemm * kGemm,
       [&](cudaStream_t s) { linear(gc, ga, gb, LinearAlgo::cublas, s); }},
      {"fma_loop", double(fma_blocks) * 256 * 4, calibration::fma_loop_flops(fma_blocks, fma_iters),
       [&](cudaStream_t s) {
         calibration::fma_loop(fma_out.ptr<float>(), fma_blocks, fma_iters, 1.0f, s);
       }},
      {"one_block", double(size_t{4} << 20), double(size_t{1} << 20),
       [&](cudaStream_t s) {
         calibration::one_block_sum(tab, sums.ptr<float>(), size_t{1} << 20, s);
       }},
      {"random_gather", double(kGatherOut) * 8, 0,
       [&](cudaStream_t s) {
         calibration::random_gather(tab, kTableFloats, gather_out.ptr<float>(), kGatherOut, 7, s);
       }},
      {"smem_limited", double(size_t{64} << 20), double(size_t{16} << 20),
       [&](cudaStream_t s) {
         calibration::smem_limited_sum(tab, sums.ptr<float>(), size_t{16} << 20, sms * 8, smem, s);
       }},
  };

  // --once under ncu --profile-from-start off: the kernels, not the set-up's fills.
  if (o.once) DAY18_CUDA_CHECK(cudaProfilerStart());
  DAY18_NVTX_RANGE("calibrate");
  std::vector<Result> results;
  for (const Kernel& k : kernels) {
    if (!wanted(k.key)) continue;
    ::day18::NvtxRange range{k.key.c_str()};
    if (o.once) {
      k.launch(stream);
      stream.synchronize();
      std::fprintf(stderr, "calibrate: %s launched once\n", k.key.c_str());
      continue;
    }
    TimingOptions t;
    t.stream = stream;
    t.repeats = o.repeats;
    const Stats ms = time_gpu(k.launch, t);
    results.push_back({k.key, ms.median, k.bytes, k.flops});
  }
  if (o.once) {
    DAY18_CUDA_CHECK(cudaProfilerStop());
    return 0;
  }

  std::printf("%-14s %10s %10s %10s  %s\n", "kernel", "median us", "GB/s", "TFLOP/s",
              "expected verdict");
  double copy_gbps = 0, tensor_tflops = 0, fma_tflops = 0;
  nlohmann::json ks = nlohmann::json::array();
  for (const Result& r : results) {
    const double s = r.ms * 1e-3;
    const double gbps = r.bytes / s / 1e9, tflops = r.flops / s / 1e12;
    std::string expect;
    for (const auto& c : calibration::calibration_kernels())
      if (c.key == r.key) expect = c.expect;
    std::printf("%-14s %10.1f %10.0f %10.2f  %s\n", r.key.c_str(), r.ms * 1e3, gbps, tflops,
                expect.c_str());
    if (r.key == "stream_copy") copy_gbps = gbps;
    if (r.key == "tensor_gemm") tensor_tflops = tflops;
    if (r.key == "fma_loop") fma_tflops = tflops;
    ks.push_back({{"key", r.key},
                  {"median_us", r.ms * 1e3},
                  {"bytes", r.bytes},
                  {"flops", r.flops},
                  {"gbps", gbps},
                  {"tflops", tflops},
                  {"expect", expect}});
  }
  const double p_gbps = peak_d2d_bandwidth() / 1e9;
  std::printf(
      "\nroof of this GPU: P = %.0f GB/s (D2D copy, read + write; the stream-copy kernel: "
      "%.0f), tensor cores %.0f TFLOP/s (bf16 GEMM), FMA pipe %.1f TFLOP/s (fp32)\n",
      p_gbps, copy_gbps, tensor_tflops, fma_tflops);
  if (!o.json.empty()) {
    cudaDeviceProp prop{};
    int dev = 0;
    DAY18_CUDA_CHECK(cudaGetDevice(&dev));
    DAY18_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    const nlohmann::json j = {
        {"about", "day18 calibrate: the roof measured on this GPU (classify/analyze --roof)"},
        {"gpu", prop.name},
        {"sm_count", sms},
        {"driver", driver},
        {"cuda_runtime", runtime},
        {"commit", git_commit()},
        {"p_gbps", p_gbps},
        {"stream_copy_gbps", copy_gbps},
        {"peak_tensor_tflops", tensor_tflops},
        {"peak_fma_tflops", fma_tflops},
        {"kernels", ks}};
    write_file_atomically(o.json, "--json", [&](std::ostream& out) { out << j.dump(1) << "\n"; });
    std::printf("wrote %s\n", o.json.c_str());
  }
  return 0;
}

}  // namespace

Runner add_calibrate_command(CLI::App& app) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* sub = app.add_subcommand(
      "calibrate",
      "Kernels whose bottleneck is known by construction (streaming copy, cuBLAS "
      "GEMM, FMA loop, one-block grid, random gather, shared-memory-limited): run "
      "once for ncu, or timed for this GPU's roof");
  sub->add_flag("--list", o->list, "List the kernels and the verdict each must get");
  sub->add_flag("--once", o->once, "Launch each kernel exactly once, untimed (under ncu)");
  sub->add_option("--json", o->json,
                  "Write the measured roof (P, tensor and FMA peaks) for classify/analyze --roof");
  sub->add_option("--repeats", o->repeats, "Timed runs per kernel (median)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  sub->add_option("--only", o->only,
                  "Run only these kernels (keys of --list), e.g. --only fma_loop");
  auto* step = sub->add_flag("--decode-step", o->decode_step,
                             "Run one decode step of the engine's model instead (NVTX range "
                             "\"decode_step\"): what ncu profiles for `day18 analyze`");
  sub->add_option("--preset", o->preset, "With --decode-step: the model (random weights)")
      ->check(CLI::IsMember(ModelConfig::preset_names()))
      ->capture_default_str()
      ->needs(step);
  sub->add_option("--batch", o->batch, "With --decode-step: sequences, one new token each")
      ->check(CLI::Range(int64_t{1}, int64_t{256}))
      ->capture_default_str()
      ->needs(step);
  sub->add_option("--context", o->context, "With --decode-step: context length of each sequence")
      ->check(CLI::Range(int64_t{1}, int64_t{131072}))
      ->capture_default_str()
      ->needs(step);
  sub->add_option("--dtype", o->dtype, "With --decode-step: fp32, fp16 or bf16")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}))
      ->capture_default_str()
      ->needs(step);
  return [o] { return run_calibrate(*o); };
}

}  // namespace day18::cli
