#include "engine/runtime/contiguous_batch.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace day18 {

ContiguousBatch make_contiguous_batch(const std::vector<SequenceChunk>& chunks, int64_t block_size,
                                      int64_t blocks_per_seq, Device device) {
  DAY18_REQUIRE(block_size > 0 && blocks_per_seq > 0, "make_contiguous_batch: block_size ",
                block_size, " and blocks_per_seq ", blocks_per_seq, " must be positive");
  std::vector<int32_t> ids, seq_idx, ctx, logits_idx;
  std::vector<int64_t> pos, slots;
  std::vector<int32_t> tables;
  std::vector<int32_t> query_start_loc{0};  // every chunk, padding too, is one segment
  int64_t max_ctx = 0;
  int32_t row = 0;
  for (const SequenceChunk& c : chunks) {
    DAY18_REQUIRE(!c.tokens.empty(), "make_contiguous_batch: empty chunk");
    DAY18_REQUIRE(
        c.padding || c.start_pos + int64_t(c.tokens.size()) <= blocks_per_seq * block_size,
        "make_contiguous_batch: sequence slot ", c.seq_slot, " needs ",
        c.start_pos + c.tokens.size(), " tokens, it owns ", blocks_per_seq * block_size);
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      const int64_t p = c.start_pos + int64_t(i);
      ids.push_back(c.tokens[i]);
      pos.push_back(c.padding ? 0 : p);
      slots.push_back(c.padding ? -1 : c.seq_slot * blocks_per_seq * block_size + p);
      seq_idx.push_back(c.padding ? 0 : row);
      ctx.push_back(c.padding ? 0 : static_cast<int32_t>(p + 1));
      max_ctx = std::max<int64_t>(max_ctx, c.padding ? 0 : p + 1);
    }
    query_start_loc.push_back(static_cast<int32_t>(ids.size()));
    if (c.padding) continue;
    logits_idx.push_back(static_cast<int32_t>(ids.size() - 1));
    for (int64_t b = 0; b < blocks_per_seq; ++b)
      tables.push_back(static_cast<int32_t>(c.seq_slot * blocks_per_seq + b));
    ++row;
  }
  DAY18_REQUIRE(row > 0, "make_contiguous_batch: no sequence (only padding)");

  ContiguousBatch out;
  const Storage st = device == Device::cuda ? Storage::device : Storage::host;
  auto make = [&](const auto& v, DType dt, std::vector<int64_t> shape) -> Tensor {
    OwnedTensor host(shape, dt, Storage::host);
    std::copy(v.begin(), v.end(), static_cast<std::decay_t<decltype(v[0])>*>(host.data()));
    out.storage.push_back(st == Storage::host ? std::move(host) : host.to(st));
    return out.storage.back().view();
  };
  const int64_t T = static_cast<int64_t>(ids.size());
  out.batch.token_ids = make(ids, DType::i32, {T});
  out.batch.positions = make(pos, DType::i64, {T});
  out.batch.slot_mapping = make(slots, DType::i64, {T});
  out.batch.seq_idx = make(seq_idx, DType::i32, {T});
  out.batch.context_lens = make(ctx, DType::i32, {T});
  out.batch.block_tables = make(tables, DType::i32, {row, blocks_per_seq});
  out.batch.logits_indices = make(logits_idx, DType::i32, {row});
  out.batch.max_context_len = max_ctx;
  out.batch.query_start_loc = std::move(query_start_loc);
  return out;
}

std::vector<int32_t> greedy_tokens(const Tensor& logits) {
  expect_dtype(logits, "logits", DType::f32);
  expect_dim(logits, "logits", 2);
  OwnedTensor host(logits.sizes(), DType::f32, Storage::host);
  copy_tensor(host.view(), logits);
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  std::vector<int32_t> out;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = host.ptr<float>() + r * vocab;
    // The sampler's rule for non-finite logits (kernels/sampling.h): a NaN or +inf row has no
    // argmax. Here, on the host, that is an error naming the row.
    for (int64_t i = 0; i < vocab; ++i)
      if (!(x[i] <= std::numeric_limits<float>::max()))
        throw Error(detail::concat("logits row ", r, " holds ", x[i], " at token ", i,
                                   ": the model's output is not finite (NaN or overflowing "
                                   "weights?)"));
    out.push_back(static_cast<int32_t>(std::max_element(x, x + vocab) - x));
  }
  return out;
}

}  // namespace day18
