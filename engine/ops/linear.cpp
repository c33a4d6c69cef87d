#include "engine/ops/linear.h"

#include <limits>

#include "engine/cpu/linear.h"
#include "engine/kernels/linear.h"
#include "engine/ops/activation.h"

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

}  // namespace day18
