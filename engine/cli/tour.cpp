// `day18 tour`: the README's main job. A guided run of ONE inference step of the engine, stage
// by stage (model and memory, schedule, prepare inputs, H2D, kernels, sampling, D2H, process
// outputs, the overlap, a preemption, CUDA graphs), each with a short explanation and the numbers
// measured right then by LLMEngine. GPU: llama-1b fp16 with random weights; no GPU: the same
// narrative on the CPU backend (tiny model). docs/tour.md explains each stage.
// `day18 tour --kernels`: the kernel tour. Runs every Day 18 kernel on a realistic shape, checks
// the CUDA result against the CPU oracle, and on a GPU reports time and the share of the
// bandwidth P measured by the probe in this same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/cli/commands.h"
#include "engine/cli/flags.h"
#include "engine/core/build_info.h"
#include "engine/ops/registry.h"
#include "engine/profiling/bandwidth.h"
#include "engine/profiling/timing.h"
#include "engine/runtime/engine.h"

namespace day18::cli {
namespace {

struct TourOptions {
  std::string device = "auto";
  std::vector<std::string> ops;
  uint64_t seed = 18;
  int reps = 20;
  bool kernels = false;
  std::string preset;  // pipeline tour: default llama-1b on a GPU, tiny on the CPU
};

std::string case_summary(const OpDef& op, const TensorStore& io) {
  if (op.inputs.empty()) return "";
  const Tensor& t = io.get(op.inputs.front().name);
  return op.inputs.front().name + shape_string(t.sizes());
}

// The median (stats.h) of `v`, 0 when there is nothing to show.
double median_or_zero(std::vector<double> v) {
  return v.empty() ? 0 : summarize(std::move(v)).median;
}

int run_kernel_tour(const TourOptions& o) {
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
    std::printf("No GPU here (%s).\n",
                o.device == "cpu" ? "--device cpu" : cuda_unavailable_reason().c_str());
    std::printf(
        "Running the CPU backend: the same ops, computed by the plain C++ oracles that the\n"
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

      // One run, no warm-up: its result is the oracle the GPU result is checked against.
      const double cpu_ms =
          time_cpu([&] { run_op(op, host, attrs); }, /*warmup=*/0, /*repeats=*/1).median;

      // On the CPU backend the op IS the oracle: nothing here to compare it with (the golden
      // tests compare the oracles with PyTorch's outputs). Said as such, not as a check passed.
      std::string check = "is oracle";
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
        // nothing is allocated inside the timed region); 2 warm-ups, then o.reps runs with the
        // L2 flushed before each (time_gpu), median reported. Ops
        // that update in place see their own previous output as input, which costs the same.
        if (!op.tour_timed) {
          std::printf("%-20s %-5s %-28s %-8s %10s  (timed by day18_bench: BM_%s)\n",
                      op.name.c_str(),
                      dt == DType::f32   ? "fp32"
                      : dt == DType::f16 ? "fp16"
                                         : "bf16",
                      case_summary(op, inputs).c_str(), check.c_str(), "-", op.name.c_str());
          continue;
        }
        TimingOptions t;
        t.warmup = 2;
        t.repeats = o.reps;
        t.stream = s;
        auto run = [&](cudaStream_t st) {
          OpContext ctx{dev, attrs, st};
          op.run(ctx);
        };
        gpu_us = time_gpu(run, t).median * 1e3;
        if (op.bytes_moved) gbps = op.bytes_moved(inputs, attrs) / (gpu_us * 1e-6) / 1e9;
      }
      std::printf("%-20s %-5s %-28s %-8s", op.name.c_str(),
                  dt == DType::f32   ? "fp32"
                  : dt == DType::f16 ? "fp16"
                                     : "bf16",
                  case_summary(op, inputs).c_str(), check.c_str());
      if (gpu)
        std::printf(" %10.1f %10.0f %7.1f%%", gpu_us, gbps,
                    gbps > 0 ? 100.0 * gbps * 1e9 / P : 0.0);
      else
        std::printf(" %10s %10s %8s", "", "", "");
      std::printf(" %10.1f\n", cpu_ms);
    }
  }
  std::printf("\n%s\n", failures ? "Some GPU results did not match the CPU oracle (see above)."
                        : gpu    ? "Every GPU result matched its CPU oracle."
                                 : "Every op ran on the CPU backend. Nothing was checked here: on "
                                   "this backend each op\nis its own oracle (\"is oracle\"). The "
                                   "oracles themselves are checked against PyTorch's\noutputs "
                                   "(reference/outputs) by the golden tests: ctest -R Golden.");
  return failures ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// The pipeline tour.

void section(int n, const char* title) {
  std::printf("\n[%d] %s\n", n, title);
  for (int i = 0, len = static_cast<int>(std::strlen(title)) + 4; i < len; ++i) std::printf("-");
  std::printf("\n");
}

struct Workload {
  int64_t requests, prompt_len, output_len;
};

// Adds `w` (greedy, fixed lengths, seeded prompts) and returns the request ids.
std::vector<int64_t> add_workload(LLMEngine& e, const Workload& w, uint64_t seed) {
  Rng rng(seed);
  const int64_t vocab = e.model().config().vocab_size;
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < w.requests; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(w.prompt_len));
    for (auto& t : p) t = static_cast<int32_t>(rng.randint(0, vocab - 1));
    SamplingParams sp;
    sp.temperature = 0.f;
    sp.max_tokens = static_cast<int32_t>(w.output_len);
    sp.ignore_eos = true;
    ids.push_back(e.add_request(std::move(p), sp));
  }
  return ids;
}

