// Linear (cuBLAS GEMM and the decode GEMV): CPU oracle by hand and against a naive loop, both
// algorithms vs the oracle over decode and prefill shapes and every dtype, K not a multiple of 8,
// true fp32 (no TF32), per-thread handles, CUDA-graph capture, the fused SiLU-and-mul down
// projection (equal to the unfused pair), and bad arguments.
#include <cmath>
#include <string>
#include <thread>

#include "engine/core/memory.h"
#include "engine/kernels/linear.h"
#include "engine/ops/activation.h"
#include "engine/ops/layernorm.h"
#include "engine/ops/linear.h"
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

// Accumulation order differs between cuBLAS (tiles, maybe split K) and the oracle (double).
Tolerance gemm_tolerance(DType dt) {
  return scaled(default_tolerance(dt), 2.0);
}

// ---- CPU oracle ----

TEST(LinearOracle, TinyGemmByHand) {
  // input [[1, 2], [3, 4]], weight rows (out features) [1, 0], [0, 1], [1, 1]:
  // out = input @ weight^T = [[1, 2, 3], [3, 4, 7]].
  OwnedTensor x = host_f32({2, 2}, {1, 2, 3, 4});
  OwnedTensor w = host_f32({3, 2}, {1, 0, 0, 1, 1, 1});
  OwnedTensor out({2, 3}, DType::f32, Storage::host);
  poison(out);
  linear(out, x, w);
  const float want[6] = {1, 2, 3, 3, 4, 7};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out.ptr<float>()[i], want[i]) << "element " << i;
}

TEST(LinearOracle, OneRowTimesNonSquareWeight) {
  // [1, 2, 3] @ [[1, 1, 1], [2, -1, 0.5]]^T = [6, 1.5]
  OwnedTensor x = host_f32({1, 3}, {1, 2, 3});
  OwnedTensor w = host_f32({2, 3}, {1, 1, 1, 2, -1, 0.5f});
  OwnedTensor out({1, 2}, DType::f32, Storage::host);
  linear(out, x, w);
  EXPECT_EQ(out.ptr<float>()[0], 6.f);
  EXPECT_EQ(out.ptr<float>()[1], 1.5f);
}

TEST(LinearOracle, ThreadedBlockedLoopEqualsANaiveTripleLoop) {
  // Big enough for the oracle's worker threads; uneven N for the last block and chunk.
  Rng rng(400);
  const int64_t M = 9, K = 1031, N = 1237;
  OwnedTensor x = rng.normal_tensor({M, K}, DType::bf16, 0, 1);
  OwnedTensor w = rng.normal_tensor({N, K}, DType::bf16, 0, 0.03);
  OwnedTensor out({M, N}, DType::bf16, Storage::host);
  poison(out);
  linear(out, x, w);
  OwnedTensor want({M, N}, DType::bf16, Storage::host);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += host_get(x, m * K + k) * host_get(w, n * K + k);
      host_set(want, m * N + n, s);
    }
  EXPECT_CLOSE(out.view(), want.view(), default_tolerance(DType::bf16));
}

TEST(LinearOracle, EmptyKGivesZeros) {
  OwnedTensor x({2, 0}, DType::f32, Storage::host), w({3, 0}, DType::f32, Storage::host);
  OwnedTensor out({2, 3}, DType::f32, Storage::host);
  poison(out);
  linear(out, x, w);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out.ptr<float>()[i], 0.f);
}

// ---- cuBLAS vs the oracle ----

void check(Rng& rng, DType dt, int64_t M, int64_t K, int64_t N, cudaStream_t stream = nullptr,
           LinearAlgo algo = LinearAlgo::automatic) {
  SCOPED_TRACE(::testing::Message() << "linear " << dtype_name(dt) << " M=" << M << " K=" << K
                                    << " N=" << N << " algo=" << linear_algo_name(algo));
  // Weights ~ N(0, 1/K), like an initialized layer: outputs O(1) whatever K.
  OwnedTensor x = rng.normal_tensor({M, K}, dt, 0, 1);
  OwnedTensor w = rng.normal_tensor({N, K}, dt, 0, 1.0 / std::sqrt(static_cast<double>(K)));
  OwnedTensor want({M, N}, dt, Storage::host);
  poison(want);
  linear(want, x, w);
  OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({M, N}, dt, Storage::device);
  poison(out, stream);
  linear(out, dx, dw, algo, stream);
  DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  EXPECT_CLOSE(out.view(), want.view(), gemm_tolerance(dt));
}

