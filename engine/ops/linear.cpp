#include "engine/ops/linear.h"

#include <cmath>
#include <limits>
#include <utility>

#include "engine/core/memory.h"
#include "engine/cpu/linear.h"
#include "engine/kernels/linear.h"
#include "engine/ops/activation.h"
#include "engine/ops/layernorm.h"

namespace day18 {
namespace {

// Shapes [M, K] x [N, K] -> [M, N]; `input_name` is "input" or "gate_up" (whose K is halved by
// the caller before this check).
void check_gemm(const Tensor& out, const Tensor& input, const char* input_name,
                const Tensor& weight, int64_t K) {
  expect_defined(input, input_name);
  expect_defined(weight, "weight");
  expect_defined(out, "out");
  expect_dtype_in(input, input_name, {DType::f32, DType::f16, DType::bf16});
  expect_same_dtype(weight, "weight", input, input_name);
  expect_same_dtype(out, "out", input, input_name);
  expect_device(weight, "weight", input.device());
  expect_device(out, "out", input.device());
  expect_dim(weight, "weight", 2);
  const int64_t M = input.size(0), N = weight.size(0);
  DAY18_REQUIRE(weight.size(1) == K, "weight: expected [N, ", K,
                "] (nn.Linear layout [out_features, in_features], K = ", input_name, " width",
                std::string_view(input_name) == "gate_up" ? " / 2" : "", "), got ",
                weight.describe());
  expect_shape(out, "out", {M, N});
  expect_contiguous(input, input_name);
  expect_contiguous(weight, "weight");
  expect_contiguous(out, "out");
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  DAY18_REQUIRE(M <= kMax && N <= kMax && input.size(1) <= kMax, input_name,
                "/weight: GEMM sizes must be < 2^31 (M=", M, ", N=", N, ", K=", K, ")");
}

}  // namespace

LinearAlgo parse_linear_algo(std::string_view s) {
  if (s == "auto") return LinearAlgo::automatic;
  if (s == "cublas") return LinearAlgo::cublas;
  if (s == "gemv") return LinearAlgo::gemv;
  DAY18_REQUIRE(false, "algo: expected auto, cublas or gemv, got '", s, "'");
}

const char* linear_algo_name(LinearAlgo a) {
  switch (a) {
    case LinearAlgo::automatic:
      return "auto";
    case LinearAlgo::cublas:
      return "cublas";
    case LinearAlgo::gemv:
      return "gemv";
  }
  return "?";
}

void linear(const Tensor& out, const Tensor& input, const Tensor& weight, cudaStream_t stream) {
  linear(out, input, weight, LinearAlgo::automatic, stream);
}

void linear(const Tensor& out, const Tensor& input, const Tensor& weight, LinearAlgo algo,
            cudaStream_t stream) {
  expect_dim(input, "input", 2);
  check_gemm(out, input, "input", weight, input.size(1));
  if (!input.is_cuda()) return cpu::linear(out, input, weight);
  const int64_t M = input.size(0);
  const bool gemv_ok = cuda::gemv_supported(out, input, weight);
  if (algo == LinearAlgo::gemv)
    DAY18_REQUIRE(gemv_ok, "algo = gemv needs 1 <= M <= ", cuda::kGemvMaxM,
                  ", K a positive multiple of 16 bytes of ", dtype_name(input.dtype()),
                  " and 16-byte aligned tensors; got M = ", M, ", K = ", input.size(1));
  const bool use_gemv = algo == LinearAlgo::gemv ||
                        (algo == LinearAlgo::automatic && gemv_ok && M <= kLinearAutoGemvMaxM);
  if (use_gemv)
    cuda::gemv(out, input, weight, stream);
  else
    cuda::linear_cublas(out, input, weight, stream);
}

bool linear_silu_mul_is_fused(const Tensor& out, const Tensor& gate_up, const Tensor& weight) {
  return gate_up.is_cuda() && gate_up.size(0) <= kLinearAutoGemvMaxM &&
         cuda::gemv_silu_mul_supported(out, gate_up, weight);
}

void linear_silu_mul(const Tensor& out, const Tensor& gate_up, const Tensor& weight,
                     const Tensor& scratch, cudaStream_t stream) {
  expect_dim(gate_up, "gate_up", 2);
  DAY18_REQUIRE(gate_up.size(1) % 2 == 0, "gate_up: expected [M, 2K] (gate | up), got ",
                gate_up.describe(), " (odd width)");
  check_gemm(out, gate_up, "gate_up", weight, gate_up.size(1) / 2);
  if (linear_silu_mul_is_fused(out, gate_up, weight))
    return cuda::gemv_silu_mul(out, gate_up, weight, stream);
  DAY18_REQUIRE(scratch.defined(),
                "scratch: required when linear_silu_mul is not fused (M = ", gate_up.size(0),
                ", device ", device_name(gate_up.device()), "); pass a [M, K] tensor");
  silu_and_mul(scratch, gate_up, stream);  // validates scratch
  linear(out, scratch, weight, stream);
}

namespace {

bool overlaps(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.nbytes() == 0 || b.nbytes() == 0) return false;
  const auto* pa = static_cast<const char*>(a.data());
  const auto* pb = static_cast<const char*>(b.data());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

void check_rms_norm_linear(const Tensor& out, const Tensor& residual_out, const Tensor& input,
                           const Tensor& residual, const Tensor& norm_weight, double eps,
                           const Tensor& weight) {
  expect_dim(input, "input", 2);
  check_gemm(out, input, "input", weight, input.size(1));
  const int64_t M = input.size(0), K = input.size(1);
  expect_defined(norm_weight, "norm_weight");
  expect_same_dtype(norm_weight, "norm_weight", input, "input");
  expect_device(norm_weight, "norm_weight", input.device());
  expect_shape(norm_weight, "norm_weight", {K});
  expect_contiguous(norm_weight, "norm_weight");
  DAY18_REQUIRE(std::isfinite(eps) && eps > 0, "eps must be > 0 and finite, got ", eps);
  DAY18_REQUIRE(residual.defined() == residual_out.defined(),
                "residual_out: defined exactly when residual is (residual ",
                residual.defined() ? "given" : "undefined", ", residual_out ",
                residual_out.defined() ? "given" : "undefined", ")");
  if (!residual.defined()) return;
  for (auto [t, name] : {std::pair{&residual, "residual"}, {&residual_out, "residual_out"}}) {
    expect_same_dtype(*t, name, input, "input");
    expect_device(*t, name, input.device());
    expect_shape(*t, name, {M, K});
    expect_contiguous(*t, name);
  }
  DAY18_REQUIRE(!overlaps(residual_out, input) && !overlaps(residual_out, residual),
                "residual_out must not overlap input or residual (", residual_out.describe(),
                "); use another buffer for the updated residual stream");
}

}  // namespace

bool rms_norm_linear_is_fused(const Tensor& out, const Tensor& residual_out, const Tensor& input,
                              const Tensor& residual, const Tensor& norm_weight,
                              const Tensor& weight) {
  return input.is_cuda() && input.size(0) <= kLinearAutoGemvMaxM &&
         cuda::gemv_rms_norm_supported(out, input, weight, residual, norm_weight, residual_out);
}

void rms_norm_linear(const Tensor& out, const Tensor& residual_out, const Tensor& input,
                     const Tensor& residual, const Tensor& norm_weight, double eps,
                     const Tensor& weight, const Tensor& scratch, cudaStream_t stream) {
  check_rms_norm_linear(out, residual_out, input, residual, norm_weight, eps, weight);
  if (rms_norm_linear_is_fused(out, residual_out, input, residual, norm_weight, weight))
    return cuda::gemv_rms_norm(out, residual_out, input, residual, norm_weight,
                               static_cast<float>(eps), weight, stream);
  DAY18_REQUIRE(scratch.defined(),
                "scratch: required when rms_norm_linear is not fused (M = ", input.size(0),
                ", device ", device_name(input.device()), "); pass a [M, K] tensor");
  if (residual.defined()) {  // fused_add_rms_norm works in place: on copies
    copy_tensor(scratch, input, stream, /*synchronous=*/false);  // validates scratch
    copy_tensor(residual_out, residual, stream, /*synchronous=*/false);
    fused_add_rms_norm(scratch, residual_out, norm_weight, eps, stream);
  } else {
    rms_norm(scratch, input, norm_weight, eps, stream);
  }
  linear(out, scratch, weight, stream);
}

}  // namespace day18