std::vector<std::vector<int32_t>> outputs_of(LLMEngine& e, const std::vector<int64_t>& ids) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t id : ids) out.push_back(e.scheduler().sequence(id).output);
  return out;
}

// Median of a field over decode-only records [from, to) with `num_seqs` sequences (0 = any).
template <class F>
double median_decode(const std::vector<StepRecord>& r, size_t from, size_t to, int64_t num_seqs,
                     bool graph_only, F field) {
  std::vector<double> v;
  for (size_t i = from; i < to && i < r.size(); ++i)
    if (r[i].num_prefills == 0 && (num_seqs == 0 || r[i].num_seqs == num_seqs) &&
        (!graph_only || r[i].gpu.graph))
      v.push_back(field(r[i]));
  return median_or_zero(std::move(v));
}

int run_pipeline_tour(const TourOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  bool gpu = false;
  if (o.device == "cuda") {
    DAY18_REQUIRE(cuda_available(), "tour: --device cuda but ", cuda_unavailable_reason());
    gpu = true;
  } else if (o.device == "auto") {
    gpu = cuda_available();
  }
  std::printf("Day 18 — one inference step, stage by stage\n");
  std::printf("============================================\n\n");
  std::printf("engine commit %s\n", git_commit());
  double P = 0;
  if (gpu) {
    cudaDeviceProp p{};
    DAY18_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    std::printf("GPU: %s (sm_%d%d, %d SMs, %.0f MB L2)\n", p.name, p.major, p.minor,
                p.multiProcessorCount, p.l2CacheSize / 1e6);
    P = peak_d2d_bandwidth();
    std::printf("Bandwidth probe (1 GiB device-to-device copy, CUDA events): P = %.0f GB/s.\n",
                P / 1e9);
  } else {
    std::printf(
        "No GPU here (%s): the CPU backend runs the same engine code synchronously.\n"
        "GPU-only parts are skipped and said so: the four streams and their events,\n"
        "the H2D/D2H copies, the overlap of step N+1's preparation with step N, and\n"
        "CUDA graphs. Timings below are CPU timings.\n",
        o.device == "cpu" ? "--device cpu" : cuda_unavailable_reason().c_str());
  }

  EngineConfig c;
  c.preset = !o.preset.empty() ? o.preset : gpu ? "llama-1b" : "tiny";
  const ModelConfig shape = ModelConfig::preset(c.preset);  // lists the known names if unknown
  if (!gpu && shape.num_parameters() > 100'000'000)
    std::printf(
        "\nNote: %s has %.2f B parameters; the CPU backend runs plain C++ loops (the oracles),\n"
        "about %.0f GFLOP per token: this tour will take many minutes. --preset tiny is the\n"
        "CPU-sized model.\n",
        c.preset.c_str(), shape.num_parameters() / 1e9, 2.0 * shape.num_parameters() / 1e9);
  c.device = gpu ? Device::cuda : Device::cpu;
  c.dtype = gpu ? DType::f16 : DType::f32;
  c.seed = o.seed;
  c.max_num_seqs = gpu ? 32 : 8;
  c.max_num_batched_tokens = gpu ? 2048 : 128;
  c.max_model_len = 1024;
  c.num_gpu_blocks = gpu ? 4096 : 512;
  c.num_cpu_blocks = 64;
  const Workload main_w = gpu ? Workload{32, 128, 32} : Workload{8, 32, 16};

  // [1] model and memory ------------------------------------------------------------------
  section(1, "The model and its memory");
  auto t_load = std::chrono::steady_clock::now();
  auto engine = std::make_unique<LLMEngine>(c);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  LLMEngine& e = *engine;
  const ModelConfig mc = e.model().config();  // a copy: the engine is freed in [10]
  const int64_t W = e.model().limits().max_blocks_per_seq();
  std::printf(
      "The engine holds three things in %s memory: the weights (read in full by every step),\n"
      "the paged KV cache (fixed-size blocks handed out by the block manager), and, in %s\n"
      "host memory, a swap pool that preempted sequences' blocks are copied to.\n",
      gpu ? "GPU" : "host", gpu ? "pinned" : "plain");
  std::printf("  model     %s, %s, random weights (seed %llu), built in %.1f s\n",
              mc.describe().c_str(), std::string(dtype_name(c.dtype)).c_str(),
              static_cast<unsigned long long>(o.seed), load_s);
  std::printf("  weights   %.3f GB\n", e.weight_bytes() / 1e9);
  std::printf(
      "  KV cache  %lld blocks x %lld tokens = %lld tokens, %.3f GB (%.0f KB per block, all "
      "layers, K+V)\n",
      static_cast<long long>(e.num_gpu_blocks()), static_cast<long long>(c.block_size),
      static_cast<long long>(e.num_gpu_blocks() * c.block_size), e.kv_cache_bytes() / 1e9,
      mc.kv_cache_bytes_per_block(c.dtype, c.block_size) / 1e3);
  std::printf("  swap pool %lld blocks, %.3f GB %s\n", static_cast<long long>(c.num_cpu_blocks),
              e.executor().swap_cache_bytes() / 1e9, gpu ? "pinned" : "host");

  // The main workload: everything below is measured on it.
  add_workload(e, main_w, o.seed + 1);
  e.run_until_done();
  const EngineMetrics m = e.metrics();
  const std::vector<StepRecord> recs = e.records();
  const size_t n_main = recs.size();
  std::printf(
      "\nWorkload: %lld requests, prompts of %lld tokens, %lld generated tokens each "
      "(greedy); %lld steps in %.2f s.\n",
      static_cast<long long>(main_w.requests), static_cast<long long>(main_w.prompt_len),
      static_cast<long long>(main_w.output_len), static_cast<long long>(m.steps), m.wall_s);
  // The first step (a prefill) and a typical full-batch decode step (the median one).
  const StepRecord& pre = recs.front();
  std::vector<size_t> dec_idx;
  for (size_t i = 0; i < n_main; ++i)
    if (recs[i].num_prefills == 0 && recs[i].num_seqs == main_w.requests) dec_idx.push_back(i);
  std::sort(dec_idx.begin(), dec_idx.end(),
            [&](size_t a, size_t b) { return recs[a].gpu.compute_ms < recs[b].gpu.compute_ms; });
  DAY18_REQUIRE(!dec_idx.empty(), "tour: no full-batch decode step (workload too small)");
  const StepRecord& dec = recs[dec_idx[dec_idx.size() / 2]];
  auto layout_of = [&](const StepRecord& r) {
    return InputLayout::make(r.padded_to > 0 ? r.padded_to : r.num_tokens,
                             std::max<int64_t>(r.padded_to > 0 ? r.padded_to : r.num_seqs, 1), W);
  };
  std::printf(
      "Below: step %lld (the first, a prefill) and step %lld (the median full-batch "
      "decode step).\n",
      static_cast<long long>(pre.step), static_cast<long long>(dec.step));

  // [2] schedule ----------------------------------------------------------------------------
  section(2, "Schedule (CPU)");
  std::printf(
      "The scheduler decides which sequences compute how many tokens this step, under a token\n"
      "budget (max_num_batched_tokens) and max_num_seqs, and allocates their KV blocks. Prompts\n"
      "are prefilled (many tokens per sequence, chunked if the budget runs out), then every\n"
      "running sequence decodes one token per step. docs/scheduler.md has the policy.\n");
  std::printf(
      "  step %-4lld %lld prefills, %lld decodes, %lld tokens of a budget of %lld; "
      "scheduled in %.3f ms\n",
      static_cast<long long>(pre.step), static_cast<long long>(pre.num_prefills),
      static_cast<long long>(pre.num_seqs - pre.num_prefills),
      static_cast<long long>(pre.num_tokens), static_cast<long long>(c.max_num_batched_tokens),
      pre.scheduler_ms);
  std::printf(
      "  step %-4lld %lld prefills, %lld decodes, %lld tokens of a budget of %lld; "
      "scheduled in %.3f ms\n",
      static_cast<long long>(dec.step), static_cast<long long>(dec.num_prefills),
      static_cast<long long>(dec.num_seqs - dec.num_prefills),
      static_cast<long long>(dec.num_tokens), static_cast<long long>(c.max_num_batched_tokens),
      dec.scheduler_ms);

  // [3] prepare inputs ------------------------------------------------------------------------
  section(3, "Prepare inputs in pinned staging (CPU)");
  const InputLayout lp = layout_of(pre), ld = layout_of(dec);
  const size_t cap = InputLayout::make(c.max_num_batched_tokens, c.max_num_seqs, W).bytes;
  std::printf(
      "The input batch writes everything the step reads (token ids, positions, slot mapping,\n"
      "block tables, context lengths, sampling parameters) into ONE packed buffer in %s\n"
      "memory, so one copy moves it all. There are two such buffers (double buffering, parity =\n"
      "step %% 2): the CPU fills step N+1's while the copy engine may still read step N's.\n",
      gpu ? "pinned (page-locked)" : "host");
  std::printf(
      "  step %-4lld packed buffer %zu bytes (%lld tokens, %lld rows x %lld block-table "
      "entries), filled in %.3f ms\n",
      static_cast<long long>(pre.step), lp.bytes, static_cast<long long>(lp.num_tokens),
      static_cast<long long>(lp.num_rows), static_cast<long long>(W), pre.prepare_ms);
  std::printf("  step %-4lld packed buffer %zu bytes, filled in %.3f ms\n",
              static_cast<long long>(dec.step), ld.bytes, dec.prepare_ms);
  std::printf("  staging: 2 x %zu bytes (sized for the worst step)\n", cap);

  // [4] H2D -------------------------------------------------------------------------------------
  section(4, "H2D on the h2d stream");
  if (gpu) {
    std::printf(
        "One cudaMemcpyAsync on the h2d stream copies the packed buffer to the device buffer of\n"
        "the same parity, then records an event; the compute stream waits on that event on the\n"
        "GPU (no CPU wait). Small copies are latency-bound: a few microseconds whatever the "
        "size.\n");
    for (const StepRecord* r : {&pre, &dec}) {
      const size_t b = layout_of(*r).bytes;
      std::printf("  step %-4lld %zu bytes in %.1f us (%.2f GB/s)\n",
                  static_cast<long long>(r->step), b, r->gpu.h2d_ms * 1e3,
                  r->gpu.h2d_ms > 0 ? b / (r->gpu.h2d_ms * 1e-3) / 1e9 : 0.0);
    }
  } else {
    std::printf("  skipped on the CPU backend: the model reads the staging buffer directly.\n");
  }

  // [5] kernels -------------------------------------------------------------------------------
  section(5, gpu ? "Kernels on the compute stream" : "The model's forward pass (CPU)");
  std::printf(
      "The forward pass: embedding, then per layer Norm (RMSNorm) -> Attention (QKV GEMM,\n"
      "rotary_and_cache: rotary on q and k, the new K/V into their cache slots, q packed for\n"
      "paged attention; paged attention, O GEMM) -> Norm -> MLP (gate_up GEMM, SiLU-and-mul +\n"
      "down GEMM), then the final Norm and the LM head. For ONE decode token on CUDA each norm\n"
      "runs inside the GEMV after it and SiLU-and-mul inside the down GEMV: 6 kernels a layer.\n"
      "In Nsight Systems these are the NVTX ranges ModelExecutor > Attention / MLP / Norm.\n"
      "docs/model.md and docs/ops.md describe each op. A decode step reads every weight once,\n"
      "so its time cannot go below weight bytes / bandwidth.\n");
  std::printf("  step %-4lld (prefill, %lld tokens) forward %.3f ms\n",
              static_cast<long long>(pre.step), static_cast<long long>(pre.num_tokens),
              pre.gpu.model_ms);
  std::printf("  step %-4lld (decode, batch %lld)  forward %.3f ms\n",
              static_cast<long long>(dec.step), static_cast<long long>(dec.num_seqs),
              dec.gpu.model_ms);
  if (gpu) {
    const double floor_ms = e.weight_bytes() / P * 1e3;
    std::printf(
        "  weight-read floor: %.3f GB / P %.0f GB/s = %.3f ms; this decode step is %.2fx "
        "the floor (%.0f%% of P on the weights alone)\n",
        e.weight_bytes() / 1e9, P / 1e9, floor_ms, dec.gpu.model_ms / floor_ms,
        100 * floor_ms / dec.gpu.model_ms);
  }

  // [6] sampling ------------------------------------------------------------------------------
  section(6, "Sampling");
  std::printf(
      "The LM head's logits of each sequence's last token become one token: greedy here\n"
      "(temperature 0); with temperature/top-k/top-p a seeded sampler. Same stream, right after\n"
      "the forward pass, one sampled token per sequence.\n");
  std::printf("  step %-4lld sampling %.3f ms for %lld rows of %lld logits\n",
              static_cast<long long>(dec.step), dec.gpu.sampling_ms,
              static_cast<long long>(dec.num_seqs), static_cast<long long>(mc.vocab_size));

  // [7] D2H -----------------------------------------------------------------------------------
  section(7, "D2H of the sampled tokens");
  if (gpu) {
    std::printf(
        "The d2h stream waits on the compute stream's event and copies the sampled tokens (4\n"
        "bytes each) to pinned host memory, then records the one event the CPU waits on.\n");
    std::printf("  step %-4lld %lld bytes in %.1f us; the CPU waited %.3f ms on that event\n",
                static_cast<long long>(dec.step), static_cast<long long>(dec.num_seqs * 4),
                dec.gpu.d2h_ms * 1e3, dec.wait_ms);
  } else {
    std::printf("  skipped on the CPU backend: the sampled tokens are already in host memory.\n");
  }

  // [8] process outputs -----------------------------------------------------------------------
  section(8, "Process outputs (CPU)");
  std::printf(
      "The scheduler appends each sampled token to its sequence, stops sequences at max_tokens\n"
      "or EOS, and frees their KV blocks (deferred if the next step, already submitted, still\n"
      "uses them).\n");
  std::printf("  step %-4lld processed in %.3f ms; %lld tokens generated in all\n",
              static_cast<long long>(dec.step), dec.process_ms,
              static_cast<long long>(m.generated_tokens));

  // [9] overlap -------------------------------------------------------------------------------
  section(9, "The overlap");
  if (gpu) {
    int64_t overlapped = 0, pairs = 0;
    std::vector<double> gaps;
    for (size_t i = 0; i + 1 < n_main; ++i) {
      ++pairs;
      if (recs[i + 1].h2d_start < recs[i].compute_end) ++overlapped;
      gaps.push_back(std::max(0.0, recs[i + 1].compute_start - recs[i].compute_end));
    }
    std::printf(
        "With async scheduling the CPU schedules and prepares step N+1 and enqueues its H2D while\n"
        "the GPU still computes step N; N+1's decode tokens are fed on the device from N's\n"
        "samples. So the GPU goes from one step's kernels to the next with almost no idle time.\n");
    std::printf("  H2D of step N+1 began before compute of step N ended: %lld of %lld steps\n",
                static_cast<long long>(overlapped), static_cast<long long>(pairs));
    std::printf("  idle gap between steps' compute: median %.1f us\n", median_or_zero(gaps) * 1e3);
    std::printf(
        "  GPU busy between decode steps: %.1f%% (steady state, %lld step pairs); over the "
        "whole run, prefill included: %.1f%%\n",
        100 * m.gpu_busy_fraction, static_cast<long long>(m.decode_steady_pairs),
        100 * m.gpu_busy_fraction_all);
  } else {
    std::printf(
        "  skipped on the CPU backend: one thread does everything in order, so nothing\n"
        "  overlaps (on a GPU, step N+1 is prepared while step N computes).\n");
  }

  // [10] preemption ---------------------------------------------------------------------------
  section(10, "A preemption: swap-out and swap-in");
  const Workload burst{8, 64, 96};
  const int64_t need = (burst.prompt_len + burst.output_len + c.block_size - 1) / c.block_size;
  EngineConfig small = c;
  small.max_num_seqs = burst.requests;
  small.max_model_len = 256;  // the pool must hold one sequence of max_model_len
  small.num_gpu_blocks = need * burst.requests * 6 / 10;
  EngineConfig big = small;
  big.num_gpu_blocks = need * burst.requests * 2;
  std::printf(
      "A burst of %lld requests (%lld + %lld tokens: %lld blocks each) on a KV pool of only %lld\n"
      "blocks. When a running sequence needs a block and none is free, the scheduler preempts\n"
      "the newest one: its blocks are copied to the swap pool (swap_blocks on the cache stream)\n"
      "and back when there is room. Greedy outputs must equal a run without preemption.\n",
      static_cast<long long>(burst.requests), static_cast<long long>(burst.prompt_len),
      static_cast<long long>(burst.output_len), static_cast<long long>(need),
      static_cast<long long>(small.num_gpu_blocks));
  engine.reset();
  std::vector<std::vector<int32_t>> ref_out, pre_out;
  {
    LLMEngine ref(big);
    const auto ids = add_workload(ref, burst, o.seed + 2);
    ref.run_until_done();
    ref_out = outputs_of(ref, ids);
    std::printf("  without preemption (%lld blocks): %lld preemptions, %lld steps\n",
                static_cast<long long>(big.num_gpu_blocks),
                static_cast<long long>(ref.scheduler().stats().num_preemptions),
                static_cast<long long>(ref.metrics().steps));
  }
  {
    LLMEngine sm(small);
    const auto ids = add_workload(sm, burst, o.seed + 2);
    sm.run_until_done();
    pre_out = outputs_of(sm, ids);
    const SchedulerStats& st = sm.scheduler().stats();
    const double blk = static_cast<double>(mc.kv_cache_bytes_per_block(c.dtype, c.block_size));
    std::printf(
        "  with preemption (%lld blocks): %lld preemptions (%lld swap-outs, %lld "
        "recomputes), %lld steps\n",
        static_cast<long long>(small.num_gpu_blocks), static_cast<long long>(st.num_preemptions),
        static_cast<long long>(st.num_swap_outs), static_cast<long long>(st.num_recomputes),
        static_cast<long long>(sm.metrics().steps));
    std::printf(
        "  swapped out %lld blocks (%.2f MB), swapped in %lld blocks (%.2f MB)\n",
        static_cast<long long>(st.num_blocks_swapped_out), st.num_blocks_swapped_out * blk / 1e6,
        static_cast<long long>(st.num_blocks_swapped_in), st.num_blocks_swapped_in * blk / 1e6);
  }
  int64_t same = 0;
  for (size_t i = 0; i < ref_out.size(); ++i) same += ref_out[i] == pre_out[i] ? 1 : 0;
  std::printf("  outputs equal to the run without preemption: %lld of %zu sequences%s\n",
              static_cast<long long>(same), ref_out.size(),
              same == static_cast<int64_t>(ref_out.size())
                  ? ""
                  : " (different batch compositions change rounding; greedy ties can flip)");

  // [11] CUDA graphs --------------------------------------------------------------------------
  section(11, "CUDA graphs: replay vs eager decode step");
  if (gpu) {
    std::printf(
        "A decode step launches hundreds of small kernels; a CUDA graph captures them once per\n"
        "(batch bucket, context bucket) and replays them with one launch, so the CPU's launch\n"
        "overhead disappears. Capture happens before the step's timing event, so it is not in\n"
        "these times.\n");
    std::printf("  %-6s %14s %14s %8s\n", "batch", "eager ms", "graph ms", "speedup");
    std::vector<double> eager_ms, graph_ms;
    for (int mode = 0; mode < 2; ++mode) {
      EngineConfig gc = c;
      gc.num_gpu_blocks = 1024;
      gc.cuda_graphs = mode == 1;
      gc.pad_decode = true;  // the same kernels in both modes
      LLMEngine ge(gc);
      std::vector<double>* dst = mode == 0 ? &eager_ms : &graph_ms;
      for (int64_t bs : {int64_t{1}, int64_t{32}}) {
        const size_t from = ge.records().size();
        add_workload(ge, Workload{bs, 128, 32}, o.seed + 3);
        ge.run_until_done();
        dst->push_back(median_decode(ge.records(), from, ge.records().size(), bs, mode == 1,
                                     [](const StepRecord& r) { return r.gpu.compute_ms; }));
      }
      if (mode == 1)
        for (size_t i = 0; i < 2; ++i)
          std::printf("  %-6d %14.3f %14.3f %7.2fx\n", i == 0 ? 1 : 32, eager_ms[i], graph_ms[i],
                      graph_ms[i] > 0 ? eager_ms[i] / graph_ms[i] : 0.0);
    }
  } else {
    std::printf("  skipped on the CPU backend (CUDA graphs are a GPU feature).\n");
  }

  // [12] breakdown ----------------------------------------------------------------------------
  section(12, "Where the time went (the main workload)");
  const double cpu_ms = m.scheduler_ms + m.prepare_ms + m.process_ms;
  const double total = cpu_ms + m.model_ms + m.sampling_ms;
  auto pct = [&](double v) { return total > 0 ? 100.0 * v / total : 0.0; };
  std::printf("  %-24s %10s %7s   %s\n", "stage", "ms", "share", "seed's ideal profile");
  std::printf("  %-24s %10.1f %6.1f%%   2-5%%\n", "Scheduler (CPU)", m.scheduler_ms,
              pct(m.scheduler_ms));
  std::printf("  %-24s %10.1f %6.1f%%\n", "PrepareInputs (CPU)", m.prepare_ms, pct(m.prepare_ms));
  std::printf("  %-24s %10.1f %6.1f%%   85-90%%\n",
              gpu ? "ModelExecutor (GPU)" : "ModelExecutor (CPU)", m.model_ms, pct(m.model_ms));
  std::printf("  %-24s %10.1f %6.1f%%   3-5%%\n", gpu ? "Sampling (GPU)" : "Sampling (CPU)",
              m.sampling_ms, pct(m.sampling_ms));
  std::printf("  %-24s %10.1f %6.1f%%\n", "ProcessOutputs (CPU)", m.process_ms, pct(m.process_ms));
  double prefill_ms = 0;
  for (size_t i = 0; i < n_main; ++i)
    if (recs[i].num_prefills > 0) prefill_ms += recs[i].gpu.model_ms;
  std::printf("  (of the ModelExecutor time, %.1f ms is prefill steps: %.1f%% of all work)\n",
              prefill_ms, pct(prefill_ms));
  std::printf("Interpretation: ");
  if (gpu)
    std::printf(
        "the shares are of the summed work, not of wall time: with async scheduling the\n"
        "CPU stages (%.1f%% together) run while the GPU computes, so they cost wall time only\n"
        "where the GPU would wait (GPU busy %.1f%%). The model executor dominates as the seed's\n"
        "profile says; how close it is to 85-90%% depends on the batch (small decode batches are\n"
        "bound by reading the weights, so the CPU share grows as the GPU part shrinks) and on\n"
        "random weights (sampling cost does not depend on them). Compare your GPU with\n"
        "reference/results/h100/pipeline_tour.txt.\n",
        pct(cpu_ms), 100 * m.gpu_busy_fraction);
  else
    std::printf(
        "on the CPU backend the model executor takes even more than the seed's\n"
        "85-90%%: its ops are plain C++ loops (the oracles), far slower than GPU kernels, while\n"
        "the CPU bookkeeping (%.1f%%) is the same code as on a GPU. On a GPU the forward pass is\n"
        "orders of magnitude faster, so the CPU stages' share grows: run this on a GPU to see "
        "it.\n",
        pct(cpu_ms));
  std::printf(
      "\nThe kernels one by one (checked against the CPU oracle, timed vs P): "
      "day18 tour --kernels\n");
  std::printf("docs/tour.md explains each stage. Tour done in %.1f s.\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  return 0;
}

}  // namespace