TEST(LinearKernel, DecodeAndPrefillShapesForEveryDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(401);
  for (DType dt : kDtypes) {
    check(rng, dt, 1, 4096, 4096, nullptr, LinearAlgo::cublas);  // cuBLAS at M = 1 too
    check(rng, dt, 1, 4096, 4096);   // M = 1: one decode token (the GEMV under auto)
    check(rng, dt, 16, 4096, 1024);  // small decode batch
    check(rng, dt, 64, 4096, 4096);  // the tour's shape
    check(rng, dt, 200, 512, 1536);  // a prefill-sized M
  }
}

TEST(LinearKernel, MatchesOracleOverRandomShapes) {
  DAY18_REQUIRE_GPU();
  Rng rng(402);
  for (int i = 0; i < 24; ++i) {
    int64_t K = rng.randint(1, 700);
    if (i % 2 == 0) K = (K + 7) / 8 * 8;
    check(rng, kDtypes[i % 3], rng.randint(1, 130), K, rng.randint(1, 700));
  }
}

TEST(LinearKernel, KNotAMultipleOfEightIsSupported) {
  DAY18_REQUIRE_GPU();
  Rng rng(403);
  for (DType dt : kDtypes)
    for (int64_t K : {1, 3, 77, 1001}) check(rng, dt, 5, K, 33);
}

TEST(LinearKernel, EmptyKGivesZeros) {
  DAY18_REQUIRE_GPU();
  OwnedTensor x({2, 0}, DType::f16, Storage::device), w({3, 0}, DType::f16, Storage::device);
  OwnedTensor out({2, 3}, DType::f16, Storage::device);
  poison(out);
  linear(out, x, w);
  OwnedTensor got = testing::to_host(out);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(host_get(got, i), 0.0);
}

TEST(LinearKernel, Fp32IsTrueFp32NotTf32) {
  DAY18_REQUIRE_GPU();
  // x = 1 + 2^-12 needs 12 mantissa bits; TF32 keeps 10 and would round it to 1, giving K. In
  // fp32 every partial sum m * x (m <= 64) is exact, so any summation order gives K * x.
  const int64_t M = 32, K = 64, N = 32;
  const float x_val = 1.f + std::ldexp(1.f, -12);
  OwnedTensor x({M, K}, DType::f32, Storage::host), w({N, K}, DType::f32, Storage::host);
  for (int64_t i = 0; i < M * K; ++i) x.ptr<float>()[i] = x_val;
  for (int64_t i = 0; i < N * K; ++i) w.ptr<float>()[i] = 1.f;
  OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({M, N}, DType::f32, Storage::device);
  poison(out);
  linear(out, dx, dw);
  OwnedTensor got = testing::to_host(out);
  const float want = static_cast<float>(K * static_cast<double>(x_val));  // exact in fp32
  for (int64_t i = 0; i < M * N; ++i)
    ASSERT_EQ(got.ptr<float>()[i], want) << "element " << i << " (TF32 would give " << K << ")";
}

TEST(LinearKernel, EachThreadUsesItsOwnHandleOnItsOwnStream) {
  DAY18_REQUIRE_GPU();
  auto worker = [](uint64_t seed, DType dt) {
    Rng rng(seed);
    Stream s;
    for (int i = 0; i < 3; ++i) check(rng, dt, 8 + i, 256, 384, s);
  };
  std::thread a(worker, 410, DType::f16), b(worker, 411, DType::bf16);
  a.join();
  b.join();
}

TEST(LinearKernel, CanBeCapturedInACudaGraph) {
  DAY18_REQUIRE_GPU();
  Rng rng(412);
  const int64_t M = 4, K = 4096, N = 1024;
  OwnedTensor x = rng.normal_tensor({M, K}, DType::f16, 0, 1);
  OwnedTensor w = rng.normal_tensor({N, K}, DType::f16, 0, 1.0 / 64);
  OwnedTensor want({M, N}, DType::f16, Storage::host);
  linear(want, x, w);
  OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({M, N}, DType::f16, Storage::device);
  Stream s;
  poison(out, s);
  linear(out, dx, dw, s);  // first call on this thread creates the handle (not capturable)
  s.synchronize();
  // Must not allocate or sync inside the capture: the explicit workspace makes sure.
  testing::capture_and_replay(
      s, [&] { linear(out, dx, dw, s); }, [&] { poison(out, s); });
  EXPECT_CLOSE(out.view(), want.view(), gemm_tolerance(DType::f16));
}

