// SiLU-and-mul: CPU oracle by hand, CUDA kernel vs the oracle over random shapes and every
// dtype (vector and scalar paths), extreme gates, and bad arguments.
#include <cmath>
#include <string>

#include "engine/ops/activation.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

constexpr auto& kDtypes = testing::kAllFloatDtypes;

OwnedTensor host_f32(std::initializer_list<int64_t> shape, std::initializer_list<float> values) {
  OwnedTensor t(std::vector<int64_t>(shape), DType::f32, Storage::host);
  int64_t i = 0;
  for (float v : values) t.ptr<float>()[i++] = v;
  return t;
}

// ---- CPU oracle, by hand ----

TEST(SiluAndMulOracle, SiluOfZeroIsZero) {
  OwnedTensor in = host_f32({1, 2}, {0, 5});  // gate 0, up 5
  OwnedTensor out({1, 1}, DType::f32, Storage::host);
  poison(out);
  silu_and_mul(out, in);
  EXPECT_EQ(out.ptr<float>()[0], 0.f);
}

TEST(SiluAndMulOracle, KnownValuesOfSiluTimesUp) {
  // gate [1, -1, 2], up [1, 2, 0.5]: silu(1) = 1/(1+e^-1) = 0.7310586,
  // silu(-1) * 2 = -0.2689414 * 2 = -0.5378828, silu(2) * 0.5 = 1.7615942 * 0.5 = 0.8807971.
  OwnedTensor in = host_f32({1, 6}, {1, -1, 2, 1, 2, 0.5f});
  OwnedTensor out({1, 3}, DType::f32, Storage::host);
  poison(out);
  silu_and_mul(out, in);
  EXPECT_NEAR(out.ptr<float>()[0], 0.7310586, 1e-6);
  EXPECT_NEAR(out.ptr<float>()[1], -0.5378828, 1e-6);
  EXPECT_NEAR(out.ptr<float>()[2], 0.8807971, 1e-6);
}

TEST(SiluAndMulOracle, GateAndUpAreTheTwoHalvesOfEachRow) {
  // Two tokens, d = 2: row t = [g0, g1 | u0, u1]. Large positive gates: silu(x) ~ x.
  OwnedTensor in = host_f32({2, 4}, {20, 30, 2, 3, 40, 50, 0.5f, -1});
  OwnedTensor out({2, 2}, DType::f32, Storage::host);
  silu_and_mul(out, in);
  EXPECT_NEAR(out.ptr<float>()[0], 40, 1e-4);
  EXPECT_NEAR(out.ptr<float>()[1], 90, 1e-4);
  EXPECT_NEAR(out.ptr<float>()[2], 20, 1e-4);
  EXPECT_NEAR(out.ptr<float>()[3], -50, 1e-4);
}

// ---- CUDA kernel vs the oracle ----

void check(Rng& rng, DType dt, int64_t tokens, int64_t d, double gate_std = 2.0) {
  SCOPED_TRACE(::testing::Message()
               << "silu_and_mul " << dtype_name(dt) << " tokens=" << tokens << " d=" << d);
  OwnedTensor in = rng.normal_tensor({tokens, 2 * d}, dt, 0.0, gate_std);
  OwnedTensor want({tokens, d}, dt, Storage::host);
  poison(want);
  silu_and_mul(want, in);
  OwnedTensor din = in.to(Storage::device);
  OwnedTensor out({tokens, d}, dt, Storage::device);
  poison(out);
  silu_and_mul(out, din);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_CLOSE(out.view(), want.view(), default_tolerance(dt));
}

TEST(SiluAndMulKernel, MatchesOracleForEveryDtypeVectorAndScalarPaths) {
  DAY18_REQUIRE_GPU();
  Rng rng(201);
  // Multiples of 8 take 16-byte vectors (fp32: multiples of 4); the rest the scalar path.
  for (DType dt : kDtypes)
    for (int64_t d : {8, 64, 4096, 11008, 14336, 1, 4, 7, 77, 1000, 4100})
      check(rng, dt, rng.randint(1, 9), d);
}

TEST(SiluAndMulKernel, MatchesOracleOverRandomShapes) {
  DAY18_REQUIRE_GPU();
  Rng rng(202);
  for (int i = 0; i < 24; ++i) {
    int64_t d = rng.randint(1, 3000);
    if (i % 2 == 0) d = (d + 7) / 8 * 8;
    check(rng, kDtypes[i % 3], rng.randint(1, 200), d);
  }
}

TEST(SiluAndMulKernel, OneTokenAndManyTokens) {
  DAY18_REQUIRE_GPU();
  Rng rng(203);
  for (DType dt : kDtypes) {
    check(rng, dt, 1, 14336);
    check(rng, dt, 1, 3);
    check(rng, dt, 2048, 128);
  }
}

TEST(SiluAndMulKernel, ExtremeGatesGiveZeroOrIdentityNeverNaN) {
  DAY18_REQUIRE_GPU();
  // gate -1000: exp(1000) = inf, and x / inf = -0 (not NaN); gate +1000: silu(x) = x.
  OwnedTensor in = host_f32({1, 8}, {-1000, 1000, -80, 80, 2, 2, 2, 2});
  OwnedTensor want({1, 4}, DType::f32, Storage::host);
  silu_and_mul(want, in);
  OwnedTensor din = in.to(Storage::device);
  OwnedTensor out({1, 4}, DType::f32, Storage::device);
  poison(out);
  silu_and_mul(out, din);
  OwnedTensor got = testing::to_host(out);
  EXPECT_EQ(got.ptr<float>()[0], 0.f);
  EXPECT_FLOAT_EQ(got.ptr<float>()[1], 2000.f);
  EXPECT_CLOSE(got.view(), want.view(), default_tolerance(DType::f32));
}

// ---- bad arguments ----

TEST(SiluAndMulValidation, RejectsBadArgumentsNamingThem) {
  Rng rng(210);
  OwnedTensor in = rng.normal_tensor({4, 32}, DType::f16, 0, 1);
  OwnedTensor out({4, 16}, DType::f16, Storage::host);
  OwnedTensor in_odd = rng.normal_tensor({4, 33}, DType::f16, 0, 1);
  OwnedTensor out_full({4, 32}, DType::f16, Storage::host);
  OwnedTensor out_f32({4, 16}, DType::f32, Storage::host);
  OwnedTensor in_i64({4, 32}, DType::i64, Storage::host);
  OwnedTensor in_3d = rng.normal_tensor({2, 2, 32}, DType::f16, 0, 1);
  Tensor out_cuda(out.data(), DType::f16, {4, 16}, Device::cuda);
  Tensor in_strided(in.data(), DType::f16, {4, 16}, {32, 2}, Device::cpu);
  OwnedTensor out_8({4, 8}, DType::f16, Storage::host);

  EXPECT_INVALID_NAMING(silu_and_mul(out, in_odd), "input");
  EXPECT_INVALID_NAMING(silu_and_mul(out_full, in), "out");
  EXPECT_INVALID_NAMING(silu_and_mul(out_f32, in), "out");
  EXPECT_INVALID_NAMING(silu_and_mul(out, in_i64), "input");
  EXPECT_INVALID_NAMING(silu_and_mul(out, in_3d), "input");
  EXPECT_INVALID_NAMING(silu_and_mul(out_cuda, in), "out");
  EXPECT_INVALID_NAMING(silu_and_mul(out_8, in_strided), "input");
}

}  // namespace
}  // namespace day18
