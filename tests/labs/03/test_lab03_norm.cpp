// Lab 03, tasks 5-7: RMSNorm and the fused residual add + RMSNorm.
//
//   Task 5 (CPU): hand-computed rows, eps, the fused op's stored residual, the PyTorch goldens
//                 (rms_norm: hidden 128, 64 with eps 0.01, 77, 8192; fused: 128, 1000).
//   Task 6 (GPU): rms_norm kernel: the goldens, then your kernel against your task 5 for hidden
//                 sizes that reach every launch path (registers with 1/2/4 vectors per thread,
//                 the vector loop, the scalar loop), large values, eps, in place, timing.
//   Task 7 (GPU): fused_add_rms_norm kernel: the same, with the residual compared bit for bit.
#include <cmath>

#include "engine/ops/layernorm.h"
#include "tests/labs/03/lab03.h"

namespace day18 {
namespace {

using testing::copy_of;

constexpr auto& kDtypes = testing::kAllFloatDtypes;

OwnedTensor f32(std::vector<int64_t> shape, std::initializer_list<double> v) {
  OwnedTensor t(shape, DType::f32, Storage::host);
  int64_t i = 0;
  for (double x : v) t.ptr<float>()[i++] = static_cast<float>(x);
  return t;
}

// ============================================================ Task 5: the CPU oracle

TEST(Lab03_Task5_NormCpu, ThreeFourWithUnitWeightGivesKnownNumbers) {
  // mean([3^2, 4^2]) = 12.5 and 1/sqrt(12.5) = sqrt(2)/5: out = [3 sqrt(2)/5, 4 sqrt(2)/5].
  OwnedTensor out({1, 2}, DType::f32, Storage::host);
  poison(out);
  rms_norm(out, f32({1, 2}, {3, 4}), f32({2}, {1, 1}), 1e-12);
  LAB_EXPECT_CLOSE(out.view(), f32({1, 2}, {3 * std::sqrt(2.0) / 5, 4 * std::sqrt(2.0) / 5}).view(),
                   (Tolerance{1e-6, 1e-6}));
}

TEST(Lab03_Task5_NormCpu, EachRowIsNormalizedOnItsOwnAndWeightScalesColumns) {
  // Row 0 [1 2 3 4]: mean of squares 7.5. Row 1 [2 2 2 2]: rms 2, so x / rms = 1 and the output
  // is the weight itself.
  OwnedTensor out({2, 4}, DType::f32, Storage::host);
  poison(out);
  rms_norm(out, f32({2, 4}, {1, 2, 3, 4, 2, 2, 2, 2}), f32({4}, {1, 0.5, 2, -1}), 1e-12);
  const double r = 1 / std::sqrt(7.5);
  LAB_EXPECT_CLOSE(out.view(),
                   f32({2, 4}, {1 * r, 2 * r * 0.5, 3 * r * 2, -4 * r, 1, 0.5, 2, -1}).view(),
                   (Tolerance{1e-6, 1e-6}));
}

TEST(Lab03_Task5_NormCpu, EpsIsAddedToTheMeanOfSquares) {
  // x = 1e-3: mean(x^2) = 1e-6, the order of eps. eps 1e-6 -> 1e-3 / sqrt(2e-6) = 0.7071;
  // eps 1e-2 -> 1e-3 / sqrt(1.0001e-2) = 0.0099995.
  OwnedTensor x = f32({1, 2}, {1e-3, 1e-3}), w = f32({2}, {1, 1});
  OwnedTensor out({1, 2}, DType::f32, Storage::host);
  poison(out);
  rms_norm(out, x, w, 1e-6);
  const double a = 1e-3 / std::sqrt(2e-6), b = 1e-3 / std::sqrt(1e-6 + 1e-2);
  LAB_EXPECT_CLOSE(out.view(), f32({1, 2}, {a, a}).view(), (Tolerance{1e-6, 1e-5}));
  poison(out);
  rms_norm(out, x, w, 1e-2);
  LAB_EXPECT_CLOSE(out.view(), f32({1, 2}, {b, b}).view(), (Tolerance{1e-8, 1e-5}));
}

TEST(Lab03_Task5_NormCpu, FusedAddNormalizesTheStoredResidual) {
  // residual = [1, 2] + [2, 2] = [3, 4] is stored; input = rms_norm([3, 4]) * [1, 2].
  OwnedTensor x = f32({1, 2}, {1, 2}), r = f32({1, 2}, {2, 2});
  fused_add_rms_norm(x, r, f32({2}, {1, 2}), 1e-12);
  LAB_EXPECT_CLOSE(r.view(), f32({1, 2}, {3, 4}).view(), Tolerance{});
  LAB_EXPECT_CLOSE(x.view(), f32({1, 2}, {3 * std::sqrt(2.0) / 5, 8 * std::sqrt(2.0) / 5}).view(),
                   (Tolerance{1e-6, 1e-6}));
}

// The goldens: "basic" 4 x 128, "eps" 2 x 64 with eps 0.01, "odd" 3 x 77, "large" 1 x 8192
// (fp16/bf16 only); fused: "basic" 4 x 128, "odd" 3 x 1000.
std::vector<std::string> norm_goldens(DType dt) {
  std::vector<std::string> v = {"rms_norm_basic", "rms_norm_eps", "rms_norm_odd"};
  if (dt != DType::f32) v.push_back("rms_norm_large");
  return v;
}
constexpr const char* kFusedGoldens[] = {"fused_add_rms_norm_basic", "fused_add_rms_norm_odd"};

void check_norm_golden(const std::string& name, DType dt, Storage storage) {
  const lab03::Golden g = lab03::load_golden(name, dt);
  SCOPED_TRACE(g.name);
  OwnedTensor x = g.in("input").to(storage), w = g.in("weight").to(storage);
  OwnedTensor out(g.out("out").sizes(), dt, storage);
  poison(out);
  rms_norm(out, x, w, std::stod(g.attr("eps")));
  if (storage == Storage::device) DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  LAB_EXPECT_CLOSE(out.view(), g.out("out").view(), lab03::golden_tolerance(dt));
}

void check_fused_golden(const std::string& name, DType dt, Storage storage) {
  const lab03::Golden g = lab03::load_golden(name, dt);
  SCOPED_TRACE(g.name);
  OwnedTensor x = g.in("input").to(storage), r = g.in("residual").to(storage);
  OwnedTensor w = g.in("weight").to(storage);
  fused_add_rms_norm(x, r, w, std::stod(g.attr("eps")));
  if (storage == Storage::device) DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  ASSERT_TRUE(lab03::wrote_something({{"input", x, g.in("input"), g.out("input")},
                                      {"residual", r, g.in("residual"), g.out("residual")}}));
  LAB_EXPECT_CLOSE(r.view(), g.out("residual").view(), lab03::golden_tolerance(dt));
  LAB_EXPECT_CLOSE(x.view(), g.out("input").view(), lab03::golden_tolerance(dt));
}

TEST(Lab03_Task5_NormCpu, MatchesPyTorchForEveryCaseAndDtype) {
  for (DType dt : kDtypes) {
    for (const std::string& name : norm_goldens(dt)) check_norm_golden(name, dt, Storage::host);
    for (const char* name : kFusedGoldens) check_fused_golden(name, dt, Storage::host);
  }
}

// ============================================================ Task 6: the rms_norm kernel

// Hidden sizes that reach every launch path (fp16 / bf16; fp32 vectors hold 4, not 8):
//   registers, 1 vector per thread: 8 .. 8192;  2: 16384;  4: 32768;
//   vector loop (more than 4096 vectors): 40000;  scalar loop (not a multiple of 8): 1 3 77 1000
//   4100 (4100 is a multiple of 4: the fp32 vector path).
constexpr int64_t kHiddenSizes[] = {8,     64,    128,   768, 4096, 5120, 8192, 11008,
                                    16384, 32768, 40000, 1,   3,    77,   1000, 4100};

// Your kernel vs your task 5 on the same random input; out poisoned before the launch.
void check_norm(Rng& rng, DType dt, int64_t tokens, int64_t hidden, double eps = 1e-6,
                double scale = 1.0) {
  SCOPED_TRACE(detail::concat("rms_norm ", dtype_name(dt), " tokens ", tokens, " hidden ", hidden,
                              " eps ", eps, " |x| ~ ", scale));
  OwnedTensor x = rng.normal_tensor({tokens, hidden}, dt, 0.0, scale);
  OwnedTensor w = rng.uniform_tensor({hidden}, dt, 0.5, 1.5);
  OwnedTensor want({tokens, hidden}, dt, Storage::host);
  poison(want);
  rms_norm(want, x, w, eps);
  OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({tokens, hidden}, dt, Storage::device);
  poison(out);
  rms_norm(out, dx, dw, eps);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  LAB_EXPECT_CLOSE(out.view(), want.view(), default_tolerance(dt));
  EXPECT_TRUE(testing::bitwise_equal(dx, x)) << "input was modified";
}

TEST(Lab03_Task6_NormKernel, MatchesPyTorchForEveryCaseAndDtype) {
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes)
    for (const std::string& name : norm_goldens(dt)) check_norm_golden(name, dt, Storage::device);
}

TEST(Lab03_Task6_NormKernel, MatchesYourCpuTaskForEveryLaunchPathAndDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(61);
  for (DType dt : kDtypes)
    for (int64_t h : kHiddenSizes) check_norm(rng, dt, rng.randint(1, 9), h);
}

TEST(Lab03_Task6_NormKernel, OneTokenAndThousandsOfTokens) {
  DAY18_REQUIRE_GPU();
  Rng rng(62);
  for (DType dt : kDtypes) {
    check_norm(rng, dt, 1, 4096);
    check_norm(rng, dt, 1, 77);
    check_norm(rng, dt, 3000, 256);
  }
}

TEST(Lab03_Task6_NormKernel, LargeValuesDoNotOverflowTheFp32SumOfSquares) {
  DAY18_REQUIRE_GPU();
  // fp16 values near 200: x^2 ~ 4e4 and the row's sum ~ 3e8, far past fp16's 65504 but nothing
  // for an fp32 sum. bf16 at 1e4: its 8 mantissa bits would drown small terms of a bf16 sum.
  Rng rng(63);
  check_norm(rng, DType::f16, 4, 8192, 1e-6, 200.0);
  check_norm(rng, DType::f16, 4, 1000, 1e-6, 200.0);
  check_norm(rng, DType::bf16, 4, 8192, 1e-6, 1e4);
}

TEST(Lab03_Task6_NormKernel, EpsMattersForSmallInputs) {
  DAY18_REQUIRE_GPU();
  Rng rng(64);
  // Inputs ~1e-3: mean(x^2) ~ 1e-6, the order of eps.
  for (DType dt : kDtypes)
    for (double eps : {1e-6, 1e-2}) {
      check_norm(rng, dt, 4, 4096, eps, 1e-3);
      check_norm(rng, dt, 4, 77, eps, 1e-3);
    }
}

TEST(Lab03_Task6_NormKernel, OutputMayBeTheInputItself) {
  DAY18_REQUIRE_GPU();
  // rms_norm(x, x, w): each thread must read all of its elements before it writes any.
  Rng rng(65);
  for (int64_t hidden : {4096, 77, 40000}) {
    SCOPED_TRACE(detail::concat("hidden ", hidden));
    OwnedTensor x = rng.normal_tensor({5, hidden}, DType::f16, 0, 1);
    OwnedTensor w = rng.uniform_tensor({hidden}, DType::f16, 0.5, 1.5);
    OwnedTensor want({5, hidden}, DType::f16, Storage::host);
    rms_norm(want, x, w, 1e-6);
    OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
    rms_norm(dx, dx, dw, 1e-6);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    ASSERT_TRUE(lab03::wrote_something({{"out (= input)", dx, x, want}}));
    LAB_EXPECT_CLOSE(dx.view(), want.view(), default_tolerance(DType::f16));
  }
}

// Timing, under scripts/lab check on a GPU: fp16, hidden 4096 (Llama-2-7B), a 256-token batch and
// a 4096-token prefill. Bytes: input read, out written, weight read once.
TEST(Lab03_Task6_NormKernel, TimingFor256And4096TokensOfHidden4096) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  Rng rng(66);
  for (int64_t tokens : {256, 4096}) {
    OwnedTensor x = rng.normal_tensor({tokens, 4096}, DType::f16, 0, 1, Storage::device);
    OwnedTensor w = rng.uniform_tensor({4096}, DType::f16, 0.5, 1.5, Storage::device);
    OwnedTensor out({tokens, 4096}, DType::f16, Storage::device);
    Stream s;
    lab::time_and_record(
        detail::concat("rms_norm_t", tokens, "_h4096_f16"), 2.0 * x.nbytes() + w.nbytes(),
        [&](cudaStream_t st) { rms_norm(out, x, w, 1e-6, st); }, s);
  }
}

