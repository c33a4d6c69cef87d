#include "engine/ops/rotary.h"

#include <climits>
#include <cstdint>
#include <string>
#include <utility>

#include "engine/cpu/rotary.h"
#include "engine/kernels/rotary.h"
#include "engine/ops/cache.h"

namespace day18 {
namespace {

void expect_heads(const Tensor& t, const char* name, int64_t head_size) {
  expect_defined(t, name);
  expect_dtype_in(t, name, {DType::f32, DType::f16, DType::bf16});
  expect_dim(t, name, 3);
  DAY18_REQUIRE(t.size(2) == head_size, name, ": last dimension must be head_size = ", head_size,
                ", got ", t.describe());
  DAY18_REQUIRE(
      t.stride(2) == 1 && t.stride(1) == t.size(2) && t.stride(0) >= t.size(1) * t.size(2), name,
      ": each token's [heads, head_size] must be contiguous (token stride >= ",
      t.size(1) * t.size(2), "), got strides [", t.stride(0), ", ", t.stride(1), ", ", t.stride(2),
      "] for ", t.describe());
}

void expect_same_device(const Tensor& t, const char* name, const Tensor& ref,
                        const char* ref_name) {
  DAY18_REQUIRE(t.device() == ref.device(), name, " is on ", device_name(t.device()), " but ",
                ref_name, " is on ", device_name(ref.device()), " (", t.describe(), ")");
}

// key (or value) against query: heads of head_size with each token's heads contiguous, query's
// dtype, token count and device; its head count divides query's (GQA).
void expect_query_key(const Tensor& query, const Tensor& key, const char* key_name,
                      int64_t head_size) {
  expect_heads(key, key_name, head_size);
  expect_same_dtype(key, key_name, query, "query");
  DAY18_REQUIRE(key.size(0) == query.size(0), key_name, ": num_tokens ", key.size(0),
                " differs from query's ", query.size(0), " (", key.describe(), ")");
  DAY18_REQUIRE(key.size(1) > 0 && query.size(1) % key.size(1) == 0, key_name, ": num_kv_heads ",
                key.size(1), " must divide query's num_heads ", query.size(1), " (GQA)");
  expect_same_device(key, key_name, query, "query");
}

// positions [num_tokens] int64 and cos_sin_cache [max_position, rot_dim] in query's dtype, both
// on query's device, rot_dim even and <= head_size.
void expect_positions_and_table(const Tensor& positions, const Tensor& cos_sin_cache,
                                const Tensor& query, int64_t head_size) {
  expect_defined(positions, "positions");
  expect_dtype(positions, "positions", DType::i64);
  expect_shape(positions, "positions", {query.size(0)});
  expect_contiguous(positions, "positions");
  expect_defined(cos_sin_cache, "cos_sin_cache");
  expect_same_dtype(cos_sin_cache, "cos_sin_cache", query, "query");
  expect_dim(cos_sin_cache, "cos_sin_cache", 2);
  expect_contiguous(cos_sin_cache, "cos_sin_cache");
  const int64_t rot_dim = cos_sin_cache.size(1);
  DAY18_REQUIRE(rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= head_size,
                "cos_sin_cache: rot_dim (its second dimension) must be even, > 0 and <= head_size ",
                head_size, ", got ", cos_sin_cache.describe());
  DAY18_REQUIRE(cos_sin_cache.size(0) > 0, "cos_sin_cache: max_position must be > 0, got ",
                cos_sin_cache.describe());
  expect_same_device(positions, "positions", query, "query");
  expect_same_device(cos_sin_cache, "cos_sin_cache", query, "query");
  DAY18_REQUIRE(query.size(0) <= INT_MAX, "query: num_tokens ", query.size(0), " exceeds ",
                INT_MAX);
}

// A KV cache [num_blocks, num_kv_heads, block_size, head_size] for `key`: contiguous, same dtype
// and device, non-empty blocks.
void expect_cache_for(const Tensor& cache, const char* name, const Tensor& key) {
  expect_defined(cache, name);
  expect_same_dtype(cache, name, key, "key");
  expect_dim(cache, name, 4);
  expect_contiguous(cache, name);
  expect_shape(cache, name, {kAnyDim, key.size(1), kAnyDim, key.size(2)});
  DAY18_REQUIRE(cache.size(0) > 0 && cache.size(2) > 0, name,
                ": num_blocks and block_size must be > 0, got ", cache.describe());
  expect_same_device(cache, name, key, "key");
}

// Bytes [first, last) a view spans (empty for an empty view).
std::pair<uintptr_t, uintptr_t> byte_span(const Tensor& t) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(t.data());
  if (t.numel() == 0) return {first, first};
  int64_t last = 0;
  for (int i = 0; i < t.dim(); ++i) last += (t.size(i) - 1) * t.stride(i);
  return {first, first + uintptr_t(last + 1) * dtype_size(t.dtype())};
}

void expect_no_overlap(const Tensor& out, const char* out_name, const Tensor& in,
                       const char* in_name) {
  const auto [a0, a1] = byte_span(out);
  const auto [b0, b1] = byte_span(in);
  DAY18_REQUIRE(a1 <= b0 || b1 <= a0, out_name, " overlaps ", in_name, " (", out.describe(),
                "): rotary_and_cache reads its inputs while writing its outputs; give ", out_name,
                " its own memory");
}

std::string bad_position_message(const IndexErrors& e, const Tensor& positions,
                                 const Tensor& cos_sin_cache, const char* what,
                                 cudaStream_t stream) {
  return detail::concat("positions[", e.first_row,
                        "] = ", detail::read_device_i64(positions, e.first_row, stream),
                        " is out of range [0, ", cos_sin_cache.size(0), ") (cos_sin_cache has ",
                        cos_sin_cache.size(0), " rows; ", e.count, " bad position(s); ", what, ")");
}

}  // namespace

