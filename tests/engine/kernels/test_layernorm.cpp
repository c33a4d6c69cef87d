// RMSNorm and fused residual-add + RMSNorm: CPU oracle by hand, CUDA kernels vs the oracle over
// random shapes and every dtype, the edge cases of each kernel version, and bad arguments.
#include <cmath>
#include <string>

#include "engine/ops/layernorm.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

constexpr auto& kDtypes = testing::kAllFloatDtypes;

// Throws InvalidArgument whose message contains `needle` (the argument's name).
OwnedTensor host_f32(std::initializer_list<int64_t> shape, std::initializer_list<float> values) {
  OwnedTensor t(std::vector<int64_t>(shape), DType::f32, Storage::host);
  int64_t i = 0;
  for (float v : values) t.ptr<float>()[i++] = v;
  return t;
}

// ---- CPU oracle, by hand ----

TEST(RmsNormOracle, ThreeFourWithUnitWeightGivesKnownNumbers) {
  // mean([3^2, 4^2]) = 12.5; 1/sqrt(12.5) = sqrt(2)/5 -> [3 sqrt(2)/5, 4 sqrt(2)/5].
  OwnedTensor x = host_f32({1, 2}, {3, 4}), w = host_f32({2}, {1, 1});
  OwnedTensor out({1, 2}, DType::f32, Storage::host);
  poison(out);
  rms_norm(out, x, w, 1e-12);
  EXPECT_NEAR(out.ptr<float>()[0], 3 * std::sqrt(2.0) / 5, 1e-6);  // 0.8485281
  EXPECT_NEAR(out.ptr<float>()[1], 4 * std::sqrt(2.0) / 5, 1e-6);  // 1.1313708
}

TEST(RmsNormOracle, EachRowIsNormalizedOnItsOwnAndWeightScalesColumns) {
  // Row 0 [1, 2, 3, 4]: mean of squares 7.5. Row 1 [2, 2, 2, 2]: rms 2, so x / rms = 1.
  OwnedTensor x = host_f32({2, 4}, {1, 2, 3, 4, 2, 2, 2, 2});
  OwnedTensor w = host_f32({4}, {1, 0.5f, 2, -1});
  OwnedTensor out({2, 4}, DType::f32, Storage::host);
  poison(out);
  rms_norm(out, x, w, 1e-12);
  const double r = 1 / std::sqrt(7.5);
  const double want[8] = {1 * r, 2 * r * 0.5, 3 * r * 2, -4 * r, 1, 0.5, 2, -1};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(out.ptr<float>()[i], want[i], 1e-6) << "element " << i;
}

TEST(RmsNormOracle, EpsDominatesForTinyInputs) {
  // x = 1e-3: mean(x^2) = 1e-6. eps 1e-6 -> x / sqrt(2e-6) = 0.7071; eps 1e-2 -> ~0.00995.
  OwnedTensor x = host_f32({1, 2}, {1e-3f, 1e-3f}), w = host_f32({2}, {1, 1});
  OwnedTensor out({1, 2}, DType::f32, Storage::host);
  rms_norm(out, x, w, 1e-6);
  EXPECT_NEAR(out.ptr<float>()[0], 1e-3 / std::sqrt(2e-6), 1e-5);
  rms_norm(out, x, w, 1e-2);
  EXPECT_NEAR(out.ptr<float>()[0], 1e-3 / std::sqrt(1e-6 + 1e-2), 1e-7);
}

TEST(FusedAddRmsNormOracle, UpdatesResidualThenNormalizesItIntoInput) {
  // residual = [1, 2] + [2, 2] = [3, 4]; input = rms_norm([3, 4]) = [0.8485, 1.1314] * weight.
  OwnedTensor x = host_f32({1, 2}, {1, 2}), r = host_f32({1, 2}, {2, 2});
  OwnedTensor w = host_f32({2}, {1, 2});
  fused_add_rms_norm(x, r, w, 1e-12);
  EXPECT_FLOAT_EQ(r.ptr<float>()[0], 3);
  EXPECT_FLOAT_EQ(r.ptr<float>()[1], 4);
  EXPECT_NEAR(x.ptr<float>()[0], 3 * std::sqrt(2.0) / 5, 1e-6);
  EXPECT_NEAR(x.ptr<float>()[1], 2 * 4 * std::sqrt(2.0) / 5, 1e-6);
}

