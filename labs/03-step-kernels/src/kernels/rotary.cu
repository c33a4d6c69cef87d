// generated from engine/kernels/rotary.cu by scripts/make_labs.py (lab 03);
// edit only inside the TODO regions.
// Rotary family kernels.
// rotary_embedding: one kernel per (dtype, style, vectorized or not):
//   vectorized: each thread rotates a 16-byte group (8 half / 4 float values of x1 and of x2 for
//               neox; 4 / 2 interleaved pairs for gptj), cos/sin read as vectors too;
//   scalar:     one pair per thread, for shapes the vectors do not fit (the plain loop).
// rotary_and_cache: one kernel per (dtype, style, vectorized or not), see below.
// Every kernel rotates a pair with rotate(), so the fused op and the unfused sequence agree bit
// for bit.
#include "engine/kernels/rotary.h"

#include <algorithm>

#include "engine/core/error.h"
#include "engine/kernels/pdl.cuh"
#include "engine/kernels/vec16.cuh"

namespace day18::cuda {
namespace {

// One pair, fp32. Spelled with explicit intrinsics: left to itself, the compiler may contract
// x1 * c - x2 * s into either of two FMAs (or none), and nothing promises the same choice in every
// kernel; fixed intrinsics make every kernel of the family round a pair the same way.
__device__ inline void rotate(float x1, float x2, float c, float s, float& y1, float& y2) {
  y1 = __fmaf_rn(x1, c, -__fmul_rn(x2, s));
  y2 = __fmaf_rn(x2, c, __fmul_rn(x1, s));
}

// Counts a bad index (a position or a slot) of row `token`; called by one thread per token.
__device__ inline void record_bad_index(long long* errors, long long token) {
  if (errors == nullptr) return;
  atomicAdd(reinterpret_cast<unsigned long long*>(&errors[0]), 1ull);
  atomicMin(&errors[1], token);
}

// W values of T, aligned for one W * sizeof(T)-byte access (16 or 8 bytes in the vector path).
template <typename T, int W>
struct alignas(W * sizeof(T)) Chunk {
  T v[W];
};

// One vector access when VEC (the launcher checked the alignment), else W scalar ones.
template <bool VEC, int W, typename T>
__device__ inline Chunk<T, W> load_chunk(const T* p) {
  if constexpr (VEC) {
    return *reinterpret_cast<const Chunk<T, W>*>(p);
  } else {
    Chunk<T, W> c;
#pragma unroll
    for (int i = 0; i < W; ++i) c.v[i] = p[i];
    return c;
  }
}

template <bool VEC, int W, typename T>
__device__ inline void store_chunk(T* p, const Chunk<T, W>& c) {
  if constexpr (VEC) {
    *reinterpret_cast<Chunk<T, W>*>(p) = c;
  } else {
#pragma unroll
    for (int i = 0; i < W; ++i) p[i] = c.v[i];
  }
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

// Block = one token; thread u takes units u, u + blockDim.x, ... of the token's
// (num_heads + num_kv_heads) x groups, query heads first (head_row). A group is W values of x1 and
// the W values of x2 rot_dim/2 further on (neox: W pairs), or W interleaved values (gptj: W/2
// pairs). VEC: W = 16 bytes of T, each access one vector (the launcher checked the alignment);
// else W = 1 (neox) or 2 (gptj): one pair per unit.
template <typename T, bool NEOX, bool VEC>
__global__ void rotary_kernel(const RotaryArgs a) {
  // For each pair (x1, x2) of the first rot_dim values of every query and key head of the token,
  // with c = cos[i], s = sin[i] of its position's row: x1' = x1 c - x2 s, x2' = x2 c + x1 s
  // (rotate()). Pair i is (i, i + rot_dim/2) for neox, (2i, 2i + 1) for gptj. Position outside
  // [0, max_position): touch nothing, record_bad_index(a.errors, token) from one thread.
  // LAB 03 BEGIN rotary_kernel [device]: rotate the token's pairs (about 30 lines)
  // TODO lab 03 task 4: The rotary embedding kernel (both styles)
  // (labs/03-step-kernels/README.md, Task 4)
  // (device code: until this is written the kernel leaves its output untouched)
  // LAB 03 END rotary_kernel
}

template <typename T, bool NEOX>
void launch(const RotaryArgs& a, int64_t num_tokens, bool vec, cudaStream_t stream) {
  constexpr int N = kVec16<T>;
  const int per_head = vec ? (NEOX ? a.rot_dim / 2 / N : a.rot_dim / N) : a.rot_dim / 2;
  const int total = (a.num_heads + a.num_kv_heads) * per_head;
  // One pass over the token's groups when it fits (32+8 heads x 8 groups = 320 threads).
  const int threads = std::clamp((total + 31) / 32 * 32, 32, 512);
  if (vec)
    rotary_kernel<T, NEOX, true><<<unsigned(num_tokens), threads, 0, stream>>>(a);
  else
    rotary_kernel<T, NEOX, false><<<unsigned(num_tokens), threads, 0, stream>>>(a);
  DAY18_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- rotary_and_cache
struct RacArgs {
  const int64_t* positions;
  const int64_t* slot_mapping;
  const void* query;
  const void* key;
  const void* value;
  void* query_out;
  void* key_cache;
  void* value_cache;
  const void* cos_sin;
  long long* position_errors;
  long long* slot_errors;
  int64_t query_stride, key_stride, value_stride;  // token strides, elements
  int64_t max_position, num_slots;
  int num_heads, num_kv_heads, head_size, rot_dim, block_size;
};

// Block = one token. Units of work, thread u taking units u, u + blockDim.x, ...:
//   [0, rot_units)        head h of query (h < num_heads) then key, unit g of that head:
//                         g < groups: rotation group g (W pairs for neox: values [gW, gW + W) and
//                         the same + rot_dim/2; W/2 pairs for gptj: values [gW, gW + W));
//                         g >= groups: copy chunk of the unrotated tail [rot_dim, head_size);
//   [rot_units, total)    copy chunk of a value head.
// Vector path: W = 16 bytes of T, copies 16 bytes. Scalar path: one pair per group, one value
// per copy. The key and value units of a token whose slot is -1 (or bad) do nothing at all.
template <typename T, bool NEOX, bool VEC>
__global__ void rotary_and_cache_kernel(const RacArgs a) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int W = VEC ? kVec : (NEOX ? 1 : 2);  // values of a rotation group
  constexpr int CW = NEOX ? W : W / 2;            // cos (and sin) values of a group
  constexpr int CP = VEC ? kVec : 1;              // values of a copy chunk
  pdl_launch_dependents();
  pdl_wait_primary();  // q, k, v are the previous kernel's (the QKV projection's) output
  const int64_t token = blockIdx.x;
  const int64_t pos = a.positions[token];  // same address across the block: broadcast loads
  const int64_t slot = a.slot_mapping[token];
  const bool pos_ok = pos >= 0 && pos < a.max_position;
  const bool slot_ok = slot >= 0 && slot < a.num_slots;
  if (threadIdx.x == 0) {
    if (!pos_ok) record_bad_index(a.position_errors, token);
    if (slot != -1 && !slot_ok) record_bad_index(a.slot_errors, token);
  }
  // Cache offset of (slot, kv head 0, dim 0); kv head h adds h * block_size * head_size. 32-bit
  // division when the slot fits (always, in practice): 64-bit division is ~100 instructions.
  int64_t cache_base = 0;
  if (slot_ok) {
    int64_t block, offset;
    if (slot <= int64_t(UINT32_MAX)) {
      const uint32_t b = uint32_t(slot) / uint32_t(a.block_size);
      block = b;
      offset = int64_t(uint32_t(slot) - b * uint32_t(a.block_size));
    } else {
      block = slot / a.block_size;
      offset = slot - block * a.block_size;
    }
    cache_base = (block * a.num_kv_heads * a.block_size + offset) * a.head_size;
  }
  const int64_t cache_head_stride = int64_t(a.block_size) * a.head_size;
  const int D = a.head_size, half = a.rot_dim / 2;
  const int groups = NEOX ? half / W : a.rot_dim / W;
  const int per_head = groups + (D - a.rot_dim) / CP;
  const int rot_units = (a.num_heads + a.num_kv_heads) * per_head;
  const int value_chunks = D / CP;
  const int total = rot_units + (slot_ok ? a.num_kv_heads * value_chunks : 0);
  const T* cos = static_cast<const T*>(a.cos_sin) + (pos_ok ? pos : 0) * a.rot_dim;
  const T* sin = cos + half;
  for (int u = threadIdx.x; u < total; u += blockDim.x) {
    const T* src;
    T* dst;
    int g;
    if (u < rot_units) {
      const int head = u / per_head;
      g = u - head * per_head;
      if (head < a.num_heads) {
        src = static_cast<const T*>(a.query) + token * a.query_stride + int64_t(head) * D;
        dst = static_cast<T*>(a.query_out) + (token * a.num_heads + head) * D;
      } else {
        if (!slot_ok) continue;  // key not cached: nothing to read or write
        const int h = head - a.num_heads;
        src = static_cast<const T*>(a.key) + token * a.key_stride + int64_t(h) * D;
        dst = static_cast<T*>(a.key_cache) + cache_base + h * cache_head_stride;
      }
      if (g < groups) {
        if constexpr (NEOX) {
          const int i = g * W;
          Chunk<T, W> x1 = load_chunk<VEC, W>(src + i), x2 = load_chunk<VEC, W>(src + half + i);
          if (pos_ok) {
            const Chunk<T, CW> c = load_chunk<VEC, CW>(cos + i), s = load_chunk<VEC, CW>(sin + i);
#pragma unroll
            for (int j = 0; j < W; ++j) {
              float y1, y2;
              rotate(to_float(x1.v[j]), to_float(x2.v[j]), to_float(c.v[j]), to_float(s.v[j]), y1,
                     y2);
              x1.v[j] = from_float<T>(y1);
              x2.v[j] = from_float<T>(y2);
            }
          }
          store_chunk<VEC>(dst + i, x1);
          store_chunk<VEC>(dst + half + i, x2);
        } else {
          const int i = g * W;
          Chunk<T, W> x = load_chunk<VEC, W>(src + i);
          if (pos_ok) {
            const Chunk<T, CW> c = load_chunk<VEC, CW>(cos + i / 2),
                               s = load_chunk<VEC, CW>(sin + i / 2);
#pragma unroll
            for (int j = 0; j < CW; ++j) {
              float y1, y2;
              rotate(to_float(x.v[2 * j]), to_float(x.v[2 * j + 1]), to_float(c.v[j]),
                     to_float(s.v[j]), y1, y2);
              x.v[2 * j] = from_float<T>(y1);
              x.v[2 * j + 1] = from_float<T>(y2);
            }
          }
          store_chunk<VEC>(dst + i, x);
        }
        continue;
      }
      g = a.rot_dim + (g - groups) * CP;  // tail chunk: copied as it is
    } else {
      const int w = u - rot_units, h = w / value_chunks;
      g = (w - h * value_chunks) * CP;
      src = static_cast<const T*>(a.value) + token * a.value_stride + int64_t(h) * D;
      dst = static_cast<T*>(a.value_cache) + cache_base + h * cache_head_stride;
    }
    store_chunk<VEC>(dst + g, load_chunk<VEC, CP>(src + g));
  }
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

// Grid = num_tokens blocks (one token each); threads = the token's units rounded up to a warp,
// 32..512 (Llama-3-8B fp16: 40 heads x 8 groups + 8 value heads x 16 chunks = 448 threads, one
// pass; a single decode token still spreads over 14 warps). Vector path when every pointer,
// token stride and head row allows 16-byte accesses and rot_dim splits into whole vectors.
void rotary_and_cache(const Tensor& query_out, const Tensor& query, const Tensor& key,
                      const Tensor& value, const Tensor& key_cache, const Tensor& value_cache,
                      const Tensor& slot_mapping, const Tensor& positions,
                      const Tensor& cos_sin_cache, bool is_neox, const Tensor& position_errors,
                      const Tensor& slot_errors, cudaStream_t stream) {
  const int64_t num_tokens = query.size(0);
  if (num_tokens == 0) return;
  RacArgs a{};
  a.positions = positions.ptr<int64_t>();
  a.slot_mapping = slot_mapping.ptr<int64_t>();
  a.query = query.data();
  a.key = key.data();
  a.value = value.data();
  a.query_out = query_out.data();
  a.key_cache = key_cache.data();
  a.value_cache = value_cache.data();
  a.cos_sin = cos_sin_cache.data();
  a.position_errors =
      position_errors.data() ? static_cast<long long*>(position_errors.data()) : nullptr;
  a.slot_errors = slot_errors.data() ? static_cast<long long*>(slot_errors.data()) : nullptr;
  a.query_stride = query.stride(0);
  a.key_stride = key.stride(0);
  a.value_stride = value.stride(0);
  a.max_position = cos_sin_cache.size(0);
  a.num_heads = int(query.size(1));
  a.num_kv_heads = int(key.size(1));
  a.head_size = int(query.size(2));
  a.rot_dim = int(cos_sin_cache.size(1));
  a.block_size = int(key_cache.size(2));
  a.num_slots = key_cache.size(0) * key_cache.size(2);
  const int64_t esz = dtype_size(query.dtype());
  const int64_t n = 16 / esz;  // values per 16-byte vector
  const bool vec = aligned16(query.data()) && aligned16(key.data()) && aligned16(value.data()) &&
                   aligned16(query_out.data()) && aligned16(key_cache.data()) &&
                   aligned16(value_cache.data()) && aligned16(cos_sin_cache.data()) &&
                   a.head_size % n == 0 && (a.query_stride * esz) % 16 == 0 &&
                   (a.key_stride * esz) % 16 == 0 && (a.value_stride * esz) % 16 == 0 &&
                   (is_neox ? (a.rot_dim / 2) % n == 0 : a.rot_dim % n == 0);
  // Units per token, as the kernel counts them (value units only for cached tokens).
  const int w = vec ? int(n) : (is_neox ? 1 : 2), cp = vec ? int(n) : 1;
  const int groups = is_neox ? a.rot_dim / 2 / w : a.rot_dim / w;
  const int total = (a.num_heads + a.num_kv_heads) * (groups + (a.head_size - a.rot_dim) / cp) +
                    a.num_kv_heads * (a.head_size / cp);
  const int threads = std::clamp((total + 31) / 32 * 32, 32, 512);
  dispatch_float(query.dtype(), [&]<typename T>() {
    auto kernel = is_neox ? (vec ? rotary_and_cache_kernel<T, true, true>
                                 : rotary_and_cache_kernel<T, true, false>)
                          : (vec ? rotary_and_cache_kernel<T, false, true>
                                 : rotary_and_cache_kernel<T, false, false>);
    // PDL: the block is scheduled while the QKV projection drains (see pdl.cuh).
    launch_pdl(kernel, dim3(unsigned(num_tokens)), dim3(threads), 0, stream, a);
    DAY18_CHECK_LAUNCH();
  });
}

}  // namespace day18::cuda