// ---- the decode GEMV ----

TEST(LinearGemv, MatchesOracleForEveryTokenCountAndDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(430);
  // Every M of the GEMV (each MAXM bucket and the M < MAXM rows inside one), llama-1b's
  // projections (K = 2048 and 8192 cover whole unrolled groups) and small odd shapes.
  for (DType dt : kDtypes)
    for (int64_t M = 1; M <= cuda::kGemvMaxM; ++M) {
      check(rng, dt, M, 2048, 200, nullptr, LinearAlgo::gemv);
      check(rng, dt, M, 8192, 72, nullptr, LinearAlgo::gemv);
    }
}

TEST(LinearGemv, RaggedKAndNAreHandled) {
  DAY18_REQUIRE_GPU();
  Rng rng(431);
  // K: one 16-byte vector; less than one warp-wide chunk; a chunk plus one vector (the last
  // chunk covers one lane); just under and over a whole unrolled group. N: 1, not a multiple of
  // the 8 rows of a CTA.
  for (DType dt : kDtypes) {
    const int64_t v = 16 / dtype_size(dt), chunk = 32 * v;
    for (int64_t K : {v, 3 * v, chunk + v, 8 * chunk - v, 8 * chunk + 5 * v, 20 * chunk + 7 * v})
      for (int64_t N : {1, 13, 37})
        check(rng, dt, 1 + (K + N) % cuda::kGemvMaxM, K, N, nullptr, LinearAlgo::gemv);
  }
}

TEST(LinearGemv, RandomShapesAgreeWithCublas) {
  DAY18_REQUIRE_GPU();
  Rng rng(432);
  for (int i = 0; i < 12; ++i) {
    const DType dt = kDtypes[i % 3];
    const int64_t v = 16 / dtype_size(dt);
    const int64_t M = rng.randint(1, cuda::kGemvMaxM), K = v * rng.randint(1, 600);
    const int64_t N = rng.randint(1, 900);
    SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " M=" << M << " K=" << K << " N=" << N);
    OwnedTensor x = rng.normal_tensor({M, K}, dt, 0, 1).to(Storage::device);
    OwnedTensor w = rng.normal_tensor({N, K}, dt, 0, 1.0 / std::sqrt(static_cast<double>(K)))
                        .to(Storage::device);
    OwnedTensor a({M, N}, dt, Storage::device), b({M, N}, dt, Storage::device);
    poison(a);
    poison(b);
    linear(a, x, w, LinearAlgo::gemv);
    linear(b, x, w, LinearAlgo::cublas);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_CLOSE(a.view(), b.view(), gemm_tolerance(dt));
  }
}

TEST(LinearGemv, CanBeCapturedInACudaGraph) {
  DAY18_REQUIRE_GPU();
  Rng rng(433);
  const int64_t M = 3, K = 2048, N = 512;
  OwnedTensor x = rng.normal_tensor({M, K}, DType::bf16, 0, 1);
  OwnedTensor w = rng.normal_tensor({N, K}, DType::bf16, 0, 1.0 / 45);
  OwnedTensor want({M, N}, DType::bf16, Storage::host);
  linear(want, x, w);
  OwnedTensor dx = x.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({M, N}, DType::bf16, Storage::device);
  Stream s;
  testing::capture_and_replay(
      s, [&] { linear(out, dx, dw, LinearAlgo::gemv, s); }, [&] { poison(out, s); });
  EXPECT_CLOSE(out.view(), want.view(), gemm_tolerance(DType::bf16));
}

TEST(LinearGemv, ExplicitGemvOutsideItsDomainIsRejectedNamingAlgo) {
  Rng rng(434);
  // Validation happens before any launch, so device-flagged views of host memory suffice.
  OwnedTensor x9({9, 64}, DType::f16, Storage::host), w({16, 64}, DType::f16, Storage::host);
  OwnedTensor out9({9, 16}, DType::f16, Storage::host);
  auto on_cuda = [](const Tensor& t) {
    return Tensor(t.data(), t.dtype(), t.sizes(), Device::cuda);
  };
  EXPECT_INVALID_NAMING(linear(on_cuda(out9), on_cuda(x9), on_cuda(w), LinearAlgo::gemv), "algo");
  OwnedTensor x({2, 60}, DType::f16, Storage::host), w60({16, 60}, DType::f16, Storage::host);
  OwnedTensor out({2, 16}, DType::f16, Storage::host);
  EXPECT_INVALID_NAMING(linear(on_cuda(out), on_cuda(x), on_cuda(w60), LinearAlgo::gemv), "algo");
  EXPECT_INVALID_NAMING(parse_linear_algo("cutlass"), "algo");
  EXPECT_EQ(parse_linear_algo("gemv"), LinearAlgo::gemv);
  EXPECT_STREQ(linear_algo_name(parse_linear_algo("auto")), "auto");
}