TEST(FusedAddRmsNormOracle, ResidualIsRoundedToTheDtypeBeforeTheNorm) {
  // fp16: 2048 + 1 is not representable (spacing 2 there): the stored residual is 2048, and the
  // norm sees 2048, exactly as the next layer will.
  OwnedTensor x({1, 2}, DType::f16, Storage::host), r({1, 2}, DType::f16, Storage::host);
  OwnedTensor w({2}, DType::f16, Storage::host);
  host_set(x, 0, 2048), host_set(x, 1, 1);
  host_set(r, 0, 1), host_set(r, 1, 1);
  host_set(w, 0, 1), host_set(w, 1, 1);
  fused_add_rms_norm(x, r, w, 1e-6);
  EXPECT_EQ(host_get(r, 0), 2048);
  EXPECT_EQ(host_get(r, 1), 2);
}

// ---- CUDA kernels vs the oracle ----

struct NormCase {
  int64_t tokens, hidden;
};

void check_rms_norm(Rng& rng, DType dt, NormCase c, double eps = 1e-6, double scale = 1.0) {
  SCOPED_TRACE(::testing::Message() << "rms_norm " << dtype_name(dt) << " tokens=" << c.tokens
                                    << " hidden=" << c.hidden << " eps=" << eps);
  OwnedTensor x = rng.normal_tensor({c.tokens, c.hidden}, dt, 0.0, scale);
  OwnedTensor w = rng.uniform_tensor({c.hidden}, dt, 0.5, 1.5);
  OwnedTensor want({c.tokens, c.hidden}, dt, Storage::host);
  poison(want);
  rms_norm(want, x, w, eps);

  OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({c.tokens, c.hidden}, dt, Storage::device);
  poison(out);
  rms_norm(out, dx, dw, eps);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_CLOSE(out.view(), want.view(), default_tolerance(dt));
  EXPECT_CLOSE(dx.view(), x.view(), Tolerance{});  // input untouched
}

void check_fused(Rng& rng, DType dt, NormCase c, double eps = 1e-6) {
  SCOPED_TRACE(::testing::Message() << "fused_add_rms_norm " << dtype_name(dt)
                                    << " tokens=" << c.tokens << " hidden=" << c.hidden);
  OwnedTensor x = rng.normal_tensor({c.tokens, c.hidden}, dt, 0.0, 1.0);
  OwnedTensor r = rng.normal_tensor({c.tokens, c.hidden}, dt, 0.0, 1.0);
  OwnedTensor w = rng.uniform_tensor({c.hidden}, dt, 0.5, 1.5);
  OwnedTensor dx = x.to(Storage::device), dr = r.to(Storage::device), dw = w.to(Storage::device);
  fused_add_rms_norm(x, r, w, eps);  // oracle, in place on the host copies
  fused_add_rms_norm(dx, dr, dw, eps);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  // The residual is an fp32 add rounded once on both sides: it must match exactly.
  EXPECT_CLOSE(dr.view(), r.view(), Tolerance{});
  EXPECT_CLOSE(dx.view(), x.view(), default_tolerance(dt));
}

// Hidden sizes that reach every kernel version: registers with 1, 2 and 4 vectors per thread,
// the vector loop (more than 4096 vectors), and the scalar loop (not a multiple of 8).
constexpr int64_t kHiddenSizes[] = {8,     64,    128,   768, 4096, 5120, 8192, 11008,
                                    16384, 32768, 40000, 1,   3,    77,   1000, 4100};

TEST(RmsNormKernel, MatchesOracleForEveryDtypeAndKernelVersion) {
  DAY18_REQUIRE_GPU();
  Rng rng(101);
  for (DType dt : kDtypes)
    for (int64_t h : kHiddenSizes) check_rms_norm(rng, dt, {rng.randint(1, 9), h});
}

TEST(RmsNormKernel, MatchesOracleOverRandomShapes) {
  DAY18_REQUIRE_GPU();
  Rng rng(102);
  for (int i = 0; i < 24; ++i) {
    const DType dt = kDtypes[i % 3];
    // Half of the cases a multiple of 8 (fast path), half anything.
    int64_t hidden = rng.randint(1, 3000);
    if (i % 2 == 0) hidden = (hidden + 7) / 8 * 8;
    check_rms_norm(rng, dt, {rng.randint(1, 300), hidden});
  }
}