void rotary_embedding(const Tensor& positions, const Tensor& query, const Tensor& key,
                      const Tensor& cos_sin_cache, int64_t head_size, bool is_neox,
                      bool check_positions, cudaStream_t stream) {
  DAY18_REQUIRE(head_size > 0, "head_size must be > 0, got ", head_size);
  expect_heads(query, "query", head_size);
  expect_query_key(query, key, "key", head_size);
  expect_positions_and_table(positions, cos_sin_cache, query, head_size);
  DAY18_REQUIRE((query.size(1) + key.size(1)) * head_size <= INT_MAX, "query/key: too many heads");

  if (!query.is_cuda()) {
    cpu::rotary_embedding(positions, query, key, cos_sin_cache, is_neox);
    return;
  }
  if (!check_positions) {
    cuda::rotary_embedding(positions, query, key, cos_sin_cache, is_neox,
                           detail::index_error_record("positions"), stream);
    return;
  }
  const IndexErrors e = detail::run_checked(
      [&](const Tensor& errors) {
        cuda::rotary_embedding(positions, query, key, cos_sin_cache, is_neox, errors, stream);
      },
      stream);
  if (e.count)
    DAY18_REQUIRE(false, bad_position_message(e, positions, cos_sin_cache,
                                              "those tokens were left unrotated", stream));
}

