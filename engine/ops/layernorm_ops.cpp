// Registry entries of the layernorm family: rms_norm and fused_add_rms_norm.
#include "engine/ops/layernorm.h"
#include "engine/ops/registry.h"
#include "engine/profiling/cost_model.h"

namespace day18 {
namespace {

constexpr double kDefaultEps = 1e-6;  // Llama 2/3's rms_norm_eps (1e-5 for some checkpoints)

// Llama-2-7B: 4096 hidden; 2048 tokens is a prefill chunk. Inputs ~ N(0, 1) like hidden states,
// weights near 1 like a trained RMSNorm gain.
constexpr int64_t kTourTokens = 2048, kTourHidden = 4096;

void make_norm_case(Rng& rng, DType dt, TensorStore& io, Attrs& attrs, bool fused) {
  io.put_owned("input", rng.normal_tensor({kTourTokens, kTourHidden}, dt, 0.0, 1.0));
  if (fused) io.put_owned("residual", rng.normal_tensor({kTourTokens, kTourHidden}, dt, 0.0, 1.0));
  io.put_owned("weight", rng.uniform_tensor({kTourHidden}, dt, 0.5, 1.5));
  attrs.set("eps", kDefaultEps);
}

OpCost norm_cost(const TensorStore& io, bool fused) {
  const Tensor& in = io.get("input");
  return fused ? cost::fused_add_rms_norm(in.size(0), in.size(1), in.dtype())
               : cost::rms_norm(in.size(0), in.size(1), in.dtype());
}

}  // namespace

void register_layernorm_ops(OpRegistry& r) {
  const std::string act = "[num_tokens, hidden_size] f32/f16/bf16";
  const std::string w = "[hidden_size] same dtype";
  const AttrDoc eps{"eps", "added to mean(x^2) before the rsqrt; > 0", "1e-06"};

  OpDef norm;
  norm.name = "rms_norm";
  norm.family = "layernorm";
  norm.summary = "out = input * rsqrt(mean(input^2) + eps) * weight, per token (fp32 math)";
  norm.inputs = {{"input", act}, {"weight", w}};
  norm.outputs = {{"out", act}};
  norm.attrs = {eps};
  norm.run = [](OpContext& c) {
    const Tensor& in = c.io.get("input");
    const Tensor& out = c.output("out", in.sizes(), in.dtype());
    rms_norm(out, in, c.io.get("weight"), c.attrs.real_or("eps", kDefaultEps), c.stream);
  };
  norm.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& a) {
    make_norm_case(rng, dt, io, a, false);
  };
  // read input + weight, write out (cost::rms_norm)
  norm.bytes_moved = [](const TensorStore& io, const Attrs&) { return norm_cost(io, false).bytes; };
  norm.flops = [](const TensorStore& io, const Attrs&) { return norm_cost(io, false).flops; };
  norm.tour_dtypes = {DType::f16, DType::bf16, DType::f32};
  r.add(std::move(norm));

  OpDef fused;
  fused.name = "fused_add_rms_norm";
  fused.family = "layernorm";
  fused.summary =
      "residual = input + residual; input = rms_norm(residual) * weight (in place, vLLM)";
  fused.inputs = {{"input", act}, {"residual", act}, {"weight", w}};
  fused.outputs = {{"input", act + " (normalized, in place)"},
                   {"residual", act + " (input + residual, in place)"}};
  fused.attrs = {eps};
  fused.run = [](OpContext& c) {
    fused_add_rms_norm(c.io.get("input"), c.io.get("residual"), c.io.get("weight"),
                       c.attrs.real_or("eps", kDefaultEps), c.stream);
  };
  fused.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& a) {
    make_norm_case(rng, dt, io, a, true);
  };
  // read input + residual + weight, write input + residual (cost::fused_add_rms_norm)
  fused.bytes_moved = [](const TensorStore& io, const Attrs&) { return norm_cost(io, true).bytes; };
  fused.flops = [](const TensorStore& io, const Attrs&) { return norm_cost(io, true).flops; };
  fused.tour_dtypes = {DType::f16, DType::bf16, DType::f32};
  r.add(std::move(fused));
}

}  // namespace day18