TEST(RmsNormKernel, OneTokenAndManyTokens) {
  DAY18_REQUIRE_GPU();
  Rng rng(103);
  for (DType dt : kDtypes) {
    check_rms_norm(rng, dt, {1, 4096});
    check_rms_norm(rng, dt, {1, 77});
    check_rms_norm(rng, dt, {3000, 256});
  }
}

TEST(RmsNormKernel, EpsChangesTheResultForSmallInputs) {
  DAY18_REQUIRE_GPU();
  Rng rng(104);
  // Inputs ~1e-3: mean(x^2) ~ 1e-6, the same order as eps, so eps visibly matters.
  for (DType dt : kDtypes)
    for (double eps : {1e-6, 1e-5, 1e-2}) check_rms_norm(rng, dt, {4, 4096}, eps, 1e-3);
}

TEST(RmsNormKernel, LargeValuesDoNotOverflowTheSumOfSquares) {
  DAY18_REQUIRE_GPU();
  Rng rng(105);
  // fp16 values near 200: x^2 ~ 4e4, the row sum ~ 3e8 overflows fp16 but not the fp32 sum.
  check_rms_norm(rng, DType::f16, {4, 8192}, 1e-6, 200.0);
  check_rms_norm(rng, DType::bf16, {4, 8192}, 1e-6, 1e4);
}

TEST(RmsNormKernel, InPlaceOutputEqualsInput) {
  DAY18_REQUIRE_GPU();
  Rng rng(106);
  for (int64_t hidden : {4096, 77, 40000}) {
    OwnedTensor x = rng.normal_tensor({5, hidden}, DType::f16, 0, 1);
    OwnedTensor w = rng.uniform_tensor({hidden}, DType::f16, 0.5, 1.5);
    OwnedTensor want({5, hidden}, DType::f16, Storage::host);
    rms_norm(want, x, w, 1e-6);
    OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
    rms_norm(dx, dx, dw, 1e-6);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_CLOSE(dx.view(), want.view(), default_tolerance(DType::f16)) << "hidden " << hidden;
  }
}

TEST(RmsNormKernel, UnalignedPointersTakeTheScalarPath) {
  DAY18_REQUIRE_GPU();
  Rng rng(107);
  // Views that start one element into their buffers: 16-byte loads would fault or misread.
  const int64_t tokens = 3, hidden = 64;
  OwnedTensor x = rng.normal_tensor({tokens * hidden + 1}, DType::bf16, 0, 1);
  OwnedTensor w = rng.uniform_tensor({hidden + 1}, DType::bf16, 0.5, 1.5);
  OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor dout({tokens * hidden + 1}, DType::bf16, Storage::device);
  poison(dout);
  auto at1 = [](const OwnedTensor& t, std::vector<int64_t> shape, Device d) {
    return Tensor(static_cast<__nv_bfloat16*>(t.data()) + 1, DType::bf16, shape, d);
  };
  OwnedTensor want({tokens, hidden}, DType::bf16, Storage::host);
  rms_norm(want, at1(x, {tokens, hidden}, Device::cpu), at1(w, {hidden}, Device::cpu), 1e-6);
  rms_norm(at1(dout, {tokens, hidden}, Device::cuda), at1(dx, {tokens, hidden}, Device::cuda),
           at1(dw, {hidden}, Device::cuda), 1e-6);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  OwnedTensor got = testing::to_host(dout);
  EXPECT_CLOSE(at1(got, {tokens, hidden}, Device::cpu), want.view(),
               default_tolerance(DType::bf16));
}

TEST(FusedAddRmsNormKernel, BothOutputsMatchOracleForEveryDtypeAndKernelVersion) {
  DAY18_REQUIRE_GPU();
  Rng rng(111);
  for (DType dt : kDtypes)
    for (int64_t h : kHiddenSizes) check_fused(rng, dt, {rng.randint(1, 9), h});
}

TEST(FusedAddRmsNormKernel, BothOutputsMatchOracleOverRandomShapes) {
  DAY18_REQUIRE_GPU();
  Rng rng(112);
  for (int i = 0; i < 24; ++i) {
    int64_t hidden = rng.randint(1, 3000);
    if (i % 2 == 0) hidden = (hidden + 7) / 8 * 8;
    check_fused(rng, kDtypes[i % 3], {rng.randint(1, 300), hidden});
  }
}

