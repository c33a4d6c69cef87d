// generated from engine/cpu/rotary.cpp by scripts/make_labs.py (lab 03);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
#include "engine/cpu/rotary.h"

#include <cmath>
#include <cstring>

#include "engine/core/error.h"
#include "engine/core/rng.h"

namespace day18::cpu {

namespace {

void check_positions(const Tensor& positions, int64_t num_tokens, int64_t max_position) {
  const int64_t* pos = positions.ptr<int64_t>();
  for (int64_t t = 0; t < num_tokens; ++t)
    DAY18_REQUIRE(pos[t] >= 0 && pos[t] < max_position, "positions[", t, "] = ", pos[t],
                  " is out of range [0, ", max_position, ") (cos_sin_cache has ", max_position,
                  " rows)");
}

// Rotates the first rot_dim values of one head: src's row at element offset `src_row` into dst's
// row at `dst_row` (the same row for in place), with the cos/sin row starting at `cs_row`.
// Double math, rounded once to the dtype. The one place both ops rotate a pair.
void rotate_head(const Tensor& src, int64_t src_row, const Tensor& dst, int64_t dst_row,
                 const Tensor& cos_sin_cache, int64_t cs_row, int64_t half, bool is_neox) {
  // Pair i (i < half = rot_dim / 2): (i, i + half) for neox, (2i, 2i + 1) for gptj, element
  // offsets within the row. c = cos_sin_cache[cs_row + i], s = cos_sin_cache[cs_row + half + i]:
  //   x1' = x1 c - x2 s,   x2' = x2 c + x1 s    (read with host_get, write with host_set)
  // LAB 03 BEGIN rotary_cpu: rotate the half = rot_dim/2 pairs of one head (about 10 lines)
  // TODO lab 03 task 3: Rotary embedding on the CPU: neox and gptj pairs
  // (labs/03-step-kernels/README.md, Task 3)
  throw ::day18::LabNotImplemented("03", 3, "rotary_cpu", "labs/03-step-kernels/README.md");
  // LAB 03 END rotary_cpu
}

// Copies `count` values (bytes as they are) from element offset `from` of src to `to` of dst.
void copy_values(const Tensor& src, int64_t from, const Tensor& dst, int64_t to, int64_t count) {
  const size_t esz = dtype_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.data()) + to * esz,
              static_cast<const char*>(src.data()) + from * esz, size_t(count) * esz);
}

}  // namespace

void rotary_embedding(const Tensor& positions, const Tensor& query, const Tensor& key,
                      const Tensor& cos_sin_cache, bool is_neox) {
  const int64_t num_tokens = query.size(0);
  const int64_t half = cos_sin_cache.size(1) / 2;
  check_positions(positions, num_tokens, cos_sin_cache.size(0));
  const int64_t* pos = positions.ptr<int64_t>();
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t cs_row = pos[t] * cos_sin_cache.stride(0);
    for (const Tensor* x : {&query, &key})
      for (int64_t h = 0; h < x->size(1); ++h) {
        const int64_t row = t * x->stride(0) + h * x->stride(1);
        rotate_head(*x, row, *x, row, cos_sin_cache, cs_row, half, is_neox);
      }
  }
}

void rotary_and_cache(const Tensor& query_out, const Tensor& query, const Tensor& key,
                      const Tensor& value, const Tensor& key_cache, const Tensor& value_cache,
                      const Tensor& slot_mapping, const Tensor& positions,
                      const Tensor& cos_sin_cache, bool is_neox) {
  const int64_t num_tokens = query.size(0), num_heads = query.size(1);
  const int64_t num_kv_heads = key.size(1), head_size = query.size(2);
  const int64_t rot_dim = cos_sin_cache.size(1), half = rot_dim / 2;
  const int64_t block_size = key_cache.size(2), num_slots = key_cache.size(0) * block_size;
  check_positions(positions, num_tokens, cos_sin_cache.size(0));
  const int64_t* slots = slot_mapping.ptr<int64_t>();
  for (int64_t t = 0; t < num_tokens; ++t)
    DAY18_REQUIRE(slots[t] == -1 || (slots[t] >= 0 && slots[t] < num_slots), "slot_mapping[", t,
                  "] = ", slots[t], " is out of range: the cache has ", num_slots, " slots (",
                  key_cache.size(0), " blocks x block_size ", block_size, "); -1 means skip");
  const int64_t* pos = positions.ptr<int64_t>();
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t cs_row = pos[t] * cos_sin_cache.stride(0);
    for (int64_t h = 0; h < num_heads; ++h) {
      const int64_t src = t * query.stride(0) + h * query.stride(1);
      const int64_t dst = (t * num_heads + h) * head_size;
      rotate_head(query, src, query_out, dst, cos_sin_cache, cs_row, half, is_neox);
      copy_values(query, src + rot_dim, query_out, dst + rot_dim, head_size - rot_dim);
    }
    if (slots[t] == -1) continue;
    const int64_t block = slots[t] / block_size, offset = slots[t] % block_size;
    for (int64_t h = 0; h < num_kv_heads; ++h) {
      const int64_t dst = ((block * num_kv_heads + h) * block_size + offset) * head_size;
      const int64_t k = t * key.stride(0) + h * key.stride(1);
      rotate_head(key, k, key_cache, dst, cos_sin_cache, cs_row, half, is_neox);
      copy_values(key, k + rot_dim, key_cache, dst + rot_dim, head_size - rot_dim);
      copy_values(value, t * value.stride(0) + h * value.stride(1), value_cache, dst, head_size);
    }
  }
}

OwnedTensor make_cos_sin_cache(int64_t max_position, int64_t rot_dim, double rope_theta,
                               DType dtype, Storage storage) {
  DAY18_REQUIRE(max_position > 0, "max_position must be > 0, got ", max_position);
  DAY18_REQUIRE(rot_dim > 0 && rot_dim % 2 == 0, "rot_dim must be even and > 0, got ", rot_dim);
  DAY18_REQUIRE(rope_theta > 0, "rope_theta must be > 0, got ", rope_theta);
  DAY18_REQUIRE(is_floating(dtype), "cos_sin_cache dtype must be f32/f16/bf16, got ",
                dtype_name(dtype));
  OwnedTensor h({max_position, rot_dim}, dtype, Storage::host);
  const int64_t half = rot_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(rope_theta, -2.0 * double(i) / double(rot_dim));
    for (int64_t p = 0; p < max_position; ++p) {
      const double angle = double(p) * inv_freq;
      host_set(h.view(), p * rot_dim + i, std::cos(angle));
      host_set(h.view(), p * rot_dim + half + i, std::sin(angle));
    }
  }
  return storage == Storage::host ? std::move(h) : h.to(storage);
}

}  // namespace day18::cpu
