// 16-byte vector loads shared by the kernels: one uint4 holds 16 / sizeof(T) elements of T
// (4 floats, 8 halves or 8 bfloat16s); unpack16 widens them to fp32 in registers.
//
//   load16(p)         read-only (non-coherent, L1-cached) load: activations, KV rows, logits.
//   load16_stream(p)  streaming load that skips L1 (ld.global.nc.L1::no_allocate): data read
//                     exactly once per kernel, such as the weights of a decode GEMV, should not
//                     evict what is reused (the activation vector) from L1.
// p must be 16-byte aligned.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace day18::cuda {

template <typename T>
inline constexpr int kVec16 = 16 / sizeof(T);  // elements per 16-byte vector

// Host side: may a kernel use 16-byte vector accesses at p?
inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

__device__ __forceinline__ uint4 load16(const void* p) {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

__device__ __forceinline__ uint4 load16_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <typename T>
__device__ __forceinline__ void unpack16(const uint4& r, float* x);

template <>
__device__ __forceinline__ void unpack16<float>(const uint4& r, float* x) {
  x[0] = __uint_as_float(r.x);
  x[1] = __uint_as_float(r.y);
  x[2] = __uint_as_float(r.z);
  x[3] = __uint_as_float(r.w);
}

template <>
__device__ __forceinline__ void unpack16<__half>(const uint4& r, float* x) {
  const __half2* h = reinterpret_cast<const __half2*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    x[2 * i] = f.x;
    x[2 * i + 1] = f.y;
  }
}

template <>
__device__ __forceinline__ void unpack16<__nv_bfloat16>(const uint4& r, float* x) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    x[2 * i] = f.x;
    x[2 * i + 1] = f.y;
  }
}

}  // namespace day18::cuda
