// Registry entry of the linear family: linear (a GEMM through cuBLAS).
#include "engine/ops/linear.h"
#include "engine/ops/registry.h"

namespace day18 {

void register_linear_ops(OpRegistry& r) {
  OpDef op;
  op.name = "linear";
  op.family = "linear";
  op.summary = "out = input @ weight^T (nn.Linear layout, no bias; cuBLAS, fp32 accumulation)";
  op.inputs = {{"input", "[M, K] f32/f16/bf16 (M = num_tokens, K = in_features)"},
               {"weight", "[N, K] same dtype (N = out_features)"}};
  op.outputs = {{"out", "[M, N] same dtype"}};
  op.run = [](OpContext& c) {
    const Tensor& in = c.io.get("input");
    const Tensor& w = c.io.get("weight");
    const Tensor& out = c.io.emplace("out", {in.size(0), w.size(0)}, in.dtype());
    linear(out, in, w, c.stream);
  };
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
    // A 64-token batch through a 4096 x 4096 projection (Llama-2-7B's o_proj). Weights scaled
    // by 1/sqrt(K) like an initialized layer, so outputs stay O(1).
    constexpr int64_t M = 64, K = 4096, N = 4096;
    io.put_owned("input", rng.normal_tensor({M, K}, dt, 0.0, 1.0));
    io.put_owned("weight", rng.normal_tensor({N, K}, dt, 0.0, 1.0 / 64));
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    // Weights read once, activations read once, output written once.
    const Tensor& in = io.get("input");
    const Tensor& w = io.get("weight");
    return static_cast<double>(in.nbytes() + w.nbytes()) +
           static_cast<double>(in.size(0)) * w.size(0) * dtype_size(in.dtype());
  };
  op.tour_dtypes = {DType::f16, DType::bf16};
  // Accumulation order differs (cuBLAS tiles and may split K; the oracle sums in double).
  op.tolerance_scale = 2.0;
  r.add(std::move(op));
}

}  // namespace day18
