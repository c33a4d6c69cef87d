// SiLU-and-mul: out = silu(gate) * up, gate and up the two halves of each input row.
//
// A pure streaming op (3 bytes moved per 2 flops): the only goal is to keep HBM busy. One
// thread per 16-byte output vector: two independent 16-byte loads (gate, up) and one store per
// thread, thousands of blocks for a prefill. The token comes from blockIdx.x and the vector from
// blockIdx.y/threadIdx.x, so no thread divides a 64-bit flat index. V = 1 is the element-wise
// fallback for d not a multiple of the vector width (or unaligned pointers).
// fp32 math; expf (not __expf): the op is memory-bound, full precision costs nothing.
#include "engine/kernels/activation.h"

#include "engine/kernels/vec16.cuh"

#include <cstdint>

namespace day18::cuda {
namespace {

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

__device__ __forceinline__ float silu(float x) {
  return x / (1.f + expf(-x));
}

template <typename T, int V>
__global__ void silu_and_mul_kernel(T* __restrict__ out,          // [num_tokens, d]
                                    const T* __restrict__ input,  // [num_tokens, 2 * d]
                                    int64_t d) {
  using P = Pack<T, V>;
  const int64_t vecs_per_row = d / V;
  const int64_t t = blockIdx.x;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= vecs_per_row) return;
  const P* gate = reinterpret_cast<const P*>(input + t * 2 * d) + j;
  const P* up = reinterpret_cast<const P*>(input + t * 2 * d + d) + j;
  const P g = *gate, u = *up;
  P o;
#pragma unroll
  for (int k = 0; k < V; ++k) o.v[k] = from_float<T>(silu(to_float(g.v[k])) * to_float(u.v[k]));
  reinterpret_cast<P*>(out + t * d)[j] = o;
}

}  // namespace

// Grid: (num_tokens, ceil(d / V / 128)), 128 threads per block, one output vector of V elements
// per thread (V = 16 bytes / sizeof(T), or 1 in the fallback): blockIdx.x = token,
// blockIdx.y * 128 + threadIdx.x = vector within the row. 128 threads keep the idle tail of a
// row small (d = 11008 halves: 1376 vectors in 11 blocks).
void silu_and_mul(const Tensor& out, const Tensor& input, cudaStream_t stream) {
  const int64_t num_tokens = out.size(0), d = out.size(1);
  if (num_tokens == 0 || d == 0) return;
  constexpr int kThreads = 128;
  dispatch_float(input.dtype(), [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* x = input.ptr<T>();
    constexpr int V = 16 / sizeof(T);
    auto go = [&]<int W>() {
      const dim3 grid(static_cast<unsigned>(num_tokens),
                      static_cast<unsigned>((d / W + kThreads - 1) / kThreads));
      silu_and_mul_kernel<T, W><<<grid, kThreads, 0, stream>>>(o, x, d);
      DAY18_CHECK_LAUNCH();
    };
    if (d % V == 0 && aligned16(o) && aligned16(x))
      go.template operator()<V>();
    else
      go.template operator()<1>();
  });
}

}  // namespace day18::cuda
