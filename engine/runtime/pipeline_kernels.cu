#include "engine/runtime/pipeline_kernels.h"

#include "engine/core/error.h"

namespace day18 {
namespace {

__global__ void feed_sampled_tokens_kernel(int32_t* __restrict__ token_ids,
                                           const int32_t* __restrict__ src_rows,
                                           const int32_t* __restrict__ prev_sampled, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int32_t r = src_rows[i];
  // A row whose logits had a NaN or +inf sampled -1 (kernels/sampling.h): feed 0 instead, so the
  // embedding of this doomed step reads in bounds; the CPU throws when it processes the -1.
  if (r >= 0) token_ids[i] = max(prev_sampled[r], 0);
}

}  // namespace

void feed_sampled_tokens(const Tensor& token_ids, const Tensor& src_rows,
                         const Tensor& prev_sampled, cudaStream_t stream) {
  expect_dtype(token_ids, "token_ids", DType::i32);
  expect_dtype(src_rows, "src_rows", DType::i32);
  expect_dtype(prev_sampled, "prev_sampled", DType::i32);
  expect_shape(src_rows, "src_rows", {token_ids.numel()});
  expect_device(src_rows, "src_rows", token_ids.device());
  expect_device(prev_sampled, "prev_sampled", token_ids.device());
  const int n = static_cast<int>(token_ids.numel());
  if (n == 0) return;
  if (!token_ids.is_cuda()) {
    const int32_t* src = src_rows.ptr<int32_t>();
    const int32_t* prev = prev_sampled.ptr<int32_t>();
    int32_t* out = token_ids.ptr<int32_t>();
    for (int i = 0; i < n; ++i)
      if (src[i] >= 0) {
        DAY18_REQUIRE(src[i] < prev_sampled.numel(), "src_rows[", i, "] = ", src[i],
                      " outside prev_sampled [0, ", prev_sampled.numel(), ")");
        DAY18_REQUIRE(prev[src[i]] >= 0, "the previous step sampled no token for its row ", src[i],
                      " (token ", prev[src[i]],
                      "): its logits held a NaN or +inf, so the model's output is not finite "
                      "(NaN or overflowing weights?)");
        out[i] = prev[src[i]];
      }
    return;
  }
  // One thread per token, 128 per block.
  feed_sampled_tokens_kernel<<<(n + 127) / 128, 128, 0, stream>>>(
      token_ids.ptr<int32_t>(), src_rows.ptr<int32_t>(), prev_sampled.ptr<int32_t>(), n);
  DAY18_CHECK_LAUNCH();
}

}  // namespace day18
