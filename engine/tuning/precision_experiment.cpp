// `day18 tune precision`: fp32 / fp16 / bf16, per kernel (RMSNorm, PagedAttention, the GEMM,
// SiLU-and-mul: each dtype checked against the CPU oracle on its own rounded inputs, then timed)
// and end to end on llama-1b (random weights): decode-step time and tokens/s, memory, and,
// teacher-forced on the same tokens, the largest logit difference and the greedy-token
// agreement against fp32.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/compare.h"
#include "engine/core/error.h"
#include "engine/cpu/activation.h"
#include "engine/cpu/linear.h"
#include "engine/kernels/paged_attention.h"
#include "engine/ops/activation.h"
#include "engine/ops/layernorm.h"
#include "engine/ops/linear.h"
#include "engine/profiling/cost_model.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/model_kernels.h"
#include "engine/tuning/decide.h"
#include "engine/tuning/decode_step.h"
#include "engine/tuning/gpu_support.h"
#include "engine/tuning/kernel_inputs.h"

namespace day18::tuning {
namespace {

constexpr DType kDtypes[] = {DType::f32, DType::f16, DType::bf16};

std::string dname(DType d) {
  return d == DType::f32 ? "fp32" : d == DType::f16 ? "fp16" : "bf16";
}

// Tensors that must outlive the candidates.
struct Keep {
  std::vector<std::shared_ptr<void>> all;
  template <typename T>
  T* add(T&& v) {
    auto p = std::make_shared<T>(std::move(v));
    all.push_back(p);
    return p.get();
  }
};

Candidate dtype_candidate(DType d) {
  Candidate c;
  c.config = {{"dtype", dname(d)}};
  c.label = dname(d);
  return c;
}

}  // namespace

Experiment run_precision(const RunOptions& o) {
  require_gpu_for("precision");
  Experiment e;
  e.experiment = "precision";
  e.provenance = make_provenance(o.command);
  std::fprintf(stderr, "tune precision: measuring the roof (P, tensor and FMA peaks)...\n");
  e.roof = resolve_roof(o.roof_file);
  e.hypothesis =
      "The decode kernels are memory-bound, so halving the bytes per element (fp32 -> fp16/bf16) "
      "should nearly halve their time and double tokens/s, while fp16 keeps 3 more mantissa bits "
      "than bf16 and so a smaller logit difference to fp32 at the same speed.";
  e.parameters = {"dtype"};
  Stream stream;
  const bool q = o.quick;
  const size_t kernels = 4, total = kernels * 3 + 3;
  SweepOptions so = SweepOptions::gpu(stream);
  so.point_budget_s = point_budget(o, total);
  Progress progress{"precision", 0, total};
  so.progress = [&](size_t, size_t, const std::string& label) { progress.step(label); };
  Keep keep;

  auto finish = [&](Group& g, const std::string& kernel, bool tensor_op) {
    for (Point& p : g.points) finish_point(p, e.roof, kernel, tensor_op);
    decide_group(g);
    for (const Point& p : g.points)
      if (!p.correct)
        e.notes.push_back(g.name + ": " + p.label + " is NOT correct: " + p.check_report);
    e.groups.push_back(std::move(g));
  };

  // ---- per kernel ----
  {
    const int64_t T = q ? 64 : 256, HID = 4096;
    std::vector<Candidate> cs;
    for (DType d : kDtypes) {
      NormInputs* n = keep.add(make_norm_inputs(T, HID, d, o.seed));
      Candidate c = dtype_candidate(d);
      const OpCost cost = cost::rms_norm(T, HID, d);
      c.bytes = cost.bytes;
      c.flops = cost.flops;
      c.prepare = [n](cudaStream_t s) { poison(n->out, s); };
      c.launch = [n](cudaStream_t s) { rms_norm(n->out, n->input0, n->weight, n->eps, s); };
      const Tolerance tol = default_tolerance(d);
      c.check = [n, tol] { return compare_output(n->out, n->expected_out, tol); };
      cs.push_back(std::move(c));
    }
    Group g;
    g.name = detail::concat("rms_norm by dtype, [", T, ", ", HID, "]");
    g.kernel = "rms_norm";
    g.shape = {{"tokens", T}, {"hidden", HID}};
    g.points = run_sweep(cs, so);
    finish(g, "rms_norm_kernel", false);
  }
  {
    const int64_t B = q ? 8 : 16, ctx = q ? 512 : 1024;
    std::vector<Candidate> cs;
    for (DType d : kDtypes) {
      std::fprintf(stderr, "tune precision: attention inputs and oracle, %s\n", dname(d).c_str());
      AttentionInputs* a = keep.add(make_attention_inputs(B, ctx, 32, 8, 128, 16, d, o.seed));
      Candidate c = dtype_candidate(d);
      const OpCost cost = cost::paged_attention(B, 32, 8, 128, B * ctx, d);
      c.bytes = cost.bytes;
      c.flops = cost.flops;
      c.prepare = [a](cudaStream_t s) { poison(a->out, s); };
      c.launch = [a](cudaStream_t s) {
        cuda::paged_attention_v1_configured(a->out, a->query, a->key_cache, a->value_cache,
                                            a->block_tables, a->seq_idx, a->context_lens, a->scale,
                                            static_cast<int>(a->ctx), 128, 0, s);
      };
      const Tolerance tol = default_tolerance(d);
      c.check = [a, tol] { return compare_output(a->out, a->expected, tol); };
      cs.push_back(std::move(c));
    }
    Group g;
    g.name =
        detail::concat("paged_attention v1 by dtype, B=", B, " ctx ", ctx, ", 32/8 heads x 128");
    g.kernel = "paged_attention";
    g.shape = {
        {"batch", B}, {"context", ctx}, {"num_heads", 32}, {"num_kv_heads", 8}, {"head_size", 128}};
    g.points = run_sweep(cs, so);
    finish(g, "paged_attention_kernel", false);
  }
  {
    const int64_t M = q ? 16 : 64, N = 4096, K = 4096;
    std::vector<Candidate> cs;
    for (DType d : kDtypes) {
      struct Gemm {
        OwnedTensor x, w, out, expected;
      };
      Gemm* gm = keep.add(
          Gemm{OwnedTensor({M, K}, d, Storage::device), OwnedTensor({N, K}, d, Storage::device),
               OwnedTensor({M, N}, d, Storage::device), OwnedTensor({M, N}, d, Storage::host)});
      fill_random_normal(gm->x, o.seed, 21, 0.0, 1.0);
      fill_random_normal(gm->w, o.seed, 22, 0.0, 0.02);
      DAY18_CUDA_CHECK(cudaDeviceSynchronize());
      cpu::linear(gm->expected, gm->x.to(Storage::host), gm->w.to(Storage::host));
      Candidate c = dtype_candidate(d);
      const OpCost cost = cost::linear(M, N, K, d);
      c.bytes = cost.bytes;
      c.flops = cost.flops;
      c.prepare = [gm](cudaStream_t s) { poison(gm->out, s); };
      c.launch = [gm](cudaStream_t s) { linear(gm->out, gm->x, gm->w, LinearAlgo::cublas, s); };
      const Tolerance tol = scaled(default_tolerance(d), 2.0);  // K = 4096 sums
      c.check = [gm, tol] { return compare_output(gm->out, gm->expected, tol); };
      cs.push_back(std::move(c));
    }
    Group g;
    g.name = detail::concat("linear (cuBLAS) by dtype, M=", M, " N=", N, " K=", K);
    g.kernel = "linear";
    g.shape = {{"M", M}, {"N", N}, {"K", K}};
    g.points = run_sweep(cs, so);
    finish(g, "linear", true);
  }
  {
    const int64_t T = q ? 64 : 256, I = 14336;
    std::vector<Candidate> cs;
    for (DType d : kDtypes) {
      struct Act {
        OwnedTensor in, out, expected;
      };
      Act* a = keep.add(Act{OwnedTensor({T, 2 * I}, d, Storage::device),
                            OwnedTensor({T, I}, d, Storage::device),
                            OwnedTensor({T, I}, d, Storage::host)});
      fill_random_normal(a->in, o.seed, 31, 0.0, 2.0);
      DAY18_CUDA_CHECK(cudaDeviceSynchronize());
      cpu::silu_and_mul(a->expected, a->in.to(Storage::host));
      Candidate c = dtype_candidate(d);
      const OpCost cost = cost::silu_and_mul(T, I, d);
      c.bytes = cost.bytes;
      c.flops = cost.flops;
      c.prepare = [a](cudaStream_t s) { poison(a->out, s); };
      c.launch = [a](cudaStream_t s) { silu_and_mul(a->out, a->in, s); };
      const Tolerance tol = default_tolerance(d);
      c.check = [a, tol] { return compare_output(a->out, a->expected, tol); };
      cs.push_back(std::move(c));
    }
    Group g;
    g.name = detail::concat("silu_and_mul by dtype, [", T, ", ", I, "]");
    g.kernel = "silu_and_mul";
    g.shape = {{"tokens", T}, {"intermediate", I}};
    g.points = run_sweep(cs, so);
    finish(g, "silu_and_mul_kernel", false);
  }
  keep.all.clear();

  // ---- end to end: llama-1b ----
  const std::string preset = "llama-1b";
  const ModelConfig cfg = ModelConfig::preset(preset);
  const int64_t B = q ? 8 : 32, ctx = q ? 256 : 1024;
  const int64_t acc_batch = 8, acc_steps = q ? 8 : 32;
  RuntimeLimits lim;
  lim.max_num_tokens = B;
  lim.max_num_seqs = B;
  lim.max_model_len = ctx;
  lim.kv.block_size = 16;
  lim.kv.num_blocks = B * ((ctx + 15) / 16);
  // Teacher forcing: the same tokens for every dtype, so the logits compare step by step.
  std::vector<std::vector<int32_t>> acc_tokens;
  for (int64_t s = 0; s < acc_steps; ++s)
    acc_tokens.push_back(random_tokens(acc_batch, cfg.vocab_size, o.seed + 100 + s));
  std::vector<float> ref_logits;  // fp32's, [steps][acc_batch][vocab]
  std::vector<int32_t> ref_argmax;
  Group g;
  g.name = detail::concat(preset, " end to end by dtype: decode step B=", B, " ctx ", ctx,
                          " (CUDA graph); logits vs fp32 over ", acc_steps,
                          " teacher-forced steps of B=", acc_batch);
  g.kernel = "decode_step";
  g.shape = {{"preset", preset},
             {"batch", B},
             {"context", ctx},
             {"accuracy_batch", acc_batch},
             {"accuracy_steps", acc_steps}};
  for (DType d : kDtypes) {
    progress.step(preset + " " + dname(d));
    std::fprintf(stderr, "tune precision: building %s (%s, random weights)\n", preset.c_str(),
                 dname(d).c_str());
    LlamaModel model = LlamaModel::from_preset(preset, d, Device::cuda, o.seed, lim);
    // 1. accuracy, eager steps from position 0.
    const int64_t vocab = cfg.vocab_size;
    double max_diff = 0, sum_diff = 0;
    int64_t agree = 0, compared = 0;
    bool finite = true;
    std::vector<float> host(acc_batch * vocab);
    for (int64_t s = 0; s < acc_steps; ++s) {
      DecodeBatch b = make_decode_batch(model, acc_batch, s, acc_tokens[s]);
      const Tensor logits = model.forward(b.view, stream);
      DAY18_CUDA_CHECK(cudaMemcpyAsync(host.data(), logits.data(), host.size() * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream));
      stream.synchronize();
      for (int64_t r = 0; r < acc_batch; ++r) {
        const float* row = host.data() + r * vocab;
        const int32_t am = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
        for (int64_t v = 0; v < vocab; ++v) finite = finite && std::isfinite(row[v]);
        if (d == DType::f32) {
          ref_logits.insert(ref_logits.end(), row, row + vocab);
          ref_argmax.push_back(am);
          continue;
        }
        const float* ref = ref_logits.data() + (s * acc_batch + r) * vocab;
        for (int64_t v = 0; v < vocab; ++v) {
          const double diff = std::fabs(static_cast<double>(row[v]) - ref[v]);
          max_diff = std::max(max_diff, diff);
          sum_diff += diff;
        }
        agree += am == ref_argmax[s * acc_batch + r] ? 1 : 0;
        ++compared;
      }
    }
    // 2. speed: the graph of one decode step at B, ctx, over random cached K/V.
    fill_random_normal(model.key_cache_stacked(), o.seed, 1001, 0.0, 1.0, stream);
    fill_random_normal(model.value_cache_stacked(), o.seed, 1002, 0.0, 1.0, stream);
    DecodeBatch batch = make_decode_batch(model, B, ctx - 1, random_tokens(B, vocab, o.seed + 7));
    const Tensor logits = model.forward(batch.view, stream);
    stream.synchronize();
    OwnedTensor eager(logits.sizes(), DType::f32, Storage::host);
    copy_tensor(eager, logits);
    StepGraph graph(model, batch.view, stream);
    Candidate c = dtype_candidate(d);
    for (const PlannedLaunch& l : decode_step_launches(cfg, {B, ctx, d})) {
      c.bytes += l.cost.bytes;
      c.flops += l.cost.flops;
    }
    c.prepare = [logits](cudaStream_t s) { poison(logits, s); };
    c.launch = [&graph](cudaStream_t s) { graph.launch(s); };
    c.check = [logits, &eager, finite] {
      CheckResult r = compare_output(logits, eager, default_tolerance(DType::f32));
      if (!finite) {
        r.ok = false;
        r.report = "non-finite logits in the teacher-forced steps; " + r.report;
      }
      return r;
    };
    SweepOptions s1 = so;
    s1.record = nullptr;
    s1.progress = nullptr;
    s1.min_repeats = 10;
    std::vector<Point> pts = run_sweep({c}, s1);
    Point& p = pts[0];
    if (p.timed) {
      p.extra["step_ms"] = p.median_us * 1e-3;
      p.extra["tokens_per_s"] = B / (p.median_us * 1e-6);
      p.extra["weight_bytes"] = static_cast<double>(model.weight_bytes());
    }
    p.extra["memory_bytes"] = {{"weights", static_cast<double>(model.weight_bytes())},
                               {"kv_cache", static_cast<double>(model.kv_cache_bytes())},
                               {"workspace", static_cast<double>(model.scratch_bytes())}};
    if (d != DType::f32) {
      p.extra["max_logit_diff"] = max_diff;
      p.extra["mean_abs_logit_diff"] = compared ? sum_diff / (compared * vocab) : 0;
      p.extra["greedy_agreement"] = compared ? static_cast<double>(agree) / compared : 0;
    } else {
      p.extra["max_logit_diff"] = 0.0;
      p.extra["greedy_agreement"] = 1.0;
    }
    p.extra["logits_compared"] = compared * vocab;
    finish_point(p, e.roof, "decode_step", true);
    g.points.push_back(std::move(p));
  }
  finish(g, "decode_step", true);
  e.notes.push_back(
      "per kernel: each dtype is checked against the CPU oracle on its OWN rounded inputs (the "
      "dtype's tolerance); end to end: max_logit_diff and greedy_agreement compare with fp32 on "
      "the "
      "same teacher-forced tokens (random weights: the logits are not a language model's)");
  e.notes.push_back(
      "end to end: the point's check is the graph replay against the eager step; the accuracy "
      "against fp32 is in extra");
  return e;
}

}  // namespace day18::tuning
