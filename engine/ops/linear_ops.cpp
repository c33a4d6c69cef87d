// Registry entries of the linear family: linear (cuBLAS GEMM or, for decode, our GEMV),
// linear_silu_mul (the down projection with SiLU-and-mul folded into the GEMV) and
// rms_norm_linear (fused_add_rms_norm folded into the projection after it).
#include "engine/ops/linear.h"
#include "engine/ops/registry.h"
#include "engine/profiling/cost_model.h"

namespace day18 {
namespace {

// Weights read once, activations read once, output written once: the cost model's counts.
OpCost linear_cost(const TensorStore& io) {
  const Tensor& in = io.get("input");
  return cost::linear(in.size(0), io.get("weight").size(0), in.size(1), in.dtype());
}
OpCost linear_silu_mul_cost(const TensorStore& io) {
  const Tensor& gu = io.get("gate_up");
  return cost::linear_silu_mul(gu.size(0), io.get("weight").size(0), gu.size(1) / 2, gu.dtype());
}
OpCost rms_norm_linear_cost(const TensorStore& io) {
  const Tensor& in = io.get("input");
  return cost::rms_norm_linear(in.size(0), io.get("weight").size(0), in.size(1), in.dtype());
}

}  // namespace

void register_linear_ops(OpRegistry& r) {
  {
    OpDef op;
    op.name = "linear";
    op.family = "linear";
    op.summary =
        "out = input @ weight^T (nn.Linear layout, no bias; cuBLAS or a decode GEMV, fp32 "
        "accumulation)";
    op.inputs = {{"input", "[M, K] f32/f16/bf16 (M = num_tokens, K = in_features)"},
                 {"weight", "[N, K] same dtype (N = out_features)"}};
    op.outputs = {{"out", "[M, N] same dtype"}};
    op.attrs = {{"algo",
                 "auto | cublas | gemv (CUDA only: gemv needs M <= 8 and 16-byte rows; auto takes "
                 "it for one token)",
                 "auto"}};
    op.run = [](OpContext& c) {
      const Tensor& in = c.io.get("input");
      const Tensor& w = c.io.get("weight");
      const Tensor& out = c.output("out", {in.size(0), w.size(0)}, in.dtype());
      linear(out, in, w, parse_linear_algo(c.attrs.str_or("algo", "auto")), c.stream);
    };
    op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
      // A 64-token batch through a 4096 x 4096 projection (Llama-2-7B's o_proj). Weights scaled
      // by 1/sqrt(K) like an initialized layer, so outputs stay O(1).
      constexpr int64_t M = 64, K = 4096, N = 4096;
      io.put_owned("input", rng.normal_tensor({M, K}, dt, 0.0, 1.0));
      io.put_owned("weight", rng.normal_tensor({N, K}, dt, 0.0, 1.0 / 64));
    };
    op.bytes_moved = [](const TensorStore& io, const Attrs&) { return linear_cost(io).bytes; };
    op.flops = [](const TensorStore& io, const Attrs&) { return linear_cost(io).flops; };
    op.tour_dtypes = {DType::f16, DType::bf16};
    // Accumulation order differs (cuBLAS tiles and may split K; the oracle sums in double).
    op.tolerance_scale = 2.0;
    r.add(std::move(op));
  }
  {
    OpDef op;
    op.name = "linear_silu_mul";
    op.family = "linear";
    op.summary =
        "out = silu_and_mul(gate_up) @ weight^T: the MLP down projection, fused into one GEMV "
        "for one token on CUDA";
    op.inputs = {{"gate_up", "[M, 2K] f32/f16/bf16 (gate | up)"}, {"weight", "[N, K] same dtype"}};
    op.outputs = {{"out", "[M, N] same dtype"}};
    op.run = [](OpContext& c) {
      const Tensor& gu = c.io.get("gate_up");
      const Tensor& w = c.io.get("weight");
      const Tensor& out = c.output("out", {gu.size(0), w.size(0)}, gu.dtype());
      OwnedTensor scratch;
      if (!linear_silu_mul_is_fused(out, gu, w))
        scratch = c.scratch({gu.size(0), gu.size(1) / 2}, gu.dtype());
      linear_silu_mul(out, gu, w, scratch.view(), c.stream);
    };
    op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
      // One decode token through Llama-3.2-1B's down projection (8192 -> 2048).
      constexpr int64_t M = 1, K = 8192, N = 2048;
      io.put_owned("gate_up", rng.normal_tensor({M, 2 * K}, dt, 0.0, 1.0));
      io.put_owned("weight", rng.normal_tensor({N, K}, dt, 0.0, 1.0 / 90.5));
    };
    op.bytes_moved = [](const TensorStore& io, const Attrs&) {
      return linear_silu_mul_cost(io).bytes;
    };
    op.flops = [](const TensorStore& io, const Attrs&) { return linear_silu_mul_cost(io).flops; };
    op.tour_dtypes = {DType::f16};
    op.tolerance_scale = 2.0;
    r.add(std::move(op));
    {
      OpDef op;
      op.name = "rms_norm_linear";
      op.family = "linear";
      op.summary =
          "residual_out = input + residual; out = rms_norm(residual_out) * norm_weight @ weight^T "
          "(one GEMV for one token on CUDA)";
      op.inputs = {{"input", "[M, K] f32/f16/bf16 (the block output)"},
                   {"residual", "[M, K] same dtype (the residual stream)"},
                   {"norm_weight", "[K] same dtype"},
                   {"weight", "[N, K] same dtype"}};
      op.outputs = {{"out", "[M, N] same dtype"}, {"residual_out", "[M, K] same dtype"}};
      op.attrs = {{"eps", "RMSNorm epsilon", "1e-5"}};
      op.run = [](OpContext& c) {
        const Tensor& in = c.io.get("input");
        const Tensor& w = c.io.get("weight");
        const Tensor& out = c.output("out", {in.size(0), w.size(0)}, in.dtype());
        const Tensor& res = c.output("residual_out", {in.size(0), in.size(1)}, in.dtype());
        const Tensor& r = c.io.get("residual");
        const Tensor& nw = c.io.get("norm_weight");
        OwnedTensor scratch;
        if (!rms_norm_linear_is_fused(out, res, in, r, nw, w))
          scratch = c.scratch({in.size(0), in.size(1)}, in.dtype());
        rms_norm_linear(out, res, in, r, nw, c.attrs.real_or("eps", 1e-5), w, scratch.view(),
                        c.stream);
      };
      op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
        // One decode token through Llama-3.2-1B's post-attention norm and gate_up (2048 -> 16384).
        constexpr int64_t M = 1, K = 2048, N = 16384;
        io.put_owned("input", rng.normal_tensor({M, K}, dt, 0.0, 1.0));
        io.put_owned("residual", rng.normal_tensor({M, K}, dt, 0.0, 1.0));
        io.put_owned("norm_weight", rng.normal_tensor({K}, dt, 1.0, 0.1));
        io.put_owned("weight", rng.normal_tensor({N, K}, dt, 0.0, 1.0 / 45.25));
        attrs.set("eps", 1e-5);
      };
      op.bytes_moved = [](const TensorStore& io, const Attrs&) {
        return rms_norm_linear_cost(io).bytes;
      };
      op.flops = [](const TensorStore& io, const Attrs&) { return rms_norm_linear_cost(io).flops; };
      op.tour_dtypes = {DType::f16};
      op.tolerance_scale = 2.0;
      r.add(std::move(op));
    }
  }
}

}  // namespace day18