// ---- linear_silu_mul: the down projection with SiLU-and-mul folded in ----

void check_silu_mul(Rng& rng, DType dt, int64_t M, int64_t K, int64_t N) {
  SCOPED_TRACE(::testing::Message()
               << "linear_silu_mul " << dtype_name(dt) << " M=" << M << " K=" << K << " N=" << N);
  OwnedTensor gu = rng.normal_tensor({M, 2 * K}, dt, 0, 1.5);
  OwnedTensor w = rng.normal_tensor({N, K}, dt, 0, 1.0 / std::sqrt(static_cast<double>(K)));
  OwnedTensor want({M, N}, dt, Storage::host), scratch_h({M, K}, dt, Storage::host);
  poison(want);
  linear_silu_mul(want, gu, w, scratch_h);
  OwnedTensor dgu = gu.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor fused({M, N}, dt, Storage::device), pair({M, N}, dt, Storage::device);
  OwnedTensor scratch({M, K}, dt, Storage::device);
  poison(fused);
  poison(pair);
  poison(scratch);
  const bool is_fused = linear_silu_mul_is_fused(fused, dgu, dw);
  EXPECT_EQ(is_fused, M <= kLinearAutoGemvMaxM);
  linear_silu_mul(fused, dgu, dw, is_fused ? Tensor() : scratch.view());
  // The unfused pair through the same algorithm.
  silu_and_mul(scratch, dgu);
  linear(pair, scratch, dw, is_fused ? LinearAlgo::gemv : LinearAlgo::automatic);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_CLOSE(fused.view(), want.view(), gemm_tolerance(dt));
  // Bitwise: the fused loads round the activation exactly as silu_and_mul does.
  const Tolerance exact{0, 0};
  EXPECT_CLOSE(fused.view(), pair.view(), exact);
}

TEST(LinearSiluMul, FusedEqualsTheUnfusedPairAndTheOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(440);
  for (DType dt : kDtypes) {
    check_silu_mul(rng, dt, 1, 1024, 96);
    check_silu_mul(rng, dt, 1, 8 * 5 + 2048, 13);  // K not a multiple of the 8-chunk group
  }
  check_silu_mul(rng, DType::f16, 1, 8192, 2048);  // llama-1b's down projection
  check_silu_mul(rng, DType::bf16, 1, 14336, 40);  // llama-8b's (28 KB staged)
}

TEST(LinearSiluMul, LargerBatchesTakeTheUnfusedPathThroughScratch) {
  DAY18_REQUIRE_GPU();
  Rng rng(441);
  check_silu_mul(rng, DType::f32, 2, 512, 64);
  check_silu_mul(rng, DType::bf16, 9, 512, 64);
  check_silu_mul(rng, DType::f16, 64, 1024, 256);
}

TEST(LinearSiluMul, CpuRunsThePairAndChecksItsArguments) {
  Rng rng(442);
  OwnedTensor gu = rng.normal_tensor({2, 8}, DType::f32, 0, 1);
  OwnedTensor w = rng.normal_tensor({3, 4}, DType::f32, 0, 1);
  OwnedTensor out({2, 3}, DType::f32, Storage::host), scratch({2, 4}, DType::f32, Storage::host);
  linear_silu_mul(out, gu, w, scratch);
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t n = 0; n < 3; ++n) {
      double want = 0;
      for (int64_t k = 0; k < 4; ++k) {
        const double g = gu.ptr<float>()[m * 8 + k], u = gu.ptr<float>()[m * 8 + 4 + k];
        want += static_cast<float>(g / (1 + std::exp(-g)) * u) * double(w.ptr<float>()[n * 4 + k]);
      }
      EXPECT_NEAR(out.ptr<float>()[m * 3 + n], want, 1e-5) << "m=" << m << " n=" << n;
    }
  OwnedTensor gu_odd = rng.normal_tensor({2, 7}, DType::f32, 0, 1);
  OwnedTensor w_bad = rng.normal_tensor({3, 8}, DType::f32, 0, 1);
  EXPECT_INVALID_NAMING(linear_silu_mul(out, gu_odd, w, scratch), "gate_up");
  EXPECT_INVALID_NAMING(linear_silu_mul(out, gu, w_bad, scratch), "weight");
  EXPECT_INVALID_NAMING(linear_silu_mul(out, gu, w, Tensor()), "scratch");
}

