#include "engine/ops/rotary.h"

#include <climits>

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

}  // namespace

void rotary_embedding(const Tensor& positions, const Tensor& query, const Tensor& key,
                      const Tensor& cos_sin_cache, int64_t head_size, bool is_neox,
                      bool check_positions, cudaStream_t stream) {
  DAY18_REQUIRE(head_size > 0, "head_size must be > 0, got ", head_size);
  expect_heads(query, "query", head_size);
  expect_heads(key, "key", head_size);
  expect_same_dtype(key, "key", query, "query");
  DAY18_REQUIRE(key.size(0) == query.size(0), "key: num_tokens ", key.size(0),
                " differs from query's ", query.size(0), " (", key.describe(), ")");
  DAY18_REQUIRE(key.size(1) > 0 && query.size(1) % key.size(1) == 0, "key: num_kv_heads ",
                key.size(1), " must divide query's num_heads ", query.size(1), " (GQA)");
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
  expect_same_device(key, "key", query, "query");
  expect_same_device(positions, "positions", query, "query");
  expect_same_device(cos_sin_cache, "cos_sin_cache", query, "query");
  DAY18_REQUIRE(query.size(0) <= INT_MAX, "query: num_tokens ", query.size(0), " exceeds ",
                INT_MAX);
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
    DAY18_REQUIRE(false, "positions[", e.first_row,
                  "] = ", detail::read_device_i64(positions, e.first_row, stream),
                  " is out of range [0, ", cos_sin_cache.size(0), ") (cos_sin_cache has ",
                  cos_sin_cache.size(0), " rows; ", e.count,
                  " bad position(s); those tokens were left unrotated)");
}

OwnedTensor make_cos_sin_cache(int64_t max_position, int64_t rot_dim, double rope_theta,
                               DType dtype, Storage storage) {
  return cpu::make_cos_sin_cache(max_position, rot_dim, rope_theta, dtype, storage);
}

}  // namespace day18