Runner add_tour_command(CLI::App& app) {
  auto o = std::make_shared<TourOptions>();
  CLI::App* sub = app.add_subcommand(
      "tour", "Guided run of one inference step, stage by stage (--kernels: the kernel tour)");
  add_device_flag(sub, o->device);
  sub->add_flag("--kernels", o->kernels,
                "The kernel tour: every op checked against the CPU oracle, timed vs P");
  add_preset_flag(sub, o->preset,
                  "Pipeline tour model (default: llama-1b on a GPU, tiny on the CPU)");
  // The ops the kernel tour can run (those with a tour case); anything else is a typo.
  std::vector<std::string> tour_ops;
  for (const OpDef& op : OpRegistry::instance().all())
    if (op.make_case) tour_ops.push_back(op.name);
  sub->add_option("--ops", o->ops,
                  "Kernel tour: only these ops, comma-separated or repeated (default: all; see "
                  "day18 kernel --list)")
      ->delimiter(',')
      ->check(CLI::IsMember(tour_ops));
  add_seed_flag(sub, o->seed, "Seed of the random inputs");
  sub->add_option("--reps", o->reps, "Kernel tour: timed repetitions per op on the GPU (median)")
      ->check(integer_in(1, 100000));
  return
      [o] { return o->kernels || !o->ops.empty() ? run_kernel_tour(*o) : run_pipeline_tour(*o); };
}

}  // namespace day18::cli
