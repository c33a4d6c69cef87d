// `day18 tune block-size`: the launch configuration of PagedAttention (threads per block, query
// heads per block, KV block size, v2 partition size) and of RMSNorm (threads per block), each
// configuration PASSED to the kernel (engine/kernels/*_configured / *_with_threads), checked
// against the CPU oracle, then timed; occupancy and waves from the kernel really launched.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/compare.h"
#include "engine/core/device.h"
#include "engine/core/error.h"
#include "engine/kernels/layernorm.h"
#include "engine/kernels/paged_attention.h"
#include "engine/profiling/cost_model.h"
#include "engine/tuning/decide.h"
#include "engine/tuning/gpu_support.h"
#include "engine/tuning/kernel_inputs.h"

namespace day18::tuning {
namespace {

struct AttnConfig {
  int threads = 128;
  int heads_per_block = 0;  // 0 = automatic
  int partition = 0;        // 0 = v1
};

// One group of PagedAttention configurations over the same inputs.
struct AttnGroup {
  std::string name;
  std::shared_ptr<AttentionInputs> in;
  std::vector<AttnConfig> configs;
  int baseline = 0;
  std::vector<std::shared_ptr<OwnedTensor>> workspaces;  // kept alive with the candidates
};

int effective_hpb(const AttentionInputs& a, int hpb) {
  return hpb ? hpb
             : cuda::paged_attention_heads_per_block(static_cast<int>(a.num_heads),
                                                     static_cast<int>(a.num_kv_heads), a.batch,
                                                     static_cast<int>(a.ctx), cuda::sm_count());
}

std::string attn_label(const AttentionInputs& a, const AttnConfig& c) {
  std::string s = c.partition ? detail::concat("v2 partition ", c.partition, ", ") : "v1, ";
  s += detail::concat(c.threads, " threads, ", effective_hpb(a, c.heads_per_block), " heads/block");
  if (!c.heads_per_block) s += " (auto)";
  if (a.block_size != 16) s += detail::concat(", KV block ", a.block_size);
  return s;
}

Candidate attn_candidate(AttnGroup& g, const AttnConfig& c) {
  AttentionInputs& a = *g.in;
  Candidate k;
  k.config = {{"threads", c.threads},
              {"heads_per_block", effective_hpb(a, c.heads_per_block)},
              {"heads_per_block_auto", c.heads_per_block == 0},
              {"kv_block_size", a.block_size},
              {"version", c.partition ? "v2" : "v1"},
              {"partition_size", c.partition}};
  k.label = attn_label(a, c);
  OpCost cost = cost::paged_attention(a.batch, a.num_heads, a.num_kv_heads, a.head_size,
                                      a.batch * a.ctx, a.dtype);
  const int parts = c.partition ? static_cast<int>((a.ctx + c.partition - 1) / c.partition) : 1;
  if (c.partition)
    cost += cost::paged_attention_v2_reduce(a.batch, a.num_heads, a.head_size, parts, a.dtype);
  k.bytes = cost.bytes;
  k.flops = cost.flops;
  // The KV block size is not a launch parameter: it is the cache's layout, seen by the kernel
  // through its arguments. Recorded so that the trap check (decide.h) sees it reach the kernel.
  k.extra["arguments"] = detail::concat("key_cache/value_cache [", a.key_cache.sizes()[0], ", ",
                                        a.num_kv_heads, ", ", a.block_size, ", ", a.head_size, "]");
  AttentionInputs* in = g.in.get();
  k.prepare = [in](cudaStream_t s) { poison(in->out, s); };
  const Tolerance tol = default_tolerance(a.dtype);
  k.check = [in, tol] { return compare_output(in->out, in->expected, tol); };
  if (!c.partition) {
    k.launch = [in, c](cudaStream_t s) {
      cuda::paged_attention_v1_configured(
          in->out, in->query, in->key_cache, in->value_cache, in->block_tables, in->seq_idx,
          in->context_lens, in->scale, static_cast<int>(in->ctx), c.threads, c.heads_per_block, s);
    };
  } else {
    // The fp32 workspace of this partition size: exp_sums | max_logits | tmp_out.
    auto ws = std::make_shared<OwnedTensor>(
        std::vector<int64_t>{a.batch * a.num_heads * parts * (2 + a.head_size)}, DType::f32,
        Storage::device);
    g.workspaces.push_back(ws);
    const int64_t rows = a.batch * a.num_heads * parts;
    float* base = ws->ptr<float>();
    const Tensor es(base, DType::f32, {a.batch, a.num_heads, parts}, Device::cuda);
    const Tensor ml(base + rows, DType::f32, {a.batch, a.num_heads, parts}, Device::cuda);
    const Tensor tmp(base + 2 * rows, DType::f32, {a.batch, a.num_heads, parts, a.head_size},
                     Device::cuda);
    k.launch = [in, c, es, ml, tmp](cudaStream_t s) {
      cuda::paged_attention_v2_configured(in->out, es, ml, tmp, in->query, in->key_cache,
                                          in->value_cache, in->block_tables, in->seq_idx,
                                          in->context_lens, in->scale, static_cast<int>(in->ctx),
                                          c.partition, c.threads, c.heads_per_block, s);
    };
  }
  return k;
}

void attach_attn_occupancy(const AttentionInputs& a, const AttnConfig& c, Point& p) {
  const int hpb = effective_hpb(a, c.heads_per_block);
  const int tokens = static_cast<int>(c.partition ? c.partition : a.ctx);
  const size_t smem =
      cuda::paged_attention_shared_bytes(hpb, static_cast<int>(a.head_size), c.threads, tokens);
  const void* fn = cuda::paged_attention_kernel_function(a.dtype, static_cast<int>(a.head_size),
                                                         c.threads, smem);
  if (!fn) return;
  const int parts = c.partition ? static_cast<int>((a.ctx + c.partition - 1) / c.partition) : 1;
  const double grid = static_cast<double>(a.batch) * (a.num_heads / hpb) * parts;
  p.occupancy = occupancy_of(fn, c.threads, smem, grid);
  p.extra["threads"] = c.threads;
}

struct NormConfig {
  int threads = 0;  // 0 = the launcher's own choice
};

}  // namespace

Experiment run_block_size(const RunOptions& o) {
  require_gpu_for("block-size");
  Experiment e;
  e.experiment = "block_size";
  e.provenance = make_provenance(o.command);
  std::fprintf(stderr, "tune block-size: measuring the roof (P, tensor and FMA peaks)...\n");
  e.roof = resolve_roof(o.roof_file);
  e.hypothesis =
      "PagedAttention and RMSNorm are memory-bound at decode shapes, so a launch configuration "
      "wins only by moving the same bytes with more of HBM busy: more resident warps or a grid of "
      "enough waves; once the grid fills the GPU several times, the threads per block change "
      "little, and folding GQA heads into one block wins because each K/V row is read once.";
  e.parameters = {"threads", "heads_per_block", "kv_block_size", "partition_size"};

  // PagedAttention shapes (Llama-3-8B heads: 32 query, 8 KV, head 128, fp16).
  const int64_t H = 32, KVH = 8, D = 128;
  const int64_t B = o.quick ? 16 : 32, ctx = o.quick ? 1024 : 2048;
  std::vector<AttnGroup> groups;
  {
    AttnGroup g;
    g.name = detail::concat("paged_attention v1 threads x heads/block, B=", B, " ctx ", ctx,
                            " fp16, 32/8 heads x 128");
    std::fprintf(stderr, "tune block-size: inputs and oracle for %s\n", g.name.c_str());
    g.in = std::make_shared<AttentionInputs>(
        make_attention_inputs(B, ctx, H, KVH, D, 16, DType::f16, o.seed));
    // Every thread count with the automatic heads per block, and with the other choice (one head
    // per block when the rule folds the GQA group, the whole group of 4 when it does not).
    const int other = effective_hpb(*g.in, 0) == 1 ? 4 : 1;
    for (int t : cuda::kPagedAttentionThreadCounts) {
      if (t == 128) g.baseline = static_cast<int>(g.configs.size());
      g.configs.push_back({t, 0, 0});
      if (!o.quick || t == 128) g.configs.push_back({t, other, 0});
    }
    groups.push_back(std::move(g));
  }
  {
    AttnGroup g;
    const int64_t vb = o.quick ? 4 : 8, vctx = o.quick ? 4096 : 8192;
    g.name = detail::concat("paged_attention v2 partition size, B=", vb, " ctx ", vctx,
                            " fp16, 32/8 heads x 128");
    std::fprintf(stderr, "tune block-size: inputs and oracle for %s\n", g.name.c_str());
    g.in = std::make_shared<AttentionInputs>(
        make_attention_inputs(vb, vctx, H, KVH, D, 16, DType::f16, o.seed + 1));
    const std::vector<int> parts =
        o.quick ? std::vector<int>{128, 512, 1024} : std::vector<int>{64, 128, 256, 512, 1024};
    for (int p : parts) {
      if (p == 512) g.baseline = static_cast<int>(g.configs.size());
      g.configs.push_back({128, 0, p});
    }
    groups.push_back(std::move(g));
  }
  // The KV block size is a cache layout: one group per block size would compare different
  // inputs, so each block size is its own input (same shape, same seed) in one group.
  std::vector<std::shared_ptr<AttentionInputs>> kv_inputs;
  const std::vector<int64_t> kv_blocks = {8, 16, 32};
  for (int64_t bs : kv_blocks) {
    std::fprintf(stderr, "tune block-size: inputs and oracle for KV block size %ld\n", long(bs));
    kv_inputs.push_back(std::make_shared<AttentionInputs>(
        make_attention_inputs(B, ctx, H, KVH, D, bs, DType::f16, o.seed + 2)));
  }
  const int64_t NT = o.quick ? 256 : 1024, HID = 4096;
  std::fprintf(stderr, "tune block-size: inputs and oracle for RMSNorm [%ld, %ld]\n", long(NT),
               long(HID));
  auto norm = std::make_shared<NormInputs>(make_norm_inputs(NT, HID, DType::f16, o.seed + 3));
  const std::vector<int> norm_threads =
      o.quick ? std::vector<int>{128, 512, 1024} : std::vector<int>{64, 128, 256, 512, 1024};

  size_t total = kv_blocks.size() + 2 * (norm_threads.size() + 1);
  for (const AttnGroup& g : groups) total += g.configs.size();
  Stream stream;
  SweepOptions so = SweepOptions::gpu(stream);
  so.point_budget_s = point_budget(o, total);
  Progress progress{"block-size", 0, total};
  so.progress = [&](size_t, size_t, const std::string& label) { progress.step(label); };

  auto finish_group = [&](Group& grp, const std::string& kernel) {
    for (Point& p : grp.points) finish_point(p, e.roof, kernel, false);
    decide_group(grp);
    const ParameterCheck pc = check_parameter_reached(grp);
    if (!pc.reached)
      e.notes.push_back(grp.name + ": " + pc.why);
    else if (!pc.verified)
      e.notes.push_back(grp.name + ": launches " + pc.why);
    if (grp.best >= 0 && grp.within_noise)
      e.notes.push_back(grp.name + ": the fastest (" + grp.points[grp.best].label +
                        ") is within the noise of the baseline: not a win");
    for (const Point& p : grp.points)
      if (!p.correct)
        e.notes.push_back(grp.name + ": " + p.label + " is NOT correct (max error " +
                          detail::concat(p.max_abs_err) + "): not timed");
  };

  for (AttnGroup& g : groups) {
    std::vector<Candidate> cs;
    for (const AttnConfig& c : g.configs) cs.push_back(attn_candidate(g, c));
    Group grp;
    grp.name = g.name;
    grp.kernel = "paged_attention";
    grp.shape = {{"batch", g.in->batch}, {"context", g.in->ctx},
                 {"num_heads", H},       {"num_kv_heads", KVH},
                 {"head_size", D},       {"kv_block_size", g.in->block_size},
                 {"dtype", "fp16"}};
    grp.baseline = g.baseline;
    grp.points = run_sweep(cs, so);
    for (size_t i = 0; i < grp.points.size(); ++i)
      attach_attn_occupancy(*g.in, g.configs[i], grp.points[i]);
    finish_group(grp, "paged_attention_kernel");
    e.groups.push_back(std::move(grp));
  }
  {
    AttnGroup g;
    std::vector<Candidate> cs;
    for (auto& in : kv_inputs) {
      g.in = in;
      cs.push_back(attn_candidate(g, {128, 0, 0}));
      cs.back().config["kv_block_size"] = in->block_size;
    }
    Group grp;
    grp.name = detail::concat("paged_attention v1 KV block size, B=", B, " ctx ", ctx,
                              " fp16, 32/8 heads x 128, 128 threads");
    grp.kernel = "paged_attention";
    grp.shape = {{"batch", B},          {"context", ctx}, {"num_heads", H},
                 {"num_kv_heads", KVH}, {"head_size", D}, {"dtype", "fp16"}};
    grp.baseline = 1;  // 16, the engine's default
    grp.points = run_sweep(cs, so);
    for (size_t i = 0; i < grp.points.size(); ++i)
      attach_attn_occupancy(*kv_inputs[i], {128, 0, 0}, grp.points[i]);
    finish_group(grp, "paged_attention_kernel");
    e.groups.push_back(std::move(grp));
  }
  for (bool fused : {false, true}) {
    std::vector<Candidate> cs;
    std::vector<int> threads = {0};
    threads.insert(threads.end(), norm_threads.begin(), norm_threads.end());
    NormInputs* n = norm.get();
    const Tolerance tol = default_tolerance(n->dtype);
    for (int t : threads) {
      const cuda::RmsNormLaunch l = cuda::rms_norm_launch(n->dtype, n->hidden, fused, t);
      Candidate c;
      c.config = {
          {"threads", l.threads}, {"auto", t == 0}, {"vectors_per_thread", l.vectors_per_thread}};
      c.label = t == 0 ? detail::concat("auto (", l.threads, " threads, ",
                                        l.vectors_per_thread ? "registers" : "loop", ")")
                       : detail::concat(t, " threads, ",
                                        l.vectors_per_thread
                                            ? detail::concat(l.vectors_per_thread, " vec/thread")
                                            : std::string("loop"));
      const OpCost cost = fused ? cost::fused_add_rms_norm(n->tokens, n->hidden, n->dtype)
                                : cost::rms_norm(n->tokens, n->hidden, n->dtype);
      c.bytes = cost.bytes;
      c.flops = cost.flops;
      if (!fused) {
        c.prepare = [n](cudaStream_t s) { poison(n->out, s); };
        c.launch = [n, t](cudaStream_t s) {
          if (t == 0)
            cuda::rms_norm(n->out, n->input0, n->weight, n->eps, s);
          else
            cuda::rms_norm_with_threads(n->out, n->input0, n->weight, n->eps, t, s);
        };
        c.check = [n, tol] { return compare_output(n->out, n->expected_out, tol); };
      } else {
        c.prepare = [n](cudaStream_t s) {
          copy_device(n->input, n->input0, s);
          copy_device(n->residual, n->residual0, s);
        };
        c.launch = [n, t](cudaStream_t s) {
          if (t == 0)
            cuda::fused_add_rms_norm(n->input, n->residual, n->weight, n->eps, s);
          else
            cuda::fused_add_rms_norm_with_threads(n->input, n->residual, n->weight, n->eps, t, s);
        };
        c.check = [n, tol] {
          CheckResult a = compare_output(n->input, n->expected_fused, tol);
          const CheckResult b = compare_output(n->residual, n->expected_residual, tol);
          if (!b.ok) a.report += (a.report.empty() ? "" : "; ") + ("residual: " + b.report);
          a.ok = a.ok && b.ok;
          a.max_abs_err = std::max(a.max_abs_err, b.max_abs_err);
          return a;
        };
        c.recheck = false;  // in place: the timed runs start from each other's outputs
      }
      cs.push_back(std::move(c));
    }
    Group grp;
    grp.name = detail::concat(fused ? "fused_add_rms_norm" : "rms_norm", " threads per block, [",
                              NT, ", ", HID, "] fp16");
    grp.kernel = fused ? "fused_add_rms_norm" : "rms_norm";
    grp.shape = {{"tokens", NT}, {"hidden", HID}, {"dtype", "fp16"}};
    grp.baseline = 0;
    grp.points = run_sweep(cs, so);
    for (size_t i = 0; i < grp.points.size(); ++i) {
      const cuda::RmsNormLaunch l = cuda::rms_norm_launch(n->dtype, n->hidden, fused, threads[i]);
      grp.points[i].occupancy = occupancy_of(l.kernel, l.threads, 0, static_cast<double>(NT));
      grp.points[i].extra["threads"] = l.threads;
    }
    finish_group(grp, fused ? "fused_add_rms_norm_kernel" : "rms_norm_kernel");
    e.groups.push_back(std::move(grp));
  }
  e.notes.push_back(
      "rotary_and_cache, reshape_and_cache and silu_and_mul pick their block size in their "
      "launchers and have no override yet: not swept");
  e.notes.push_back(
      "PagedAttention threads 64/256/512 are compiled for fp16 head_size 128 only "
      "(paged_attention_v1_has_threads); v2 partitions run at 128 threads");
  return e;
}

}  // namespace day18::tuning