// ============================================================ Task 7: the fused kernel

// Your kernel vs your task 5 (whose fused op adds, rounds and stores the residual, then calls
// your normalize_row). The residual is one fp32 add rounded once on both sides: exact.
void check_fused(Rng& rng, DType dt, int64_t tokens, int64_t hidden) {
  SCOPED_TRACE(detail::concat("fused_add_rms_norm ", dtype_name(dt), " tokens ", tokens, " hidden ",
                              hidden));
  OwnedTensor x = rng.normal_tensor({tokens, hidden}, dt, 0.0, 1.0);
  OwnedTensor r = rng.normal_tensor({tokens, hidden}, dt, 0.0, 1.0);
  OwnedTensor w = rng.uniform_tensor({hidden}, dt, 0.5, 1.5);
  OwnedTensor dx = x.to(Storage::device), dr = r.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor x0 = copy_of(x, Storage::host), r0 = copy_of(r, Storage::host);
  fused_add_rms_norm(x, r, w, 1e-6);  // your task 5, in place on the host tensors
  fused_add_rms_norm(dx, dr, dw, 1e-6);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  ASSERT_TRUE(lab03::wrote_something({{"input", dx, x0, x}, {"residual", dr, r0, r}}));
  LAB_EXPECT_CLOSE(dr.view(), r.view(), Tolerance{});
  LAB_EXPECT_CLOSE(dx.view(), x.view(), default_tolerance(dt));
}