TEST(FusedAddRmsNormKernel, OneTokenAndLargeHidden) {
  DAY18_REQUIRE_GPU();
  Rng rng(113);
  for (DType dt : kDtypes) {
    check_fused(rng, dt, {1, 8192});
    check_fused(rng, dt, {1, 1000});
    check_fused(rng, dt, {64, 16384});
  }
}

// ---- bad arguments: every check names the argument ----

TEST(RmsNormValidation, RejectsBadArgumentsNamingThem) {
  Rng rng(120);
  OwnedTensor x = rng.normal_tensor({4, 16}, DType::f16, 0, 1);
  OwnedTensor w = rng.uniform_tensor({16}, DType::f16, 0.5, 1.5);
  OwnedTensor out({4, 16}, DType::f16, Storage::host);
  OwnedTensor w_short = rng.uniform_tensor({8}, DType::f16, 0.5, 1.5);
  OwnedTensor out_wide({4, 32}, DType::f16, Storage::host);
  OwnedTensor w_f32 = rng.uniform_tensor({16}, DType::f32, 0.5, 1.5);
  OwnedTensor out_bf16({4, 16}, DType::bf16, Storage::host);
  OwnedTensor x_i32({4, 16}, DType::i32, Storage::host);
  OwnedTensor x_1d = rng.normal_tensor({16}, DType::f16, 0, 1);
  // A view labelled cuda (never dereferenced: validation fails first).
  Tensor w_cuda(w.data(), DType::f16, {16}, Device::cuda);
  Tensor x_strided(x.data(), DType::f16, {4, 8}, {16, 2}, Device::cpu);

  EXPECT_INVALID_NAMING(rms_norm(out, x, w_short, 1e-6), "weight");
  EXPECT_INVALID_NAMING(rms_norm(out_wide, x, w, 1e-6), "out");
  EXPECT_INVALID_NAMING(rms_norm(out, x, w_f32, 1e-6), "weight");
  EXPECT_INVALID_NAMING(rms_norm(out_bf16, x, w, 1e-6), "out");
  EXPECT_INVALID_NAMING(rms_norm(out, x_i32, w, 1e-6), "input");
  EXPECT_INVALID_NAMING(rms_norm(out, x_1d, w, 1e-6), "input");
  EXPECT_INVALID_NAMING(rms_norm(out, x, w_cuda, 1e-6), "weight");
  EXPECT_INVALID_NAMING(rms_norm(out, x_strided, w, 1e-6), "input");
  EXPECT_INVALID_NAMING(rms_norm(out, x, w, 0.0), "eps");
  EXPECT_INVALID_NAMING(rms_norm(out, x, w, -1e-6), "eps");
  EXPECT_INVALID_NAMING(rms_norm(out, x, w, std::nan("")), "eps");
}

TEST(FusedAddRmsNormValidation, RejectsBadArgumentsNamingThem) {
  Rng rng(121);
  OwnedTensor x = rng.normal_tensor({4, 16}, DType::bf16, 0, 1);
  OwnedTensor r = rng.normal_tensor({4, 16}, DType::bf16, 0, 1);
  OwnedTensor w = rng.uniform_tensor({16}, DType::bf16, 0.5, 1.5);
  OwnedTensor r_short = rng.normal_tensor({3, 16}, DType::bf16, 0, 1);
  OwnedTensor r_f16 = rng.normal_tensor({4, 16}, DType::f16, 0, 1);
  Tensor r_cuda(r.data(), DType::bf16, {4, 16}, Device::cuda);

  EXPECT_INVALID_NAMING(fused_add_rms_norm(x, r_short, w, 1e-6), "residual");
  EXPECT_INVALID_NAMING(fused_add_rms_norm(x, r_f16, w, 1e-6), "residual");
  EXPECT_INVALID_NAMING(fused_add_rms_norm(x, r_cuda, w, 1e-6), "residual");
  EXPECT_INVALID_NAMING(fused_add_rms_norm(x, x, w, 1e-6), "residual");
  EXPECT_INVALID_NAMING(fused_add_rms_norm(x, r, w, -1.0), "eps");
}

}  // namespace
}  // namespace day18
