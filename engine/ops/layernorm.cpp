#include "engine/ops/layernorm.h"

#include <cmath>

#include "engine/cpu/layernorm.h"
#include "engine/kernels/layernorm.h"

namespace day18 {
namespace {

void expect_norm_tensor(const Tensor& t, const char* name, Device device, DType dtype) {
  expect_defined(t, name);
  expect_device(t, name, device);
  expect_dtype_in(t, name, {DType::f32, DType::f16, DType::bf16});
  if (t.dtype() != dtype)
    DAY18_REQUIRE(false, name, ": dtype ", dtype_name(t.dtype()), " does not match input (",
                  dtype_name(dtype), ")");
  expect_contiguous(t, name);
}

// Checks shared by both ops; returns nothing, throws naming the first bad argument.
void validate(const Tensor& input, const char* input_name, const Tensor& other,
              const char* other_name, const Tensor& weight, double eps) {
  expect_defined(input, input_name);
  expect_dtype_in(input, input_name, {DType::f32, DType::f16, DType::bf16});
  expect_dim(input, input_name, 2);
  const Device dev = input.device();
  expect_norm_tensor(input, input_name, dev, input.dtype());
  expect_norm_tensor(other, other_name, dev, input.dtype());
  expect_norm_tensor(weight, "weight", dev, input.dtype());
  const int64_t num_tokens = input.size(0), hidden = input.size(1);
  expect_shape(other, other_name, {num_tokens, hidden});
  expect_shape(weight, "weight", {hidden});
  DAY18_REQUIRE(hidden > 0, input_name, ": hidden_size must be > 0, got ", input.describe());
  DAY18_REQUIRE(num_tokens <= 0x7fffffff, input_name, ": at most 2^31-1 tokens, got ", num_tokens);
  DAY18_REQUIRE(hidden <= 0x7fffffff, input_name, ": hidden_size too large: ", hidden);
  DAY18_REQUIRE(std::isfinite(eps) && eps > 0, "eps: must be > 0 and finite, got ", eps);
}

}  // namespace

void rms_norm(const Tensor& out, const Tensor& input, const Tensor& weight, double eps,
              cudaStream_t stream) {
  validate(input, "input", out, "out", weight, eps);
  if (input.is_cuda())
    cuda::rms_norm(out, input, weight, eps, stream);
  else
    cpu::rms_norm(out, input, weight, eps);
}

void fused_add_rms_norm(const Tensor& input, const Tensor& residual, const Tensor& weight,
                        double eps, cudaStream_t stream) {
  validate(input, "input", residual, "residual", weight, eps);
  DAY18_REQUIRE(input.data() != residual.data() || input.numel() == 0,
                "residual: must not be the same buffer as input");
  if (input.is_cuda())
    cuda::fused_add_rms_norm(input, residual, weight, eps, stream);
  else
    cpu::fused_add_rms_norm(input, residual, weight, eps);
}

}  // namespace day18
