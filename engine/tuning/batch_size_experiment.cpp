// `day18 tune batch-size`: the decode step of llama-1b / llama-8b shapes (random weights) at
// batch 1..256: step time (a CUDA graph of the step, as the engine replays decode), kernel time
// per family, memory, tokens/s, the step as a multiple of the weight-read floor, GPU busy, and
// the knee of the curve. Each model is built once and reused across batch sizes.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/compare.h"
#include "engine/core/error.h"
#include "engine/profiling/cost_model.h"
#include "engine/runtime/llama_model.h"
#include "engine/runtime/model_kernels.h"
#include "engine/tuning/decide.h"
#include "engine/tuning/decode_step.h"
#include "engine/tuning/gpu_support.h"

namespace day18::tuning {

Experiment run_batch_size(const RunOptions& o) {
  require_gpu_for("batch-size");
  std::vector<std::string> presets = o.presets;
  if (presets.empty())
    presets = o.quick ? std::vector<std::string>{"llama-1b"}
                      : std::vector<std::string>{"llama-1b", "llama-8b"};
  std::vector<int> batches = o.batches;
  if (batches.empty())
    batches = o.quick ? std::vector<int>{1, 8, 64, 256}
                      : std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128, 256};
  std::sort(batches.begin(), batches.end());
  const int64_t ctx = o.quick ? 512 : 1024;  // tokens each sequence attends to at the step
  const int max_batch = batches.back();

  Experiment e;
  e.experiment = "batch_size";
  e.provenance = make_provenance(o.command);
  std::fprintf(stderr, "tune batch-size: measuring the roof (P, tensor and FMA peaks)...\n");
  e.roof = resolve_roof(o.roof_file);
  e.hypothesis =
      "A decode step reads every weight once whatever the batch, so at small batch its time is "
      "near the weight-read floor and tokens/s grows almost linearly with the batch; past a knee "
      "the KV-cache reads of attention (and then the GEMMs' FLOPs) grow with the batch and the "
      "step time with them.";
  e.parameters = {"batch"};
  Stream stream;
  Progress progress{"batch-size", 0, presets.size() * batches.size()};
  const double budget = point_budget(o, presets.size() * batches.size());

  for (const std::string& preset : presets) {
    const ModelConfig cfg = ModelConfig::preset(preset);
    RuntimeLimits lim;
    lim.max_num_tokens = std::max<int64_t>(max_batch, 1);
    lim.max_num_seqs = max_batch;
    lim.max_model_len = ctx;
    lim.kv.block_size = 16;
    lim.kv.num_blocks = max_batch * ((ctx + 15) / 16);
    std::fprintf(stderr, "tune batch-size: building %s (fp16, random weights, KV for B=%d x %ld)\n",
                 preset.c_str(), max_batch, long(ctx));
    LlamaModel model = LlamaModel::from_preset(preset, DType::f16, Device::cuda, o.seed, lim);
    // The cached K/V the steps attend to: random, not whatever the allocation held.
    fill_random_normal(model.key_cache_stacked(), o.seed, 1001, 0.0, 1.0, stream);
    fill_random_normal(model.value_cache_stacked(), o.seed, 1002, 0.0, 1.0, stream);
    stream.synchronize();
    const double weight_floor_ms =
        static_cast<double>(model.weight_bytes()) / (e.roof.p_gbps * 1e9) * 1e3;

    Group g;
    g.name = detail::concat(preset, " decode step vs batch, ctx ", ctx, " fp16, CUDA graph");
    g.kernel = "decode_step";
    g.shape = {{"preset", preset}, {"context", ctx}, {"dtype", "fp16"}, {"kv_block_size", 16}};
    g.baseline = 0;
    std::vector<BatchTime> curve;
    for (int B : batches) {
      progress.step(detail::concat(preset, " B=", B));
      DecodeBatch batch =
          make_decode_batch(model, B, ctx - 1, random_tokens(B, cfg.vocab_size, o.seed + B));
      // The check: the graph's logits equal the eager step's (same inputs), and are finite.
      const Tensor logits = model.forward(batch.view, stream);  // the view the graph writes too
      stream.synchronize();
      OwnedTensor eager(logits.sizes(), DType::f32, Storage::host);
      copy_tensor(eager, logits);
      StepGraph graph(model, batch.view, stream);
      Candidate c;
      c.config = {{"batch", B}};
      c.label = detail::concat("B=", B);
      c.prepare = [logits](cudaStream_t s) { poison(logits, s); };
      c.launch = [&graph](cudaStream_t s) { graph.launch(s); };
      c.check = [logits, &eager] {
        return compare_output(logits, eager, default_tolerance(DType::f32));
      };
      const std::vector<PlannedLaunch> plan = decode_step_launches(cfg, {B, ctx, DType::f16});
      for (const PlannedLaunch& l : plan) {
        c.bytes += l.cost.bytes;
        c.flops += l.cost.flops;
      }
      SweepOptions so = SweepOptions::gpu(stream);
      so.record = nullptr;  // a step is hundreds of kernels; the per-family trace below says more
      so.point_budget_s = budget;
      so.min_repeats = 10;
      std::vector<Point> pts = run_sweep({c}, so);
      Point& p = pts[0];
      if (p.timed) {
        const int steps = 5;
        const StepKernels k = trace_step_kernels(
            [&] {
              for (int i = 0; i < steps; ++i) graph.launch(stream);
              stream.synchronize();
            },
            steps);
        const double step_ms = p.median_us * 1e-3;
        p.extra["step_ms"] = step_ms;
        p.extra["tokens_per_s"] = B / (step_ms * 1e-3);
        p.extra["x_weight_floor"] = step_ms / weight_floor_ms;
        p.extra["weight_floor_ms"] = weight_floor_ms;
        p.extra["weight_bytes"] = static_cast<double>(model.weight_bytes());
        if (k.traced) {
          p.extra["kernel_ms"] = k.family_ms;
          p.extra["kernel_ms_total"] = k.kernel_ms;
          p.extra["gpu_busy"] = std::min(1.0, k.kernel_ms / step_ms);
        }
        curve.push_back({static_cast<double>(B), step_ms});
      }
      p.extra["memory_bytes"] = {
          {"weights", static_cast<double>(model.weight_bytes())},
          {"kv_cache", static_cast<double>(model.kv_cache_bytes())},
          {"kv_in_use",
           static_cast<double>(B) * ctx * cfg.kv_cache_bytes_per_block(DType::f16, 16) / 16},
          {"workspace", static_cast<double>(model.scratch_bytes())}};
      finish_point(p, e.roof, "decode_step", true);
      g.points.push_back(std::move(p));
    }
    decide_group(g);
    if (!curve.empty()) {
      const Knee k = find_knee(curve);
      e.notes.push_back(preset + ": " + k.why);
      for (Point& p : g.points)
        if (p.timed && p.config.value("batch", 0) == static_cast<int>(k.batch))
          p.extra["knee"] = true;
    }
    for (const Point& p : g.points)
      if (!p.correct)
        e.notes.push_back(g.name + ": " + p.label +
                          ": the graph replay does not match the eager "
                          "step (" +
                          p.check_report + ")");
    e.groups.push_back(std::move(g));
  }
  e.notes.push_back(
      "best = the smallest step time, i.e. B=1: for this experiment read tokens_per_s and the knee "
      "(extra), not best/speedup");
  e.notes.push_back("occupancy is zero for every point: a step is hundreds of kernels, not one");
  e.notes.push_back(
      "x_weight_floor = step time / (weight bytes / P): 1.0 would be every weight read once at P");
  return e;
}

}  // namespace day18::tuning
