#include "engine/cpu/cache.h"

#include <cstring>

#include "engine/core/error.h"

namespace day18::cpu {

void reshape_and_cache(const Tensor& key, const Tensor& value, const Tensor& key_cache,
                       const Tensor& value_cache, const Tensor& slot_mapping) {
  // Token t's K (and V) row of head h, key[t, h, :], goes to key_cache[block, h, offset, :] with
  // block = slot / block_size and offset = slot % block_size; slot -1 is a padding token: skip it.
  // key's token stride may exceed num_kv_heads * head_size (a view into the fused qkv output).
  // LAB 03 BEGIN cache_cpu: each token's K/V rows into its slot; skip -1 (about 20 lines)
  const int64_t num_tokens = key.size(0), num_kv_heads = key.size(1);
  const size_t esz = dtype_size(key.dtype());
  const size_t row_bytes = size_t(key.size(2)) * esz;
  const int64_t block_size = key_cache.size(2);
  const int64_t num_slots = key_cache.size(0) * block_size;
  const int64_t* slots = slot_mapping.ptr<int64_t>();
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = slots[t];
    if (slot == -1) continue;
    DAY18_REQUIRE(slot >= 0 && slot < num_slots, "slot_mapping[", t, "] = ", slot,
                  " is out of range: the cache has ", num_slots, " slots (", key_cache.size(0),
                  " blocks x block_size ", block_size, "); -1 means skip");
    const int64_t block = slot / block_size, offset = slot % block_size;
    for (int64_t h = 0; h < num_kv_heads; ++h) {
      const int64_t dst = ((block * num_kv_heads + h) * block_size + offset) * key.size(2);
      std::memcpy(
          static_cast<char*>(key_cache.data()) + dst * esz,
          static_cast<const char*>(key.data()) + (t * key.stride(0) + h * key.stride(1)) * esz,
          row_bytes);
      std::memcpy(static_cast<char*>(value_cache.data()) + dst * esz,
                  static_cast<const char*>(value.data()) +
                      (t * value.stride(0) + h * value.stride(1)) * esz,
                  row_bytes);
    }
  }
  // LAB 03 END cache_cpu
}

namespace {
size_t block_bytes(const Tensor& cache) {
  return cache.nbytes() / size_t(cache.size(0));
}

void check_block_id(int64_t id, int64_t num_blocks, const char* side, int64_t pair) {
  DAY18_REQUIRE(id >= 0 && id < num_blocks, "block_mapping[", pair, "] ", side, " block ", id,
                " is out of range [0, ", num_blocks, ")");
}
}  // namespace

void copy_blocks(const std::vector<Tensor>& key_caches, const std::vector<Tensor>& value_caches,
                 const Tensor& block_mapping) {
  const int64_t* m = block_mapping.ptr<int64_t>();
  for (int64_t p = 0; p < block_mapping.size(0); ++p) {
    const int64_t src = m[2 * p], dst = m[2 * p + 1];
    for (size_t l = 0; l < key_caches.size(); ++l) {
      for (const Tensor* c : {&key_caches[l], &value_caches[l]}) {
        check_block_id(src, c->size(0), "src", p);
        check_block_id(dst, c->size(0), "dst", p);
        const size_t b = block_bytes(*c);
        std::memcpy(static_cast<char*>(c->data()) + dst * b,
                    static_cast<const char*>(c->data()) + src * b, b);
      }
    }
  }
}

void swap_blocks(const Tensor& src, const Tensor& dst, const Tensor& block_mapping) {
  const int64_t* m = block_mapping.ptr<int64_t>();
  const size_t b = block_bytes(src);
  for (int64_t p = 0; p < block_mapping.size(0); ++p) {
    check_block_id(m[2 * p], src.size(0), "src", p);
    check_block_id(m[2 * p + 1], dst.size(0), "dst", p);
    std::memcpy(static_cast<char*>(dst.data()) + m[2 * p + 1] * b,
                static_cast<const char*>(src.data()) + m[2 * p] * b, b);
  }
}

}  // namespace day18::cpu