TEST(Lab03_Task7_FusedAddNormKernel, MatchesPyTorchForEveryCaseAndDtype) {
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes)
    for (const char* name : kFusedGoldens) check_fused_golden(name, dt, Storage::device);
}

TEST(Lab03_Task7_FusedAddNormKernel, MatchesYourCpuTaskForEveryLaunchPathAndDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(71);
  for (DType dt : kDtypes)
    for (int64_t h : kHiddenSizes) check_fused(rng, dt, rng.randint(1, 9), h);
}

TEST(Lab03_Task7_FusedAddNormKernel, OneTokenAndManyTokens) {
  DAY18_REQUIRE_GPU();
  Rng rng(72);
  for (DType dt : kDtypes) {
    check_fused(rng, dt, 1, 8192);
    check_fused(rng, dt, 1, 1000);
    check_fused(rng, dt, 300, 4096);
  }
}

TEST(Lab03_Task7_FusedAddNormKernel, ResidualIsStoredRoundedToTheDtype) {
  DAY18_REQUIRE_GPU();
  // fp16: 2048 + 1 is not representable (the spacing there is 2): the stored residual is 2048,
  // bit for bit what the CPU stores, and what the next layer will read.
  OwnedTensor x({1, 2}, DType::f16, Storage::host), r({1, 2}, DType::f16, Storage::host);
  OwnedTensor w({2}, DType::f16, Storage::host);
  host_set(x, 0, 2048), host_set(x, 1, 1);
  host_set(r, 0, 1), host_set(r, 1, 1);
  host_set(w, 0, 1), host_set(w, 1, 1);
  OwnedTensor dx = x.to(Storage::device), dr = r.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor x0 = copy_of(x, Storage::host), r0 = copy_of(r, Storage::host);
  // residual [2048, 2]: mean of squares (2048^2 + 4) / 2, input = residual / rms.
  const double rms = std::sqrt((2048.0 * 2048.0 + 4.0) / 2.0 + 1e-6);
  OwnedTensor want_r({1, 2}, DType::f16, Storage::host), want_x({1, 2}, DType::f16, Storage::host);
  host_set(want_r, 0, 2048), host_set(want_r, 1, 2);
  host_set(want_x, 0, 2048 / rms), host_set(want_x, 1, 2 / rms);
  fused_add_rms_norm(dx, dr, dw, 1e-6);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  ASSERT_TRUE(lab03::wrote_something({{"input", dx, x0, want_x}, {"residual", dr, r0, want_r}}));
  LAB_EXPECT_CLOSE(dr.view(), want_r.view(), Tolerance{});
  LAB_EXPECT_CLOSE(dx.view(), want_x.view(), default_tolerance(DType::f16));
}

// Timing, under scripts/lab check on a GPU: fp16, hidden 4096, 256 and 4096 tokens. Bytes: input
// and residual read and written once each, weight read once.
TEST(Lab03_Task7_FusedAddNormKernel, TimingFor256And4096TokensOfHidden4096) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  Rng rng(73);
  for (int64_t tokens : {256, 4096}) {
    OwnedTensor x = rng.normal_tensor({tokens, 4096}, DType::f16, 0, 1, Storage::device);
    OwnedTensor r = rng.normal_tensor({tokens, 4096}, DType::f16, 0, 1, Storage::device);
    OwnedTensor w = rng.uniform_tensor({4096}, DType::f16, 0.5, 1.5, Storage::device);
    Stream s;
    lab::time_and_record(
        detail::concat("fused_add_rms_norm_t", tokens, "_h4096_f16"), 4.0 * x.nbytes() + w.nbytes(),
        [&](cudaStream_t st) { fused_add_rms_norm(x, r, w, 1e-6, st); }, s);
  }
}

}  // namespace
}  // namespace day18
