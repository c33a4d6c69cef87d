#include "engine/cpu/rotary.h"

#include <cmath>

#include "engine/core/error.h"
#include "engine/core/rng.h"

namespace day18::cpu {

void rotary_embedding(const Tensor& positions, const Tensor& query, const Tensor& key,
                      const Tensor& cos_sin_cache, bool is_neox) {
  const int64_t num_tokens = query.size(0), max_position = cos_sin_cache.size(0);
  const int64_t rot_dim = cos_sin_cache.size(1), half = rot_dim / 2;
  const int64_t* pos = positions.ptr<int64_t>();
  for (int64_t t = 0; t < num_tokens; ++t)
    DAY18_REQUIRE(pos[t] >= 0 && pos[t] < max_position, "positions[", t, "] = ", pos[t],
                  " is out of range [0, ", max_position, ") (cos_sin_cache has ", max_position,
                  " rows)");
  const int64_t cs_stride = cos_sin_cache.stride(0);
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t row = pos[t] * cs_stride;
    for (const Tensor* x : {&query, &key}) {
      for (int64_t h = 0; h < x->size(1); ++h) {
        const int64_t base = t * x->stride(0) + h * x->stride(1);
        for (int64_t i = 0; i < half; ++i) {
          const int64_t i1 = base + (is_neox ? i : 2 * i);
          const int64_t i2 = base + (is_neox ? i + half : 2 * i + 1);
          const double c = host_get(cos_sin_cache, row + i);
          const double s = host_get(cos_sin_cache, row + half + i);
          const double x1 = host_get(*x, i1), x2 = host_get(*x, i2);
          host_set(*x, i1, x1 * c - x2 * s);
          host_set(*x, i2, x2 * c + x1 * s);
        }
      }
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
