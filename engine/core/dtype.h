// Element types the engine works with, and their traits on host and device.
//
// Activations and caches: float, half, bfloat16 (accumulation is always fp32 in kernels,
// double in the CPU oracles where it matters). Indices: int32 (block tables, context lengths,
// token ids) and int64 (slot_mapping, positions). uint8 for opaque bytes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace day18 {

enum class DType : uint8_t { f32, f16, bf16, i32, i64, u8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

constexpr bool is_floating(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

// "float32", "float16", "bfloat16", "int32", "int64", "uint8" (the names PyTorch prints).
std::string_view dtype_name(DType t);
// Accepts the names above, their short forms (fp32, fp16, bf16, f32, half, float, ...) and
// safetensors' ("F32", "F16", "BF16", "I32", "I64", "U8"). Throws InvalidArgument otherwise.
DType parse_dtype(std::string_view name);
std::string_view safetensors_dtype_name(DType t);

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<__half> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<__nv_bfloat16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <typename T> inline constexpr DType dtype_of_v = dtype_of<T>::value;

// Conversions usable on host and device (the CUDA intrinsics are __host__ __device__).
__host__ __device__ inline float to_float(float x) { return x; }
__host__ __device__ inline float to_float(__half x) { return __half2float(x); }
__host__ __device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __host__ __device__ inline T from_float(float x);
template <> __host__ __device__ inline float from_float<float>(float x) { return x; }
template <> __host__ __device__ inline __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __host__ __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Calls f.template operator()<T>() with T the C++ type of a floating dtype.
//   dispatch_float(t.dtype(), [&]<typename T>() { kernel<T><<<...>>>(...); });
template <typename F>
decltype(auto) dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f16: return f.template operator()<__half>();
    case DType::bf16: return f.template operator()<__nv_bfloat16>();
    default: break;
  }
  throw std::invalid_argument("dispatch_float: not a floating dtype");
}

}  // namespace day18
