// The tuning experiments on the GPU (skip without one): each configuration really launches with
// its configuration (the profiler sees its block size; occupancy differs; the output matches
// the oracle), and a --quick run of each experiment writes JSON that reads back.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "engine/core/compare.h"
#include "engine/core/device.h"
#include "engine/kernels/layernorm.h"
#include "engine/kernels/paged_attention.h"
#include "engine/tuning/decide.h"
#include "engine/tuning/gpu_support.h"
#include "engine/tuning/kernel_inputs.h"
#include "engine/tuning/sweep.h"
#include "tests/support/test_support.h"

namespace day18::tuning {
namespace {

TEST(TuneGpu, PagedAttentionThreadCountsReallyLaunchAndMatchTheOracle) {
  DAY18_REQUIRE_GPU();
  AttentionInputs a = make_attention_inputs(4, 300, 32, 8, 128, 16, DType::f16, 7);
  std::set<std::string> launches;
  std::set<int> blocks_per_sm;
  for (int t : cuda::kPagedAttentionThreadCounts)
    for (int hpb : {1, 2, 4}) {
      poison(a.out);
      const std::string rec = record_launches([&] {
        cuda::paged_attention_v1_configured(a.out, a.query, a.key_cache, a.value_cache,
                                            a.block_tables, a.seq_idx, a.context_lens, a.scale, 300,
                                            t, hpb, nullptr);
        DAY18_CUDA_CHECK(cudaDeviceSynchronize());
      });
      const CheckResult c = compare_output(a.out, a.expected, default_tolerance(DType::f16));
      EXPECT_TRUE(c.ok) << t << " threads, " << hpb << " heads/block: " << c.report;
      if (!rec.empty()) {
        EXPECT_NE(rec.find("block(" + std::to_string(t) + ",1,1)"), std::string::npos)
            << "the profiler saw: " << rec;
        EXPECT_NE(rec.find("grid(" + std::to_string(4 * 32 / hpb) + ",1,1)"), std::string::npos)
            << rec;
        launches.insert(rec);
      }
      const size_t smem = cuda::paged_attention_shared_bytes(hpb, 128, t, 300);
      const Occupancy o = occupancy_of(
          cuda::paged_attention_kernel_function(DType::f16, 128, t, smem), t, smem, 4 * 32 / hpb);
      EXPECT_GT(o.blocks_per_sm, 0);
      EXPECT_GT(o.registers, 0);
      blocks_per_sm.insert(o.blocks_per_sm);
    }
  if (!launches.empty()) {
    EXPECT_EQ(launches.size(), 12u) << "12 configurations, 12 launches";
  }
  EXPECT_GT(blocks_per_sm.size(), 1u) << "thread counts change the blocks per SM";
}

TEST(TuneGpu, PagedAttentionV2PartitionsAndKvBlockSizesMatchTheOracle) {
  DAY18_REQUIRE_GPU();
  for (int64_t bs : {8, 16, 32}) {
    AttentionInputs a = make_attention_inputs(2, 1000, 32, 8, 128, bs, DType::f16, 9);
    for (int part : {64, 256, 512}) {
      const int parts = (1000 + part - 1) / part;
      OwnedTensor es({2, 32, parts}, DType::f32, Storage::device),
          ml({2, 32, parts}, DType::f32, Storage::device),
          tmp({2, 32, parts, 128}, DType::f32, Storage::device);
      poison(a.out);
      for (const OwnedTensor* t : {&es, &ml, &tmp}) poison(*t);  // a partition nobody wrote: NaN
      cuda::paged_attention_v2_configured(a.out, es, ml, tmp, a.query, a.key_cache, a.value_cache,
                                          a.block_tables, a.seq_idx, a.context_lens, a.scale, 1000,
                                          part, 128, 0, nullptr);
      DAY18_CUDA_CHECK(cudaDeviceSynchronize());
      const CheckResult c = compare_output(a.out, a.expected, default_tolerance(DType::f16));
      EXPECT_TRUE(c.ok) << "KV block " << bs << ", partition " << part << ": " << c.report;
    }
  }
}

TEST(TuneGpu, ConfiguredLaunchersRejectWhatIsNotCompiled) {
  DAY18_REQUIRE_GPU();
  AttentionInputs a = make_attention_inputs(1, 64, 32, 8, 128, 16, DType::f32, 3);
  EXPECT_INVALID_NAMING(cuda::paged_attention_v1_configured(
                            a.out, a.query, a.key_cache, a.value_cache, a.block_tables, a.seq_idx,
                            a.context_lens, a.scale, 64, 256, 0, nullptr),
                        "num_threads 256");
  EXPECT_INVALID_NAMING(cuda::paged_attention_v1_configured(
                            a.out, a.query, a.key_cache, a.value_cache, a.block_tables, a.seq_idx,
                            a.context_lens, a.scale, 64, 128, 3, nullptr),
                        "heads_per_block 3");
  EXPECT_EQ(cuda::paged_attention_kernel_function(DType::f32, 128, 512, 0), nullptr);
}

TEST(TuneGpu, RmsNormThreadOverridesLaunchThatManyThreadsAndMatch) {
  DAY18_REQUIRE_GPU();
  NormInputs n = make_norm_inputs(64, 4096, DType::f16, 5);
  std::set<int> vpts;
  for (int t : {64, 128, 256, 512, 1024}) {
    poison(n.out);
    const std::string rec = record_launches([&] {
      cuda::rms_norm_with_threads(n.out, n.input0, n.weight, n.eps, t, nullptr);
      DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    });
    const CheckResult c = compare_output(n.out, n.expected_out, default_tolerance(DType::f16));
    EXPECT_TRUE(c.ok) << t << " threads: " << c.report;
    if (!rec.empty()) {
      EXPECT_NE(rec.find("block(" + std::to_string(t) + ",1,1)"), std::string::npos) << rec;
    }
    const cuda::RmsNormLaunch l = cuda::rms_norm_launch(DType::f16, 4096, false, t);
    EXPECT_EQ(l.threads, t);
    vpts.insert(l.vectors_per_thread);
    // fused, in place, from the pristine inputs
    copy_device(n.input, n.input0, nullptr);
    copy_device(n.residual, n.residual0, nullptr);
    cuda::fused_add_rms_norm_with_threads(n.input, n.residual, n.weight, n.eps, t, nullptr);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(compare_output(n.input, n.expected_fused, default_tolerance(DType::f16)).ok) << t;
    EXPECT_TRUE(compare_output(n.residual, n.expected_residual, default_tolerance(DType::f16)).ok);
  }
  EXPECT_EQ(vpts, (std::set<int>{0, 1, 2, 4})) << "64 threads: loop; 128: 4 vec; 256: 2; 512+: 1";
  EXPECT_INVALID_NAMING(cuda::rms_norm_with_threads(n.out, n.input0, n.weight, n.eps, 100, nullptr),
                        "threads 100");
  // The automatic choice: rms_norm keeps blocks within 256 threads (512 vectors of fp16 -> 256
  // threads, two vectors each); the fused op takes one vector per thread (512 threads).
  const cuda::RmsNormLaunch a = cuda::rms_norm_launch(DType::f16, 4096, false, 0);
  EXPECT_EQ(a.threads, 256);
  EXPECT_EQ(a.vectors_per_thread, 2);
  const cuda::RmsNormLaunch f = cuda::rms_norm_launch(DType::f16, 4096, true, 0);
  EXPECT_EQ(f.threads, 512);
  EXPECT_EQ(f.vectors_per_thread, 1);
  // Hidden 8192 (1024 vectors): 4 per thread in 256 threads; 16384: 4 per thread in 512.
  EXPECT_EQ(cuda::rms_norm_launch(DType::f16, 8192, false, 0).threads, 256);
  EXPECT_EQ(cuda::rms_norm_launch(DType::f16, 8192, false, 0).vectors_per_thread, 4);
  EXPECT_EQ(cuda::rms_norm_launch(DType::bf16, 16384, false, 0).threads, 512);
  EXPECT_EQ(cuda::rms_norm_launch(DType::f16, 8192, true, 0).threads, 1024);
}

// A --quick run of each experiment (a short budget), written and read back.
void quick_run(const char* name, Experiment (*run)(const RunOptions&)) {
  RunOptions o;
  o.quick = true;
  o.budget_s = 10;
  o.command = std::string("test ") + name;
  const Experiment e = run(o);
  const std::string path = ::testing::TempDir() + "/tune_" + name + ".json";
  write_experiment(path, e);
  const Experiment r = read_experiment(path);
  EXPECT_FALSE(r.groups.empty());
  for (const Group& g : r.groups) {
    EXPECT_GE(g.best, 0) << g.name;
    for (const Point& p : g.points) EXPECT_TRUE(p.correct) << g.name << ": " << p.label;
    const ParameterCheck c = check_parameter_reached(g);
    EXPECT_TRUE(c.reached) << g.name << ": " << c.why;
  }
  EXPECT_GT(r.roof.p_gbps, 0);
  std::filesystem::remove(path);
}

TEST(TuneGpu, QuickBlockSizeWritesValidJson) {
  DAY18_REQUIRE_GPU();
  quick_run("block_size", run_block_size);
}
TEST(TuneGpu, QuickBatchSizeWritesValidJson) {
  DAY18_REQUIRE_GPU();
  quick_run("batch_size", run_batch_size);
}
TEST(TuneGpu, QuickPrecisionWritesValidJson) {
  DAY18_REQUIRE_GPU();
  quick_run("precision", run_precision);
}

}  // namespace
}  // namespace day18::tuning
