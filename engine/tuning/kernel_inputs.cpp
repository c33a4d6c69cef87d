// Inputs and oracle outputs of the swept kernels (kernel_inputs.h).
#include "engine/tuning/kernel_inputs.h"

#include <cmath>
#include <numeric>

#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/cpu/layernorm.h"
#include "engine/cpu/paged_attention.h"
#include "engine/runtime/model_kernels.h"

namespace day18::tuning {

AttentionInputs make_attention_inputs(int64_t batch, int64_t ctx, int64_t num_heads,
                                      int64_t num_kv_heads, int64_t head_size, int64_t block_size,
                                      DType dtype, uint64_t seed) {
  AttentionInputs a;
  a.batch = batch;
  a.ctx = ctx;
  a.num_heads = num_heads;
  a.num_kv_heads = num_kv_heads;
  a.head_size = head_size;
  a.block_size = block_size;
  a.dtype = dtype;
  a.scale = 1.f / std::sqrt(static_cast<float>(head_size));
  const int64_t blocks_per_seq = (ctx + block_size - 1) / block_size;
  const int64_t num_blocks = batch * blocks_per_seq;
  a.query = OwnedTensor({batch, num_heads, head_size}, dtype, Storage::device);
  a.out = OwnedTensor({batch, num_heads, head_size}, dtype, Storage::device);
  a.key_cache =
      OwnedTensor({num_blocks, num_kv_heads, block_size, head_size}, dtype, Storage::device);
  a.value_cache =
      OwnedTensor({num_blocks, num_kv_heads, block_size, head_size}, dtype, Storage::device);
  fill_random_normal(a.query, seed, 1, 0.0, 1.0);
  fill_random_normal(a.key_cache, seed, 2, 0.0, 1.0);
  fill_random_normal(a.value_cache, seed, 3, 0.0, 1.0);
  OwnedTensor bt({batch, blocks_per_seq}, DType::i32, Storage::host);
  OwnedTensor si({batch}, DType::i32, Storage::host), cl({batch}, DType::i32, Storage::host);
  std::iota(bt.ptr<int32_t>(), bt.ptr<int32_t>() + num_blocks, 0);
  Rng rng(seed);
  for (int64_t i = num_blocks - 1; i > 0; --i)
    std::swap(bt.ptr<int32_t>()[i], bt.ptr<int32_t>()[rng.randint(0, i)]);
  for (int64_t b = 0; b < batch; ++b) {
    si.ptr<int32_t>()[b] = static_cast<int32_t>(b);
    cl.ptr<int32_t>()[b] = static_cast<int32_t>(ctx);
  }
  a.block_tables = bt.to(Storage::device);
  a.seq_idx = si.to(Storage::device);
  a.context_lens = cl.to(Storage::device);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  // The oracle, on host copies of exactly what the kernels read.
  const OwnedTensor q = a.query.to(Storage::host), k = a.key_cache.to(Storage::host),
                    v = a.value_cache.to(Storage::host);
  a.expected = OwnedTensor({batch, num_heads, head_size}, dtype, Storage::host);
  cpu::paged_attention(a.expected, q, k, v, bt, si, cl, a.scale);
  return a;
}

NormInputs make_norm_inputs(int64_t tokens, int64_t hidden, DType dtype, uint64_t seed) {
  NormInputs n;
  n.tokens = tokens;
  n.hidden = hidden;
  n.dtype = dtype;
  n.input = OwnedTensor({tokens, hidden}, dtype, Storage::device);
  n.residual = OwnedTensor({tokens, hidden}, dtype, Storage::device);
  n.input0 = OwnedTensor({tokens, hidden}, dtype, Storage::device);
  n.residual0 = OwnedTensor({tokens, hidden}, dtype, Storage::device);
  n.out = OwnedTensor({tokens, hidden}, dtype, Storage::device);
  n.weight = OwnedTensor({hidden}, dtype, Storage::device);
  fill_random_normal(n.input0, seed, 11, 0.0, 1.0);
  fill_random_normal(n.residual0, seed, 12, 0.0, 1.0);
  fill_random_normal(n.weight, seed, 13, 1.0, 0.1);
  copy_device(n.input, n.input0, nullptr);
  copy_device(n.residual, n.residual0, nullptr);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  const OwnedTensor x = n.input0.to(Storage::host), w = n.weight.to(Storage::host);
  n.expected_out = OwnedTensor({tokens, hidden}, dtype, Storage::host);
  cpu::rms_norm(n.expected_out, x, w, n.eps);
  n.expected_fused = n.input0.to(Storage::host);
  n.expected_residual = n.residual0.to(Storage::host);
  cpu::fused_add_rms_norm(n.expected_fused, n.expected_residual, w, n.eps);
  return n;
}

void copy_device(const Tensor& dst, const Tensor& src, cudaStream_t stream) {
  DAY18_REQUIRE(dst.nbytes() == src.nbytes(), "copy_device: ", dst.nbytes(), " vs ", src.nbytes(),
                " bytes");
  DAY18_CUDA_CHECK(
      cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(), cudaMemcpyDeviceToDevice, stream));
}

}  // namespace day18::tuning