void rotary_and_cache(const Tensor& query_out, const Tensor& query, const Tensor& key,
                      const Tensor& value, const Tensor& key_cache, const Tensor& value_cache,
                      const Tensor& slot_mapping, const Tensor& positions,
                      const Tensor& cos_sin_cache, int64_t head_size, bool is_neox,
                      bool check_positions, bool check_slots, cudaStream_t stream) {
  DAY18_REQUIRE(head_size > 0, "head_size must be > 0, got ", head_size);
  expect_heads(query, "query", head_size);
  expect_query_key(query, key, "key", head_size);
  expect_query_key(query, value, "value", head_size);
  expect_shape(value, "value", {key.size(0), key.size(1), key.size(2)});
  expect_defined(query_out, "query_out");
  expect_same_dtype(query_out, "query_out", query, "query");
  expect_shape(query_out, "query_out", {query.size(0), query.size(1), query.size(2)});
  expect_contiguous(query_out, "query_out");
  expect_same_device(query_out, "query_out", query, "query");
  expect_cache_for(key_cache, "key_cache", key);
  expect_cache_for(value_cache, "value_cache", key);
  expect_shape(value_cache, "value_cache",
               {key_cache.size(0), key_cache.size(1), key_cache.size(2), key_cache.size(3)});
  expect_defined(slot_mapping, "slot_mapping");
  expect_dtype(slot_mapping, "slot_mapping", DType::i64);
  expect_shape(slot_mapping, "slot_mapping", {query.size(0)});
  expect_contiguous(slot_mapping, "slot_mapping");
  expect_same_device(slot_mapping, "slot_mapping", query, "query");
  expect_positions_and_table(positions, cos_sin_cache, query, head_size);
  DAY18_REQUIRE((query.size(1) + 2 * key.size(1)) * head_size <= INT_MAX,
                "query/key/value: too many heads");
  for (const auto& [out, out_name] : {std::pair{&query_out, "query_out"},
                                      {&key_cache, "key_cache"},
                                      {&value_cache, "value_cache"}})
    for (const auto& [in, in_name] : {std::pair{&query, "query"}, {&key, "key"}, {&value, "value"}})
      expect_no_overlap(*out, out_name, *in, in_name);
  expect_no_overlap(value_cache, "value_cache", key_cache, "key_cache");

  if (!query.is_cuda()) {
    // Checks every position and slot before writing anything.
    cpu::rotary_and_cache(query_out, query, key, value, key_cache, value_cache, slot_mapping,
                          positions, cos_sin_cache, is_neox);
    return;
  }
  auto launch = [&](const Tensor& position_errors, const Tensor& slot_errors) {
    cuda::rotary_and_cache(query_out, query, key, value, key_cache, value_cache, slot_mapping,
                           positions, cos_sin_cache, is_neox, position_errors, slot_errors, stream);
  };
  // Unchecked indices count into the process-wide records; a checked one gets a fresh record and
  // a wait (nested run_checked when both are checked: one launch, two records).
  IndexErrors bad_positions, bad_slots;
  if (!check_positions && !check_slots) {
    launch(detail::index_error_record("positions"), detail::index_error_record("slot_mapping"));
    return;
  }
  if (check_positions && check_slots) {
    bad_positions = detail::run_checked(
        [&](const Tensor& pe) {
          bad_slots = detail::run_checked([&](const Tensor& se) { launch(pe, se); }, stream);
        },
        stream);
  } else if (check_positions) {
    bad_positions = detail::run_checked(
        [&](const Tensor& pe) { launch(pe, detail::index_error_record("slot_mapping")); }, stream);
  } else {
    bad_slots = detail::run_checked(
        [&](const Tensor& se) { launch(detail::index_error_record("positions"), se); }, stream);
  }
  if (bad_positions.count)
    DAY18_REQUIRE(
        false, bad_position_message(bad_positions, positions, cos_sin_cache,
                                    "those tokens' query and key were copied unrotated", stream));
  if (bad_slots.count)
    DAY18_REQUIRE(
        false,
        detail::bad_slot_message(
            bad_slots.first_row, detail::read_device_i64(slot_mapping, bad_slots.first_row, stream),
            key_cache,
            detail::concat(" (", bad_slots.count, " bad slot(s); those tokens were not cached)")));
}

OwnedTensor make_cos_sin_cache(int64_t max_position, int64_t rot_dim, double rope_theta,
                               DType dtype, Storage storage) {
  return cpu::make_cos_sin_cache(max_position, rot_dim, rope_theta, dtype, storage);
}

}  // namespace day18
