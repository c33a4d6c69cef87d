#include "engine/ops/linear.h"

#include <limits>

#include "engine/cpu/linear.h"
#include "engine/kernels/linear.h"

namespace day18 {

void linear(const Tensor& out, const Tensor& input, const Tensor& weight, cudaStream_t stream) {
  expect_defined(input, "input");
  expect_defined(weight, "weight");
  expect_defined(out, "out");
  expect_dtype_in(input, "input", {DType::f32, DType::f16, DType::bf16});
  expect_same_dtype(weight, "weight", input, "input");
  expect_same_dtype(out, "out", input, "input");
  expect_device(weight, "weight", input.device());
  expect_device(out, "out", input.device());
  expect_dim(input, "input", 2);
  expect_dim(weight, "weight", 2);
  const int64_t M = input.size(0), K = input.size(1), N = weight.size(0);
  DAY18_REQUIRE(weight.size(1) == K, "weight: expected [N, ", K,
                "] (nn.Linear layout [out_features, in_features], K = input.size(1)), got ",
                weight.describe());
  expect_shape(out, "out", {M, N});
  expect_contiguous(input, "input");
  expect_contiguous(weight, "weight");
  expect_contiguous(out, "out");
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  DAY18_REQUIRE(M <= kMax && N <= kMax && K <= kMax,
                "input/weight: GEMM sizes must be < 2^31 (M=", M, ", N=", N, ", K=", K, ")");
  if (input.is_cuda())
    cuda::linear(out, input, weight, stream);
  else
    cpu::linear(out, input, weight);
}

}  // namespace day18
