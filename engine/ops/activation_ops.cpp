// Registry entry of the activation family: silu_and_mul.
#include "engine/ops/activation.h"
#include "engine/ops/registry.h"
#include "engine/profiling/cost_model.h"

namespace day18 {

void register_activation_ops(OpRegistry& r) {
  OpDef op;
  op.name = "silu_and_mul";
  op.family = "activation";
  op.summary = "out = silu(gate) * up, input = [gate | up] per token (Llama MLP, SwiGLU)";
  op.inputs = {{"input", "[num_tokens, 2 * d] f32/f16/bf16 (gate = [:, :d], up = [:, d:])"}};
  op.outputs = {{"out", "[num_tokens, d] same dtype"}};
  op.run = [](OpContext& c) {
    const Tensor& in = c.io.get("input");
    const Tensor& out = c.output("out", {in.size(0), in.size(1) / 2}, in.dtype());
    silu_and_mul(out, in, c.stream);
  };
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
    // Llama-2-7B's MLP: intermediate_size 11008; a 2048-token prefill chunk. Gate values span
    // silu's curved region and both tails.
    io.put_owned("input", rng.normal_tensor({2048, 2 * 11008}, dt, 0.0, 2.0));
  };
  // read input, write half as much (cost::silu_and_mul)
  auto cost_of = [](const TensorStore& io) {
    const Tensor& in = io.get("input");
    return cost::silu_and_mul(in.size(0), in.size(1) / 2, in.dtype());
  };
  op.bytes_moved = [cost_of](const TensorStore& io, const Attrs&) { return cost_of(io).bytes; };
  op.flops = [cost_of](const TensorStore& io, const Attrs&) { return cost_of(io).flops; };
  op.tour_dtypes = {DType::f16, DType::bf16};
  r.add(std::move(op));
}

}  // namespace day18
