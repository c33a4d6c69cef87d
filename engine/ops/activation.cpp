#include "engine/ops/activation.h"

#include "engine/cpu/activation.h"
#include "engine/kernels/activation.h"

namespace day18 {

void silu_and_mul(const Tensor& out, const Tensor& input, cudaStream_t stream) {
  expect_defined(input, "input");
  expect_defined(out, "out");
  expect_dtype_in(input, "input", {DType::f32, DType::f16, DType::bf16});
  expect_same_dtype(out, "out", input, "input");
  expect_device(out, "out", input.device());
  expect_dim(input, "input", 2);
  DAY18_REQUIRE(input.size(1) % 2 == 0, "input: last dimension must be 2 * d (gate | up), got ",
                input.describe());
  expect_shape(out, "out", {input.size(0), input.size(1) / 2});
  expect_contiguous(input, "input");
  expect_contiguous(out, "out");
  // Grid limits of the kernel: tokens in gridDim.x, row chunks of 128 elements in gridDim.y.
  DAY18_REQUIRE(input.size(0) <= 0x7fffffff, "input: at most 2^31-1 tokens, got ", input.size(0));
  DAY18_REQUIRE(input.size(1) / 2 <= int64_t(65535) * 128, "input: d = ", input.size(1) / 2,
                " is larger than the kernel supports (8388480)");
  if (input.is_cuda())
    cuda::silu_and_mul(out, input, stream);
  else
    cpu::silu_and_mul(out, input);
}

}  // namespace day18
