// rotary_embedding kernels. Two versions per (dtype, style):
//   vectorized: each thread rotates a 16-byte group (8 half / 4 float values of x1 and of x2 for
//               neox; 4 / 2 interleaved pairs for gptj), cos/sin read as vectors too;
//   scalar:     one pair per thread, for shapes the vectors do not fit (kept as the plain loop).
#include "engine/kernels/rotary.h"

#include <algorithm>

#include "engine/core/error.h"

namespace day18::cuda {
namespace {

// 16 bytes of T, as N values.
template <typename T>
struct alignas(16) Vec {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};
// 8 bytes of T (gptj's cos or sin for one 16-byte chunk of pairs).
template <typename T>
struct alignas(8) HalfVec {
  static constexpr int N = 8 / sizeof(T);
  T v[N];
};

__device__ inline void rotate(float x1, float x2, float c, float s, float& y1, float& y2) {
  y1 = x1 * c - x2 * s;
  y2 = x2 * c + x1 * s;
}

__device__ inline void record_bad_position(long long* errors, long long token) {
  if (errors == nullptr) return;
  atomicAdd(reinterpret_cast<unsigned long long*>(&errors[0]), 1ull);
  atomicMin(&errors[1], token);
}

struct RotaryArgs {
  const int64_t* positions;
  void* query;
  void* key;
  const void* cos_sin;
  long long* errors;
  int64_t query_stride, key_stride;  // token strides, elements
  int64_t max_position;
  int num_heads, num_kv_heads, head_size, rot_dim;
};

// Returns the head row of unit `head` (query heads first, then key heads) for `token`.
template <typename T>
__device__ inline T* head_row(const RotaryArgs& a, int64_t token, int head) {
  if (head < a.num_heads)
    return static_cast<T*>(a.query) + token * a.query_stride + int64_t(head) * a.head_size;
  return static_cast<T*>(a.key) + token * a.key_stride + int64_t(head - a.num_heads) * a.head_size;
}

template <typename T, bool NEOX>
__global__ void rotary_vec_kernel(const RotaryArgs a) {
  const int64_t token = blockIdx.x;
  const int64_t pos = a.positions[token];
  if (pos < 0 || pos >= a.max_position) {
    if (threadIdx.x == 0) record_bad_position(a.errors, token);
    return;
  }
  constexpr int N = Vec<T>::N;
  const int half = a.rot_dim / 2;
  const T* cos = static_cast<const T*>(a.cos_sin) + pos * a.rot_dim;
  const T* sin = cos + half;
  // Groups per head: neox half/N (N pairs each), gptj rot_dim/N (N/2 pairs each).
  const int groups = NEOX ? half / N : a.rot_dim / N;
  const int total = (a.num_heads + a.num_kv_heads) * groups;
  for (int u = threadIdx.x; u < total; u += blockDim.x) {
    const int head = u / groups, g = u - head * groups;
    T* row = head_row<T>(a, token, head);
    if constexpr (NEOX) {
      Vec<T>* p1 = reinterpret_cast<Vec<T>*>(row + g * N);
      Vec<T>* p2 = reinterpret_cast<Vec<T>*>(row + half + g * N);
      Vec<T> x1 = *p1, x2 = *p2;
      const Vec<T> c = *reinterpret_cast<const Vec<T>*>(cos + g * N);
      const Vec<T> s = *reinterpret_cast<const Vec<T>*>(sin + g * N);
#pragma unroll
      for (int i = 0; i < N; ++i) {
        float y1, y2;
        rotate(to_float(x1.v[i]), to_float(x2.v[i]), to_float(c.v[i]), to_float(s.v[i]), y1, y2);
        x1.v[i] = from_float<T>(y1);
        x2.v[i] = from_float<T>(y2);
      }
      *p1 = x1;
      *p2 = x2;
    } else {
      constexpr int P = N / 2;  // pairs in one 16-byte chunk
      Vec<T>* p = reinterpret_cast<Vec<T>*>(row + g * N);
      Vec<T> x = *p;
      const HalfVec<T> c = *reinterpret_cast<const HalfVec<T>*>(cos + g * P);
      const HalfVec<T> s = *reinterpret_cast<const HalfVec<T>*>(sin + g * P);
#pragma unroll
      for (int i = 0; i < P; ++i) {
        float y1, y2;
        rotate(to_float(x.v[2 * i]), to_float(x.v[2 * i + 1]), to_float(c.v[i]), to_float(s.v[i]),
               y1, y2);
        x.v[2 * i] = from_float<T>(y1);
        x.v[2 * i + 1] = from_float<T>(y2);
      }
      *p = x;
    }
  }
}

template <typename T, bool NEOX>
__global__ void rotary_scalar_kernel(const RotaryArgs a) {
  const int64_t token = blockIdx.x;
  const int64_t pos = a.positions[token];
  if (pos < 0 || pos >= a.max_position) {
    if (threadIdx.x == 0) record_bad_position(a.errors, token);
    return;
  }
  const int half = a.rot_dim / 2;
  const T* cos = static_cast<const T*>(a.cos_sin) + pos * a.rot_dim;
  const T* sin = cos + half;
  const int total = (a.num_heads + a.num_kv_heads) * half;
  for (int u = threadIdx.x; u < total; u += blockDim.x) {
    const int head = u / half, i = u - head * half;
    T* row = head_row<T>(a, token, head);
    const int i1 = NEOX ? i : 2 * i, i2 = NEOX ? i + half : 2 * i + 1;
    float y1, y2;
    rotate(to_float(row[i1]), to_float(row[i2]), to_float(cos[i]), to_float(sin[i]), y1, y2);
    row[i1] = from_float<T>(y1);
    row[i2] = from_float<T>(y2);
  }
}

template <typename T, bool NEOX>
void launch(const RotaryArgs& a, int64_t num_tokens, bool vec, cudaStream_t stream) {
  constexpr int N = 16 / sizeof(T);
  const int per_head = vec ? (NEOX ? a.rot_dim / 2 / N : a.rot_dim / N) : a.rot_dim / 2;
  const int total = (a.num_heads + a.num_kv_heads) * per_head;
  // One pass over the token's groups when it fits (32+8 heads x 8 groups = 320 threads).
  const int threads = std::clamp((total + 31) / 32 * 32, 32, 512);
  if (vec)
    rotary_vec_kernel<T, NEOX><<<unsigned(num_tokens), threads, 0, stream>>>(a);
  else
    rotary_scalar_kernel<T, NEOX><<<unsigned(num_tokens), threads, 0, stream>>>(a);
  DAY18_CHECK_LAUNCH();
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void rotary_embedding(const Tensor& positions, const Tensor& query, const Tensor& key,
                      const Tensor& cos_sin_cache, bool is_neox, const Tensor& errors,
                      cudaStream_t stream) {
  const int64_t num_tokens = query.size(0);
  if (num_tokens == 0) return;
  RotaryArgs a{};
  a.positions = positions.ptr<int64_t>();
  a.query = query.data();
  a.key = key.data();
  a.cos_sin = cos_sin_cache.data();
  a.errors = errors.data() ? static_cast<long long*>(errors.data()) : nullptr;
  a.query_stride = query.stride(0);
  a.key_stride = key.stride(0);
  a.max_position = cos_sin_cache.size(0);
  a.num_heads = int(query.size(1));
  a.num_kv_heads = int(key.size(1));
  a.head_size = int(query.size(2));
  a.rot_dim = int(cos_sin_cache.size(1));
  const int64_t esz = dtype_size(query.dtype());
  const int64_t n = 16 / esz;  // values per 16-byte vector
  // Every 16-byte access aligned: rows, halves and cos/sin rows start on 16 bytes. gptj reads
  // cos/sin as 8-byte halves, so its rot_dim/2 needs only 8-byte alignment (n/2 values).
  const bool vec = aligned16(query.data()) && aligned16(key.data()) &&
                   aligned16(cos_sin_cache.data()) && (a.head_size * esz) % 16 == 0 &&
                   (a.query_stride * esz) % 16 == 0 && (a.key_stride * esz) % 16 == 0 &&
                   (is_neox ? (a.rot_dim / 2) % n == 0 && (a.rot_dim * esz) % 16 == 0
                            : a.rot_dim % n == 0 && (a.rot_dim * esz) % 16 == 0);
  dispatch_float(query.dtype(), [&]<typename T>() {
    if (is_neox)
      launch<T, true>(a, num_tokens, vec, stream);
    else
      launch<T, false>(a, num_tokens, vec, stream);
  });
}

}  // namespace day18::cuda
