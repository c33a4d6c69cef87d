// The analytic cost model: hand-computed counts for each op, the same counts the op registry
// reports (one source), the decode step's plan in the model's launch order, and the matching of
// profiled kernel names to that plan.
#include <gtest/gtest.h>

#include "engine/core/rng.h"
#include "engine/ops/registry.h"
#include "engine/profiling/cost_model.h"

namespace day18 {
namespace {

TEST(CostModel, LinearCountsOperandsOnceAndTwoFlopsPerMultiplyAdd) {
  // M=8, N=4096, K=4096 fp16: (8*4096 + 4096*4096 + 8*4096) * 2 bytes; 2*8*4096*4096 FLOPs.
  const OpCost c = cost::linear(8, 4096, 4096, DType::f16);
  EXPECT_EQ(c.bytes, (8.0 * 4096 + 4096.0 * 4096 + 8.0 * 4096) * 2);
  EXPECT_EQ(c.flops, 2.0 * 8 * 4096 * 4096);
  EXPECT_NEAR(c.intensity(), 7.97, 0.01);  // a decode GEMM: left of any GPU's ridge
}

TEST(CostModel, NormsAndActivationsByHand) {
  EXPECT_EQ(cost::rms_norm(4, 128, DType::f16).bytes, (2.0 * 4 * 128 + 128) * 2);
  EXPECT_EQ(cost::fused_add_rms_norm(4, 128, DType::f32).bytes, (4.0 * 4 * 128 + 128) * 4);
  EXPECT_EQ(cost::silu_and_mul(3, 100, DType::bf16).bytes, 3.0 * 3 * 100 * 2);
  EXPECT_EQ(cost::embedding(5, 64, DType::f16).bytes, 4.0 * 5 + 2.0 * 5 * 64 * 2);
  EXPECT_EQ(cost::cast_to_float(10, DType::f16).bytes, 10.0 * 6);
}

TEST(CostModel, PagedAttentionReadsEveryCachedRowOnce) {
  // 8 sequences x 1024 context, 8 KV heads x 128, fp16: K and V 2 x 8192 rows x 2 KiB; 32 query
  // heads: q read and out written; 4 * 32 heads * 8192 rows * 128 FLOPs.
  const OpCost c = cost::paged_attention(8, 32, 8, 128, 8 * 1024, DType::f16);
  EXPECT_EQ(c.bytes, 2.0 * 8192 * (8 * 128 * 2) + 2.0 * (8 * 32 * 128 * 2));
  EXPECT_EQ(c.flops, 4.0 * 32 * 8192 * 128);
  EXPECT_NEAR(c.intensity(), 4.0, 0.05);  // GQA 4:1: 4 query heads share each K/V byte
}

// The registry's bytes_moved and flops are the cost model's (one source), on small inputs.
TEST(CostModel, TheRegistryReportsTheCostModelsBytesAndFlops) {
  const OpRegistry& reg = OpRegistry::instance();
  Rng rng(1);
  auto check = [&](const char* name, const TensorStore& io, OpCost want) {
    SCOPED_TRACE(name);
    const OpDef& op = reg.find(name);
    ASSERT_TRUE(op.bytes_moved && op.flops);
    EXPECT_EQ(op.bytes_moved(io, Attrs{}), want.bytes);
    EXPECT_EQ(op.flops(io, Attrs{}), want.flops);
  };
  TensorStore norm;
  norm.put_owned("input", rng.normal_tensor({3, 64}, DType::f16, 0, 1));
  norm.put_owned("residual", rng.normal_tensor({3, 64}, DType::f16, 0, 1));
  norm.put_owned("weight", rng.normal_tensor({64}, DType::f16, 1, 0.1));
  check("rms_norm", norm, cost::rms_norm(3, 64, DType::f16));
  check("fused_add_rms_norm", norm, cost::fused_add_rms_norm(3, 64, DType::f16));
  TensorStore act;
  act.put_owned("input", rng.normal_tensor({5, 2 * 48}, DType::bf16, 0, 1));
  check("silu_and_mul", act, cost::silu_and_mul(5, 48, DType::bf16));
  TensorStore lin;
  lin.put_owned("input", rng.normal_tensor({4, 32}, DType::f32, 0, 1));
  lin.put_owned("weight", rng.normal_tensor({16, 32}, DType::f32, 0, 1));
  check("linear", lin, cost::linear(4, 16, 32, DType::f32));
  TensorStore lsm;
  lsm.put_owned("gate_up", rng.normal_tensor({2, 64}, DType::f16, 0, 1));
  lsm.put_owned("weight", rng.normal_tensor({8, 32}, DType::f16, 0, 1));
  check("linear_silu_mul", lsm, cost::linear_silu_mul(2, 8, 32, DType::f16));
}

TEST(CostModel, KernelFamiliesFromKernelNames) {
  EXPECT_EQ(kernel_family("rms_norm_kernel"), "rms_norm");
  EXPECT_EQ(kernel_family("fused_add_rms_norm_kernel"), "fused_add_rms_norm");
  EXPECT_EQ(kernel_family("paged_attention_v2_reduce_kernel"), "paged_attention_v2_reduce");
  EXPECT_EQ(kernel_family("paged_attention_kernel"), "paged_attention");
  EXPECT_EQ(kernel_family("gemv_kernel"), "gemv");
  EXPECT_EQ(kernel_family("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x64x64"), "linear");
  EXPECT_EQ(kernel_family("cutlass_80_tensorop_s16816gemm"), "linear");
  EXPECT_EQ(kernel_family("nvjet_sm90_hsh_64x8_64x16_4x1_v_bz_splitK_TNT"), "linear");
  EXPECT_EQ(kernel_family("void cublasLt::splitKreduce_kernel<32, 16, int, float>"),
            "linear_reduce");  // part of the GEMM before it, never a planned launch
  EXPECT_EQ(kernel_family("calib_fma_loop"), "other");
}

TEST(DecodePlan, FollowsTheModelsLaunchOrder) {
  const ModelConfig c = ModelConfig::preset("llama-1b");
  const auto p = decode_step_launches(c, {8, 1024, DType::f16});
  ASSERT_GT(p.size(), 10u);
  EXPECT_EQ(p[0].op, "embedding");
  EXPECT_EQ(p[1].op, "rms_norm");  // layer 0: no residual to add yet
  EXPECT_EQ(p[1].what, "layer 0 input_layernorm");
  EXPECT_EQ(p[2].what, "layer 0 qkv_proj");
  EXPECT_EQ(p[2].cost.flops, 2.0 * 8 * c.qkv_size() * c.hidden_size);
  EXPECT_EQ(p[3].op, "rotary_and_cache");
  EXPECT_EQ(p[4].op, "paged_attention");
  EXPECT_EQ(p.back().op, "sample");
  // Every layer has the same launches; layers after the first add the residual in the first norm.
  int fused = 0;
  for (const auto& l : p) fused += l.op == "fused_add_rms_norm";
  EXPECT_EQ(fused,
            2 * c.num_layers);  // (num_layers - 1) input norms + num_layers post norms + final
  // The weights are read once per step: the linear launches' bytes cover all of them.
  double weight_bytes = 0;
  for (const auto& l : p)
    if (l.op == "linear") weight_bytes += l.cost.bytes;
  EXPECT_GT(weight_bytes, c.weight_bytes(DType::f16) * 0.9);
}

TEST(DecodePlan, OneTokenUsesTheFusedGemvKernels) {
  const auto p = decode_step_launches(ModelConfig::preset("llama-1b"), {1, 512, DType::f16});
  EXPECT_EQ(p[1].op, "rms_norm_linear");
  EXPECT_EQ(p[1].family, "gemv");
  int silu = 0;
  for (const auto& l : p) silu += l.op == "silu_and_mul";
  EXPECT_EQ(silu, 0);  // folded into the down GEMV
}

TEST(DecodePlan, BadShapesAreErrorsNamingTheFlag) {
  const ModelConfig c = ModelConfig::preset("tiny");
  EXPECT_THROW(decode_step_launches(c, {0, 10, DType::f16}), InvalidArgument);
  EXPECT_THROW(decode_step_launches(c, {1, c.max_position + 1, DType::f16}), InvalidArgument);
}

TEST(MatchPlan, AlignsKernelsInOrderAndSkipsExtras) {
  const std::vector<PlannedLaunch> plan = {{"embedding", "embedding", "e", {}},
                                           {"rms_norm", "rms_norm", "n", {}},
                                           {"linear", "linear", "qkv", {}},
                                           {"rotary_and_cache", "rotary_and_cache", "r", {}},
                                           {"paged_attention", "paged_attention", "a", {}},
                                           {"linear", "linear", "o", {}}};
  const std::vector<std::string> names = {
      "embedding_kernel",        "rms_norm_kernel",        "sm90_xmma_gemm_x",
      "splitKreduce_kernel",  // cuBLAS's extra: skipped
      "rotary_and_cache_kernel", "paged_attention_kernel", "sm90_xmma_gemm_y", "weird_kernel",
      "embedding_kernel"};
  const std::vector<int> m = match_plan(names, plan);
  EXPECT_EQ(m, (std::vector<int>{0, 1, 2, -1, 3, 4, 5, -1, 0}));
}

}  // namespace
}  // namespace day18
