// Embedding lookup: a gather of rows. Memory-bound: each output row is one row of the table.
//
// One thread per 16-byte vector of the output: blockIdx.x = token, blockIdx.y/threadIdx.x =
// vector within the row, so a prefill spreads over thousands of blocks and every thread does one
// 16-byte load and store. V = 1: element-wise fallback for a hidden size that is not a multiple
// of the vector width (or unaligned pointers).
// Out-of-range ids never index the table: the row is zero-filled and the index is flagged.
#include "engine/kernels/embedding.h"

#include "engine/kernels/vec16.cuh"

namespace day18::cuda {
namespace {

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int V>
__global__ void embedding_kernel(T* __restrict__ out,              // [num_tokens, hidden]
                                 const int32_t* __restrict__ ids,  // [num_tokens]
                                 const T* __restrict__ weight,     // [vocab, hidden]
                                 int64_t hidden, int64_t vocab, int32_t* bad_index) {
  using P = Pack<T, V>;
  const int64_t vecs_per_row = hidden / V;
  const int64_t t = blockIdx.x;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= vecs_per_row) return;
  const int32_t id = ids[t];
  P v;
  if (id >= 0 && id < vocab) {
    v = reinterpret_cast<const P*>(weight + id * hidden)[j];
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) v.v[k] = from_float<T>(0.f);
    if (bad_index != nullptr && j == 0) atomicMin(bad_index, static_cast<int32_t>(t));
  }
  reinterpret_cast<P*>(out + t * hidden)[j] = v;
}

}  // namespace

// Grid: (num_tokens, ceil(hidden / V / 128)), 128 threads per block, one vector of V elements per
// thread (V = 16 bytes / sizeof(T), or 1 in the fallback): blockIdx.x = token,
// blockIdx.y * 128 + threadIdx.x = vector within the row.
void embedding(const Tensor& out, const Tensor& token_ids, const Tensor& weight, int32_t* bad_index,
               cudaStream_t stream) {
  const int64_t num_tokens = token_ids.size(0), vocab = weight.size(0), hidden = weight.size(1);
  if (num_tokens == 0 || hidden == 0) return;
  constexpr int kThreads = 128;
  dispatch_float(weight.dtype(), [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* w = weight.ptr<T>();
    const int32_t* ids = token_ids.ptr<int32_t>();
    constexpr int V = 16 / sizeof(T);
    auto go = [&]<int W>() {
      const dim3 grid(static_cast<unsigned>(num_tokens),
                      static_cast<unsigned>((hidden / W + kThreads - 1) / kThreads));
      embedding_kernel<T, W><<<grid, kThreads, 0, stream>>>(o, ids, w, hidden, vocab, bad_index);
      DAY18_CHECK_LAUNCH();
    };
    if (hidden % V == 0 && aligned16(o) && aligned16(w))
      go.template operator()<V>();
    else
      go.template operator()<1>();
  });
}

}  // namespace day18::cuda
