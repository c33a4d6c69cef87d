#include "engine/runtime/model_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

namespace day18 {
namespace {

__host__ __device__ inline uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr int64_t k24 = (int64_t(1) << 24) - 1;  // largest 24-bit uniform

// mean + scale * (2 * (u0 + u1 + u2 + u3) - 4 * k24), with scale = std * sqrt(3) / 2^25: the sum of
// four uniforms on {0..k24} has mean 2 * k24 and variance ~2^48 / 3. Integer arithmetic up to the
// product, then one double multiply and one add: the add is an explicit __dadd_rn on the device so
// that nvcc cannot fuse it into an FMA (the host has no FMA contraction at -O2 on x86-64), keeping
// the two backends bit-identical.
template <typename T>
__host__ __device__ inline T random_value(uint64_t key, int64_t i, double mean, double scale) {
  const uint64_t a = mix64(key + (2 * uint64_t(i) + 1) * 0x9E3779B97F4A7C15ull);
  const uint64_t b = mix64(key + (2 * uint64_t(i) + 2) * 0x9E3779B97F4A7C15ull);
  const int64_t s =
      int64_t(a >> 40) + int64_t((a >> 16) & k24) + int64_t(b >> 40) + int64_t((b >> 16) & k24);
  const double z = double(2 * s - 4 * k24) * scale;
#ifdef __CUDA_ARCH__
  const double v = __dadd_rn(z, mean);
#else
  const double v = z + mean;
#endif
  return from_float<T>(static_cast<float>(v));
}

template <typename T>
__global__ void fill_random_normal_kernel(T* __restrict__ out, int64_t n, uint64_t key, double mean,
                                          double scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = random_value<T>(key, i, mean, scale);
}

template <typename T>
__global__ void cast_to_float_kernel(float* __restrict__ out, const T* __restrict__ in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = to_float(in[i]);
}

// Grid-stride launches: 256 threads, at most 132 SMs x 16 blocks (enough to saturate HBM on an
// H100; larger tensors loop).
unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + 255) / 256, 1, 132 * 16));
}

}  // namespace

void fill_random_normal(const Tensor& t, uint64_t seed, uint64_t tensor_id, double mean, double std,
                        cudaStream_t stream) {
  expect_defined(t, "t");
  expect_dtype_in(t, "t", {DType::f32, DType::f16, DType::bf16});
  expect_contiguous(t, "t");
  DAY18_REQUIRE(std::isfinite(mean) && std::isfinite(std) && std >= 0,
                "fill_random_normal: mean and std must be finite, std >= 0 (got ", mean, ", ", std,
                ")");
  const int64_t n = t.numel();
  if (n == 0) return;
  const uint64_t key = mix64(mix64(seed) ^ (tensor_id * 0xD1B54A32D192ED03ull));
  const double scale = std * std::sqrt(3.0) / double(int64_t(1) << 25);
  dispatch_float(t.dtype(), [&]<typename T>() {
    T* out = static_cast<T*>(t.data());
    if (t.is_cuda()) {
      fill_random_normal_kernel<T><<<grid_for(n), 256, 0, stream>>>(out, n, key, mean, scale);
      DAY18_CHECK_LAUNCH();
      return;
    }
    // Host: a few threads for the big presets (llama-1b on the CPU is 1.2 G values).
    auto work = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] = random_value<T>(key, i, mean, scale);
    };
    const int64_t workers = n < (int64_t(1) << 20)
                                ? 1
                                : std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 16);
    if (workers == 1) return work(0, n);
    std::vector<std::thread> pool;
    const int64_t chunk = (n + workers - 1) / workers;
    for (int64_t w = 0; w < workers; ++w)
      if (w * chunk < n) pool.emplace_back(work, w * chunk, std::min(n, (w + 1) * chunk));
    for (auto& th : pool) th.join();
  });
}

void cast_to_float(const Tensor& out, const Tensor& in, cudaStream_t stream) {
  expect_defined(out, "out");
  expect_defined(in, "in");
  expect_dtype(out, "out", DType::f32);
  expect_dtype_in(in, "in", {DType::f32, DType::f16, DType::bf16});
  expect_device(out, "out", in.device());
  expect_contiguous(out, "out");
  expect_contiguous(in, "in");
  DAY18_REQUIRE(out.sizes() == in.sizes(), "cast_to_float: out ", out.describe(), " vs in ",
                in.describe());
  const int64_t n = in.numel();
  if (n == 0) return;
  dispatch_float(in.dtype(), [&]<typename T>() {
    const T* x = static_cast<const T*>(in.data());
    float* o = static_cast<float*>(out.data());
    if (in.is_cuda()) {
      cast_to_float_kernel<T><<<grid_for(n), 256, 0, stream>>>(o, x, n);
      DAY18_CHECK_LAUNCH();
    } else {
      for (int64_t i = 0; i < n; ++i) o[i] = to_float(x[i]);
    }
  });
}

void copy_rows(const Tensor& dst, const Tensor& src, cudaStream_t stream) {
  expect_dim(dst, "dst", 2);
  expect_dim(src, "src", 2);
  expect_same_dtype(dst, "dst", src, "src");
  expect_device(dst, "dst", src.device());
  expect_contiguous(dst, "dst");
  expect_shape(src, "src", {dst.size(0), dst.size(1)});
  DAY18_REQUIRE(src.stride(1) == 1 && src.stride(0) >= src.size(1),
                "copy_rows: src rows must be contiguous, got ", src.describe());
  const int64_t rows = dst.size(0);
  const size_t row_bytes = static_cast<size_t>(dst.size(1)) * dtype_size(dst.dtype());
  const size_t src_pitch = static_cast<size_t>(src.stride(0)) * dtype_size(src.dtype());
  if (rows == 0 || row_bytes == 0) return;
  if (dst.is_cuda()) {
    DAY18_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), row_bytes, src.data(), src_pitch, row_bytes,
                                       static_cast<size_t>(rows), cudaMemcpyDeviceToDevice,
                                       stream));
    return;
  }
  auto* d = static_cast<char*>(dst.data());
  const auto* s = static_cast<const char*>(src.data());
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * row_bytes, s + r * src_pitch, row_bytes);
}

}  // namespace day18
