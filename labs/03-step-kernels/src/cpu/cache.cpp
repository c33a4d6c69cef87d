// generated from engine/cpu/cache.cpp by scripts/make_labs.py (lab 03);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
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
  // TODO lab 03 task 1: reshape_and_cache on the CPU (the oracle)
  // (labs/03-step-kernels/README.md, Task 1)
  throw ::day18::LabNotImplemented("03", 1, "cache_cpu", "labs/03-step-kernels/README.md");
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
