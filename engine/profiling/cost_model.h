// The analytic cost model: the bytes each op must move through device memory and the
// floating-point operations it must do, per launch, from its shapes alone. With a kernel's time
// (a trace, an ncu duration, a benchmark) it gives the achieved bandwidth and FLOP rate and the
// arithmetic intensity (FLOP per byte) that place the kernel on the roofline, without any
// hardware counter.
//
// The one source of these counts: the op registry's bytes_moved / flops (engine/ops/*_ops.cpp)
// and the benchmarks call these functions, and the decode-step plan below sums them.
//
// Conventions (the same as the registry's):
//   - bytes: every input read once, every output written once, weights once per launch; a
//     tensor updated in place counts twice (read and written). What a kernel really moves can be
//     more (re-reads that miss in L2, a norm reading its row twice) or less (rows found in L2):
//     ncu's dram__bytes_read/write.sum is the measured counterpart.
//   - flops: a multiply-add is 2; exp, rsqrt and division count 1 each (the roofline is about
//     the order of magnitude, and these ops are a few per element).
//
//   OpCost c = cost::linear(/*M=*/8, /*N=*/4096, /*K=*/4096, DType::f16);   // one GEMM
//   double intensity = c.flops / c.bytes;                                    // ~8 FLOP/byte
//   std::vector<PlannedLaunch> step = decode_step_launches(ModelConfig::preset("llama-1b"),
//                                                          {.num_seqs = 8, .context_len = 1024});
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/runtime/model_config.h"

namespace day18 {

struct OpCost {
  double bytes = 0;  // through device memory, per launch
  double flops = 0;  // floating-point operations, per launch
  double intensity() const { return bytes > 0 ? flops / bytes : 0; }  // FLOP per byte
  OpCost& operator+=(const OpCost& o) {
    bytes += o.bytes;
    flops += o.flops;
    return *this;
  }
};

namespace cost {

// out [M, N] = input [M, K] @ weight[N, K]^T: (MK + NK + MN) elements, 2MNK FLOPs.
OpCost linear(int64_t M, int64_t N, int64_t K, DType dt);
// out = rms_norm(input) * weight, input/out [T, H], weight [H]: 2TH + H elements, 4TH FLOPs
// (square, sum, scale, weight).
OpCost rms_norm(int64_t tokens, int64_t hidden, DType dt);
// residual += input; input = rms_norm(residual) * weight: input and residual read and written,
// weight read: 4TH + H elements, 5TH FLOPs.
OpCost fused_add_rms_norm(int64_t tokens, int64_t hidden, DType dt);
// The norm inside the GEMV (one decode token): linear(M, N, K) + input and residual read,
// residual_out written, the norm weight read (the registry's count: + 2MK + K elements); FLOPs
// of the GEMM + 5MK.
OpCost rms_norm_linear(int64_t M, int64_t N, int64_t K, DType dt);
// out [T, d] = silu(gate) * up, input [T, 2d]: 3Td elements, 4Td FLOPs.
OpCost silu_and_mul(int64_t tokens, int64_t d, DType dt);
// The down projection with SiLU-and-mul folded in: gate_up [M, 2K] read, weight [N, K], out
// [M, N]: (2MK + NK + MN) elements, 2MNK + 4MK FLOPs.
OpCost linear_silu_mul(int64_t M, int64_t N, int64_t K, DType dt);
// rotary_and_cache for T tokens (all cached, distinct positions): query read + packed query
// written, key and value read and written into the cache, positions and slots (int64) read, one
// cos/sin row (head_size values) per token; 3 (num_heads + num_kv_heads) head_size T FLOPs
// (each pair: 4 multiplies, 2 adds).
OpCost rotary_and_cache(int64_t tokens, int64_t num_heads, int64_t num_kv_heads, int64_t head_size,
                        DType dt);
// PagedAttention for `tokens` queries whose sequences together have `kv_rows` cached tokens to
// read (decode: num_seqs x context_len): K and V rows (num_kv_heads x head_size each) once,
// query read, out written; 4 tokens num_heads context head_size FLOPs (q.k and p.v), with
// context = kv_rows / tokens.
OpCost paged_attention(int64_t tokens, int64_t num_heads, int64_t num_kv_heads, int64_t head_size,
                       int64_t kv_rows, DType dt);
// The v2 reduce: per (token, head) `partitions` fp32 partial outputs, exp sums and maxima read,
// the output written.
OpCost paged_attention_v2_reduce(int64_t tokens, int64_t num_heads, int64_t head_size,
                                 int64_t partitions, DType dt);
// out [T, H] = table[ids]: ids (int32) read, T distinct rows read, T rows written.
OpCost embedding(int64_t tokens, int64_t hidden, DType dt);
// float logits [n] from the model dtype.
OpCost cast_to_float(int64_t n, DType dt);
// One token per row from [rows, vocab] fp32 logits: the logits read once, a few words per row.
OpCost sampling(int64_t rows, int64_t vocab);

}  // namespace cost

// A kernel family: what a kernel's name says it is (ncu and traces print kernel names; the plan
// below is in ops). "linear" covers cuBLAS's kernels; "gemv" the engine's GEMV (linear,
// linear_silu_mul and rms_norm_linear for one decode token).
std::string kernel_family(const std::string& short_kernel_name);

// One launch of a decode step, in launch order.
struct PlannedLaunch {
  std::string op;      // the op: "rms_norm", "linear", "paged_attention", ...
  std::string family;  // kernel_family() of the kernel it launches
  std::string what;    // which one: "layer 0 qkv_proj", "lm_head", "final norm"
  OpCost cost;
};

struct DecodeShape {
  int64_t num_seqs = 8;  // one new token per sequence
  int64_t context_len =
      1024;  // tokens each sequence attends to at this step (the new one included)
  DType dtype = DType::f16;
};

// The launches of one CUDA decode step of the engine's Llama model (runtime/llama_model.cpp:
// embedding, per layer norm + qkv GEMM, rotary_and_cache, paged_attention (v1, or v2 + reduce, as
// plan_paged_attention decides), o_proj, norm + gate_up, SiLU-and-mul + down, final norm + LM
// head, the cast of the logits, sampling), with the fused GEMV kernels of a one-token step.
std::vector<PlannedLaunch> decode_step_launches(const ModelConfig& config,
                                                const DecodeShape& shape);

// Matches kernels (short names, in launch order) with the launches of a plan: each kernel gets the
// index of its planned launch, or -1. An in-order alignment of kernel families against the plan
// repeated (several steps may be profiled, a profile may start inside a step): +2 per match, -1
// per planned launch skipped between matches, extra kernels (cuBLAS's own) free.
std::vector<int> match_plan(const std::vector<std::string>& kernel_names,
                            const std::vector<PlannedLaunch>& plan);

}  // namespace day18