// ---- rms_norm_linear: the decoder norm fused into the projection after it ----

struct NormLinearCase {
  OwnedTensor x, r, nw, w;
};

NormLinearCase make_norm_linear(Rng& rng, DType dt, int64_t M, int64_t K, int64_t N) {
  return {rng.normal_tensor({M, K}, dt, 0, 1), rng.normal_tensor({M, K}, dt, 0, 1),
          rng.normal_tensor({K}, dt, 1, 0.2),
          rng.normal_tensor({N, K}, dt, 0, 1.0 / std::sqrt(static_cast<double>(K)))};
}

void check_norm_linear(Rng& rng, DType dt, int64_t M, int64_t K, int64_t N, bool with_residual) {
  SCOPED_TRACE(::testing::Message() << "rms_norm_linear " << dtype_name(dt) << " M=" << M
                                    << " K=" << K << " N=" << N << " residual=" << with_residual);
  const double eps = 1e-5;
  NormLinearCase c = make_norm_linear(rng, dt, M, K, N);
  // Oracle: the CPU op (norm ops + linear through scratch).
  OwnedTensor want({M, N}, dt, Storage::host), want_res({M, K}, dt, Storage::host);
  OwnedTensor scratch_h({M, K}, dt, Storage::host);
  poison(want);
  poison(want_res);
  rms_norm_linear(want, with_residual ? want_res.view() : Tensor(), c.x,
                  with_residual ? c.r.view() : Tensor(), c.nw, eps, c.w, scratch_h);
  OwnedTensor x = c.x.to(Storage::device), r = c.r.to(Storage::device);
  OwnedTensor nw = c.nw.to(Storage::device), w = c.w.to(Storage::device);
  OwnedTensor out({M, N}, dt, Storage::device), res({M, K}, dt, Storage::device);
  OwnedTensor scratch({M, K}, dt, Storage::device);
  poison(out);
  poison(res);
  poison(scratch);
  const Tensor res_v = with_residual ? res.view() : Tensor();
  const Tensor r_v = with_residual ? r.view() : Tensor();
  const bool fused = rms_norm_linear_is_fused(out, res_v, x, r_v, nw, w);
  EXPECT_EQ(fused, M == 1);
  rms_norm_linear(out, res_v, x, r_v, nw, eps, w, fused ? Tensor() : scratch.view());
  // The unfused GPU pair: norm ops then the same linear algorithm.
  // Poisoned like every output: cuBLAS writes `pair` with TMA stores, which initcheck does not
  // see, so without the memset the copy back would read "uninitialized" memory.
  OwnedTensor pair({M, N}, dt, Storage::device), res2({M, K}, dt, Storage::device);
  poison(pair);
  copy_tensor(scratch, x);
  if (with_residual) {
    copy_tensor(res2, r);
    fused_add_rms_norm(scratch, res2, nw, eps);
  } else {
    rms_norm(scratch, x, nw, eps);
  }
  linear(pair, scratch, w);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_CLOSE(out.view(), want.view(), gemm_tolerance(dt));
  EXPECT_CLOSE(out.view(), pair.view(), gemm_tolerance(dt));
  if (with_residual) {  // input + residual rounded once: exact on every path
    const Tolerance exact{0, 0};
    EXPECT_CLOSE(res.view(), want_res.view(), exact);
    EXPECT_CLOSE(res.view(), res2.view(), exact);
  }
}

TEST(RmsNormLinear, FusedDecodeTokenMatchesOracleAndUnfusedPair) {
  DAY18_REQUIRE_GPU();
  Rng rng(450);
  for (DType dt : kDtypes)
    for (bool res : {true, false}) {
      check_norm_linear(rng, dt, 1, 2048, 3072, res);  // llama-1b: norm + QKV
      check_norm_linear(rng, dt, 1, 8 * 33, 77, res);  // K with a partial group, odd N
    }
  check_norm_linear(rng, DType::bf16, 1, 4096, 1000, true);  // llama-8b's hidden size
}

TEST(RmsNormLinear, BatchesTakeTheUnfusedPathThroughScratch) {
  DAY18_REQUIRE_GPU();
  Rng rng(451);
  check_norm_linear(rng, DType::f16, 4, 512, 96, true);
  check_norm_linear(rng, DType::f32, 16, 256, 40, false);
}

