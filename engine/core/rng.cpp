#include "engine/core/rng.h"

#include <cmath>
#include <numbers>

namespace day18 {

uint64_t Rng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

double Rng::normal() {
  double u1 = uniform();
  double u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

int64_t Rng::randint(int64_t lo, int64_t hi) {
  DAY18_REQUIRE(lo <= hi, "randint: empty range [", lo, ", ", hi, "]");
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<int64_t>(span == 0 ? next_u64() : next_u64() % span);
}

double host_get(const Tensor& t, int64_t i) {
  expect_device(t, "tensor", Device::cpu);
  switch (t.dtype()) {
    case DType::f32: return static_cast<const float*>(t.data())[i];
    case DType::f16: return to_float(static_cast<const __half*>(t.data())[i]);
    case DType::bf16: return to_float(static_cast<const __nv_bfloat16*>(t.data())[i]);
    case DType::i32: return static_cast<const int32_t*>(t.data())[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(t.data())[i]);
    case DType::u8: return static_cast<const uint8_t*>(t.data())[i];
  }
  return 0;
}

void host_set(const Tensor& t, int64_t i, double v) {
  expect_device(t, "tensor", Device::cpu);
  switch (t.dtype()) {
    case DType::f32: static_cast<float*>(t.data())[i] = static_cast<float>(v); break;
    case DType::f16: static_cast<__half*>(t.data())[i] = from_float<__half>(static_cast<float>(v)); break;
    case DType::bf16:
      static_cast<__nv_bfloat16*>(t.data())[i] = from_float<__nv_bfloat16>(static_cast<float>(v));
      break;
    case DType::i32: static_cast<int32_t*>(t.data())[i] = static_cast<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(t.data())[i] = static_cast<int64_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(t.data())[i] = static_cast<uint8_t>(v); break;
  }
}

namespace {
// One typed loop per dtype (host_set per element costs a dtype switch and a device check).
template <typename Gen>
void fill_with(const Tensor& t, Gen&& gen) {
  expect_device(t, "tensor", Device::cpu);
  expect_contiguous(t, "tensor");
  const int64_t n = t.numel();
  auto loop = [&](auto* p, auto convert) {
    for (int64_t i = 0; i < n; ++i) p[i] = convert(gen());
  };
  switch (t.dtype()) {
    case DType::f32: loop(static_cast<float*>(t.data()), [](double v) { return static_cast<float>(v); }); break;
    case DType::f16: loop(static_cast<__half*>(t.data()), [](double v) { return __float2half_rn(static_cast<float>(v)); }); break;
    case DType::bf16:
      loop(static_cast<__nv_bfloat16*>(t.data()), [](double v) { return __float2bfloat16_rn(static_cast<float>(v)); });
      break;
    case DType::i32: loop(static_cast<int32_t*>(t.data()), [](double v) { return static_cast<int32_t>(v); }); break;
    case DType::i64: loop(static_cast<int64_t*>(t.data()), [](double v) { return static_cast<int64_t>(v); }); break;
    case DType::u8: loop(static_cast<uint8_t*>(t.data()), [](double v) { return static_cast<uint8_t>(v); }); break;
  }
}
}  // namespace

void Rng::fill_uniform(const Tensor& t, double lo, double hi) {
  if (is_floating(t.dtype())) {
    fill_with(t, [&] { return uniform(lo, hi); });
  } else {
    const auto a = static_cast<int64_t>(lo), b = static_cast<int64_t>(hi);
    fill_with(t, [&] { return static_cast<double>(randint(a, b)); });
  }
}

void Rng::fill_normal(const Tensor& t, double mean, double std) {
  fill_with(t, [&] { return mean + std * normal(); });
}

OwnedTensor Rng::uniform_tensor(const std::vector<int64_t>& shape, DType dtype, double lo,
                                double hi, Storage storage) {
  OwnedTensor h(shape, dtype, Storage::host);
  fill_uniform(h.view(), lo, hi);
  return storage == Storage::host ? std::move(h) : h.to(storage);
}

OwnedTensor Rng::normal_tensor(const std::vector<int64_t>& shape, DType dtype, double mean,
                               double std, Storage storage) {
  OwnedTensor h(shape, dtype, Storage::host);
  fill_normal(h.view(), mean, std);
  return storage == Storage::host ? std::move(h) : h.to(storage);
}

}  // namespace day18
