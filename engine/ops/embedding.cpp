#include "engine/ops/embedding.h"

#include "engine/cpu/embedding.h"
#include "engine/kernels/embedding.h"

namespace day18 {

void embedding(const Tensor& out, const Tensor& token_ids, const Tensor& weight, bool check_ids,
               cudaStream_t stream) {
  expect_defined(token_ids, "token_ids");
  expect_defined(weight, "weight");
  expect_defined(out, "out");
  expect_dtype(token_ids, "token_ids", DType::i32);
  expect_dtype_in(weight, "weight", {DType::f32, DType::f16, DType::bf16});
  expect_same_dtype(out, "out", weight, "weight");
  const Device dev = weight.device();
  expect_device(token_ids, "token_ids", dev);
  expect_device(out, "out", dev);
  expect_dim(token_ids, "token_ids", 1);
  expect_dim(weight, "weight", 2);
  const int64_t num_tokens = token_ids.size(0), vocab = weight.size(0), hidden = weight.size(1);
  expect_shape(out, "out", {num_tokens, hidden});
  expect_contiguous(token_ids, "token_ids");
  expect_contiguous(weight, "weight");
  expect_contiguous(out, "out");
  DAY18_REQUIRE(num_tokens < cuda::kNoBadIndex, "token_ids: too many tokens (", num_tokens, ")");
  // Grid limit of the kernel: row chunks of 128 elements in gridDim.y.
  DAY18_REQUIRE(hidden <= int64_t(65535) * 128, "weight: hidden_size ", hidden,
                " is larger than the kernel supports (8388480)");
  DAY18_REQUIRE(vocab > 0, "weight: empty vocabulary (", weight.describe(), ")");

  if (!weight.is_cuda()) return cpu::embedding(out, token_ids, weight);
  if (!check_ids) return cuda::embedding(out, token_ids, weight, nullptr, stream);

  // Checked mode: a stream-ordered 4-byte flag (no device-wide sync from cudaMalloc/cudaFree).
  int32_t* flag = nullptr;
  DAY18_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&flag), sizeof(int32_t), stream));
  int32_t bad = cuda::kNoBadIndex;
  try {
    DAY18_CUDA_CHECK(cudaMemsetAsync(flag, 0x7f, sizeof(int32_t), stream));
    cuda::embedding(out, token_ids, weight, flag, stream);
    DAY18_CUDA_CHECK(cudaMemcpyAsync(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost, stream));
  } catch (...) {
    cudaFreeAsync(flag, stream);  // best effort; the original error is the one to report
    throw;
  }
  DAY18_CUDA_CHECK(cudaFreeAsync(flag, stream));
  DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad == cuda::kNoBadIndex) return;
  int32_t value = 0;
  DAY18_CUDA_CHECK(
      cudaMemcpy(&value, token_ids.ptr<int32_t>() + bad, sizeof value, cudaMemcpyDeviceToHost));
  DAY18_REQUIRE(false, "token_ids: index ", bad, " has value ", value,
                ", outside the vocabulary [0, ", vocab, ") (the CUDA kernel wrote zeros there)");
}

}  // namespace day18