TEST(RmsNormLinear, CpuMatchesTheNormOpsThenLinearAndChecksArguments) {
  Rng rng(452);
  const DType dt = DType::f32;
  NormLinearCase c = make_norm_linear(rng, dt, 3, 16, 5);
  OwnedTensor out({3, 5}, dt, Storage::host), res({3, 16}, dt, Storage::host);
  OwnedTensor scratch({3, 16}, dt, Storage::host);
  rms_norm_linear(out, res, c.x, c.r, c.nw, 1e-6, c.w, scratch);
  OwnedTensor h = OwnedTensor(c.x.to(Storage::host)), r2 = OwnedTensor(c.r.to(Storage::host));
  fused_add_rms_norm(h, r2, c.nw, 1e-6);
  OwnedTensor want({3, 5}, dt, Storage::host);
  linear(want, h, c.w);
  const Tolerance exact{0, 0};
  EXPECT_CLOSE(out.view(), want.view(), exact);
  EXPECT_CLOSE(res.view(), r2.view(), exact);

  OwnedTensor nw_bad = rng.normal_tensor({15}, dt, 1, 0.1);
  OwnedTensor res_bad({3, 15}, dt, Storage::host);
  EXPECT_INVALID_NAMING(rms_norm_linear(out, res, c.x, c.r, nw_bad, 1e-6, c.w, scratch),
                        "norm_weight");
  EXPECT_INVALID_NAMING(rms_norm_linear(out, res_bad, c.x, c.r, c.nw, 1e-6, c.w, scratch),
                        "residual_out");
  EXPECT_INVALID_NAMING(rms_norm_linear(out, Tensor(), c.x, c.r, c.nw, 1e-6, c.w, scratch),
                        "residual_out");
  EXPECT_INVALID_NAMING(rms_norm_linear(out, c.r, c.x, c.r, c.nw, 1e-6, c.w, scratch),
                        "residual_out");  // in place is not allowed: other CTAs still read it
  EXPECT_INVALID_NAMING(rms_norm_linear(out, res, c.x, c.r, c.nw, 0.0, c.w, scratch), "eps");
  EXPECT_INVALID_NAMING(rms_norm_linear(out, res, c.x, c.r, c.nw, 1e-6, c.w, Tensor()), "scratch");
}

// ---- bad arguments ----

TEST(LinearValidation, RejectsBadArgumentsNamingThem) {
  Rng rng(420);
  OwnedTensor x = rng.normal_tensor({4, 16}, DType::f16, 0, 1);
  OwnedTensor w = rng.normal_tensor({8, 16}, DType::f16, 0, 1);
  OwnedTensor out({4, 8}, DType::f16, Storage::host);
  OwnedTensor w_kn = rng.normal_tensor({16, 8}, DType::f16, 0, 1);  // [K, N]: the wrong layout
  OwnedTensor w_bf16 = rng.normal_tensor({8, 16}, DType::bf16, 0, 1);
  OwnedTensor out_f32({4, 8}, DType::f32, Storage::host);
  OwnedTensor out_t({8, 4}, DType::f16, Storage::host);
  OwnedTensor x_1d = rng.normal_tensor({16}, DType::f16, 0, 1);
  OwnedTensor x_i32({4, 16}, DType::i32, Storage::host);
  Tensor w_cuda(w.data(), DType::f16, {8, 16}, Device::cuda);
  Tensor out_cuda(out.data(), DType::f16, {4, 8}, Device::cuda);
  Tensor x_strided(x.data(), DType::f16, {4, 8}, {16, 2}, Device::cpu);
  OwnedTensor w_8x8 = rng.normal_tensor({8, 8}, DType::f16, 0, 1);

  EXPECT_INVALID_NAMING(linear(out, x, w_kn), "weight");
  EXPECT_INVALID_NAMING(linear(out, x, w_bf16), "weight");
  EXPECT_INVALID_NAMING(linear(out_f32, x, w), "out");
  EXPECT_INVALID_NAMING(linear(out_t, x, w), "out");
  EXPECT_INVALID_NAMING(linear(out, x_1d, w), "input");
  EXPECT_INVALID_NAMING(linear(out, x_i32, w), "input");
  EXPECT_INVALID_NAMING(linear(out, x, w_cuda), "weight");
  EXPECT_INVALID_NAMING(linear(out_cuda, x, w), "out");
  EXPECT_INVALID_NAMING(linear(out, x_strided, w_8x8), "input");
}

}  // namespace
}  // namespace day18
