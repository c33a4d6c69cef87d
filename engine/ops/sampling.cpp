#include "engine/ops/sampling.h"

#include <cmath>
#include <limits>

#include "engine/cpu/sampling.h"
#include "engine/kernels/sampling.h"

namespace day18 {
namespace {

void expect_same_device(const Tensor& t, const char* name, const Tensor& logits) {
  expect_device(t, name, logits.device());
}

// logits [batch, vocab], floating, contiguous; returns batch.
int64_t check_logits(const Tensor& logits) {
  expect_defined(logits, "logits");
  expect_dim(logits, "logits", 2);
  expect_dtype_in(logits, "logits", {DType::f32, DType::f16, DType::bf16});
  expect_contiguous(logits, "logits");
  DAY18_REQUIRE(logits.size(1) >= 1, "logits: vocab must be >= 1, got ", logits.describe());
  DAY18_REQUIRE(logits.size(0) <= std::numeric_limits<int32_t>::max() &&
                    logits.size(1) <= std::numeric_limits<int32_t>::max(),
                "logits: batch and vocab must fit in int32, got ", logits.describe());
  return logits.size(0);
}

void check_param(const Tensor& t, const char* name, DType dtype, const Tensor& logits) {
  expect_defined(t, name);
  expect_dtype(t, name, dtype);
  expect_shape(t, name, {logits.size(0)});
  expect_contiguous(t, name);
  expect_same_device(t, name, logits);
}

void check_output(const Tensor& t, const char* name, DType dtype,
                  std::initializer_list<int64_t> shape, const Tensor& logits) {
  expect_defined(t, name);
  expect_dtype(t, name, dtype);
  expect_shape(t, name, shape);
  expect_contiguous(t, name);
  expect_same_device(t, name, logits);
}

// Value ranges, where the values are on the host (see the header for the GPU).
void check_temperature_values(const Tensor& temperature) {
  if (temperature.is_cuda()) return;
  const float* t = temperature.ptr<float>();
  for (int64_t i = 0; i < temperature.numel(); ++i)
    DAY18_REQUIRE(std::isfinite(t[i]) && t[i] >= 0.f, "temperature[", i,
                  "] must be finite and >= 0 (0 = greedy), got ", t[i]);
}

void check_filter_values(const Tensor& top_k, const Tensor& top_p) {
  if (top_k.is_cuda()) return;
  const int32_t* k = top_k.ptr<int32_t>();
  const float* p = top_p.ptr<float>();
  for (int64_t i = 0; i < top_k.numel(); ++i) {
    DAY18_REQUIRE(k[i] >= 0, "top_k[", i, "] must be >= 0 (0 = off), got ", k[i]);
    DAY18_REQUIRE(p[i] > 0.f && p[i] <= 1.f, "top_p[", i, "] must be in (0, 1] (1 = off), got ",
                  p[i]);
  }
}

}  // namespace

void softmax(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
             cudaStream_t stream) {
  const int64_t batch = check_logits(logits);
  check_output(probs, "probs", DType::f32, {batch, logits.size(1)}, logits);
  check_param(temperature, "temperature", DType::f32, logits);
  check_temperature_values(temperature);
  if (logits.is_cuda())
    cuda::softmax(probs, logits, temperature, stream);
  else
    cpu::softmax(probs, logits, temperature, stream);
}

void argmax(const Tensor& tokens, const Tensor& logits, cudaStream_t stream) {
  const int64_t batch = check_logits(logits);
  check_output(tokens, "tokens", DType::i32, {batch}, logits);
  if (logits.is_cuda())
    cuda::argmax(tokens, logits, stream);
  else
    cpu::argmax(tokens, logits, stream);
}

void top_k_top_p_probs(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
                       const Tensor& top_k, const Tensor& top_p, cudaStream_t stream) {
  const int64_t batch = check_logits(logits);
  check_output(probs, "probs", DType::f32, {batch, logits.size(1)}, logits);
  check_param(temperature, "temperature", DType::f32, logits);
  check_param(top_k, "top_k", DType::i32, logits);
  check_param(top_p, "top_p", DType::f32, logits);
  check_temperature_values(temperature);
  check_filter_values(top_k, top_p);
  if (logits.is_cuda())
    cuda::top_k_top_p_probs(probs, logits, temperature, top_k, top_p, stream);
  else
    cpu::top_k_top_p_probs(probs, logits, temperature, top_k, top_p, stream);
}

void sample(const Tensor& tokens, const Tensor& logits, const Tensor& temperature,
            const Tensor& top_k, const Tensor& top_p, const Tensor& seeds, const Tensor& offsets,
            cudaStream_t stream) {
  const int64_t batch = check_logits(logits);
  check_output(tokens, "tokens", DType::i32, {batch}, logits);
  check_param(temperature, "temperature", DType::f32, logits);
  check_param(top_k, "top_k", DType::i32, logits);
  check_param(top_p, "top_p", DType::f32, logits);
  check_param(seeds, "seeds", DType::i64, logits);
  check_param(offsets, "offsets", DType::i64, logits);
  check_temperature_values(temperature);
  check_filter_values(top_k, top_p);
  if (logits.is_cuda())
    cuda::sample(tokens, logits, temperature, top_k, top_p, seeds, offsets, stream);
  else
    cpu::sample(tokens, logits, temperature, top_k, top_p, seeds, offsets, stream);
}

}  // namespace day18
