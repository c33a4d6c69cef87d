// Sampling kernels: softmax, argmax, top_k_top_p_probs and the combined sampler.
//
// The lesson of this file, in four ideas.
//
// 1. Gumbel-max instead of a prefix scan. The textbook way to draw from probs p_i is to draw one
//    u ~ U(0,1) and find the first i whose prefix sum of p exceeds u: a sort-and-scan over the
//    vocabulary. The Gumbel-max trick needs neither: give every token its own u_i, and take
//        token = argmax_i  s_i + g_i,   s_i = (logit_i - max) / T,   g_i = -log(-log(u_i)).
//    P(token = i) = exp(s_i) / sum_j exp(s_j) exactly (the Gumbel distribution is what makes the
//    race "max of perturbed log-weights" land on i with probability proportional to its weight).
//    Restricting the argmax to the kept set samples the *renormalised* filtered distribution, so
//    top-k/top-p never need to rescale anything. An argmax is a reduction: any thread order, any
//    block shape, same answer - which is what lets the CPU oracle and the GPU agree token for
//    token.
//
// 2. Counter-based random numbers. u_i = Philox4x32-10(counter = (i/4, 0, offset), key = seed)
//    (philox.h): a pure function of (seed, offset, i), so a thread computes the numbers of the
//    positions it loaded, and the CPU computes the same ones. The per-sequence offset (the decode
//    step) makes every step draw fresh numbers; same (seed, offset) = same token.
//
// 3. Thresholds without a sort. Top-k keeps the tokens whose logit is >= the k-th largest; top-p
//    keeps those whose logit is >= the largest t with mass(logit >= t) >= p * mass(kept by top-k).
//    Both are thresholds on the logit, found by a radix select over the logit's bits: map a float
//    to a uint32 "key" whose unsigned order is the float order, histogram the top 8 bits of the
//    keys (counts for top-k, probability mass for top-p), walk the 256 bins from the top to the
//    bin where the running count/mass reaches k/p, and repeat on the next 8 bits inside that bin.
//    Four levels give the exact threshold key. As soon as the bin holding the threshold has few
//    enough elements (<= kCap), one more pass gathers them into shared memory, where a bitonic
//    sort and a double-precision prefix scan finish the job exactly - and in the same pass the
//    tokens above the bin (kept for sure) already enter the Gumbel argmax.
//
// 4. Count the passes. A row of a 128256-token vocabulary is 513 KB of fp32; a batch of 256 is
//    131 MB, far more than the 50 MB L2, so every pass over the logits costs ~45 us of HBM time on
//    an H100. Passes per row (each a float4-vectorized read of the whole row):
//      greedy                   1  (argmax)
//      top-k (k small) [+top-p] 3-4 (stats, 1-2 count histograms until the threshold bin and
//                                   everything above it fit in kCap, gather -> smem; the rest runs
//                                   in shared memory). 4 for the benchmark's normal(0, 2) rows:
//                                   the top level's bin [2, 8) holds ~16% of the row.
//      top-p only               3-5 (stats, 1-3 mass histograms until the bin fits, gather+sample)
//      no filter                2  (stats, sample)
//      worst case (adversarial) 10 (stats, 4+4 histogram levels, sample)
//    sampling_row_passes_read_and_reset() counts them, and the benchmark prints the count.
//
// 5. Counting passes is not enough: each pass must cost about its HBM time. What once made the
//    passes several times slower (H100, 256 x 128256 fp32, measured with ncu):
//    - histogram atomics of 32 lanes on the same shared word: the logits concentrate in few bins,
//      and the shared-memory atomic unit serialises same-word lanes. Fixed with lane-private
//      copies (histogram_pass): a warp's atomics always hit 32 different banks. top-k 50 +
//      top-p 0.9: 1209 -> 283 us.
//    - two accurate float logs per token to screen the Gumbel keys, and the double-precision
//      logs inlined at every unrolled call site (instruction-cache misses). Fixed with a log-free
//      screen and an out-of-line double key (GumbelScan). Plain sampling: 348 -> 244 us.
//    What is left is compute: Philox4x32-10 costs ~25 integer instructions per token, and every
//    token that may be sampled needs its random number (ncu: SM ~65% busy, DRAM ~28%, warps
//    mostly waiting on dependent integer/MUFU results). That, not bytes, bounds plain sampling
//    and top-p 0.95 (where ~36% of the row is kept).
//
// Mapping: grid = batch (one block per row), block = kThreads = 512 threads. softmax/argmax: two
// or more blocks per SM. The sampler: two blocks per SM (64 registers per thread, 66 KB of
// dynamic shared memory each), so a batch of 256 runs in one wave on the 132 SMs of an H100.
// ptxas still spills ~290 bytes per thread at 64 registers; one block per SM with 125 registers
// and no spills was measured too, and was 25-50% slower: half the warps to hide the Philox and
// exp latencies. A small batch (batch <= SMs / 32: decode at batch 1-4) would leave all but a
// few SMs idle while one block per row reads its 513 KB: the sampler then runs as one cluster of
// 8 blocks per row, which share pass 1 (each reads an eighth of the row, and the partial stats
// meet in distributed shared memory); block 0 of each cluster does the remaining passes, if any
// (greedy, the decode default, has none). See launch_sampling for the measurements.
#include "engine/kernels/sampling.h"

#include <cooperative_groups.h>

#include <atomic>
#include <cfloat>
#include <climits>
#include <cstdint>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/kernels/philox.h"
#include "engine/kernels/vec16.cuh"

namespace day18::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;               // 8 bits of the key per radix level
constexpr int kCap = 4096;               // candidates that shared memory holds (32 KB of u64)
constexpr int kItems = kCap / kThreads;  // candidates per thread in the shared-memory phase
constexpr int kSamplerBlocksPerSm = 2;   // see "Mapping" above
constexpr int kScanUnroll = 2;  // loads in flight in the Gumbel passes (register budget: 64)
constexpr int kCopies = 32;     // lane-private histogram copies (see histogram_pass)
constexpr int kUnroll = 4;      // 16-byte loads in flight per thread (memory-level parallelism)
constexpr int kClusterBlocks = kSamplerClusterBlocks;  // a portable cluster size (<= 8)
constexpr int kClusterSmsPerRow = 32;  // clusters while batch * 32 <= SMs (see launch_sampling)
static_assert(kCap % kThreads == 0 && kWarps <= 32);

__device__ unsigned long long g_row_passes = 0;

// ---- float <-> order-preserving key --------------------------------------------------------
// Positive floats: set the sign bit (they sort above all negatives, in their own order).
// Negative floats: flip all bits (a larger magnitude is a smaller key). -0 is folded into +0 so
// that equal logits always get equal keys.
__device__ __forceinline__ uint32_t float_key(float f) {
  uint32_t b = __float_as_uint(f);
  if (f == 0.f) b = 0;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_float(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

// Calls f(x, n, base) for the thread's share of one row: n values x[0..n) at vocab positions
// base.. base+n. Fast path: 16-byte loads (n = 16 / sizeof(T), base a multiple of n), kUnroll of
// them issued before any is used. Rows whose length or address is not 16-byte aligned take the
// scalar path (n = 1).
// kU: loads in flight per thread.
template <typename T, int kU = kUnroll, typename F>
__device__ __forceinline__ void for_each_in_row(const T* __restrict__ row, int vocab, F&& f) {
  constexpr int N = 16 / sizeof(T);
  const bool vec = vocab % N == 0 && (reinterpret_cast<uintptr_t>(row) & 15) == 0;
  if (vec) {
    const uint4* p = reinterpret_cast<const uint4*>(row);
    const int nv = vocab / N;
    int v = threadIdx.x;
    for (; v + (kU - 1) * kThreads < nv; v += kU * kThreads) {
      uint4 r[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) r[u] = __ldg(p + v + u * kThreads);
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        float x[N];
        unpack16<T>(r[u], x);
        f(x, N, (v + u * kThreads) * N);
      }
    }
    for (; v < nv; v += kThreads) {
      float x[N];
      unpack16<T>(__ldg(p + v), x);
      f(x, N, v * N);
    }
  } else {
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      float x = to_float(row[i]);
      f(&x, 1, i);
    }
  }
}

__device__ __forceinline__ void count_row_pass() {
  if (threadIdx.x == 0) atomicAdd(&g_row_passes, 1ull);
}

// ---- block reductions ----------------------------------------------------------------------
struct RowStats {
  float max;   // largest logit
  int arg;     // its lowest index
  double sum;  // sum of exp((logit - max) / T) (only when T > 0), accumulated in double
  int bad;     // 1: the row holds a NaN or +inf (no distribution: see sampling.h), max/arg/sum moot
};

struct Best {  // Gumbel argmax: largest key, ties -> lowest index
  double key;
  int idx;
};

__device__ __forceinline__ Best better(Best a, Best b) {
  return (a.key > b.key || (a.key == b.key && a.idx < b.idx)) ? a : b;
}
__device__ __forceinline__ Best shfl_xor(Best v, int m) {
  return {__shfl_xor_sync(0xffffffffu, v.key, m), __shfl_xor_sync(0xffffffffu, v.idx, m)};
}
__device__ __forceinline__ RowStats shfl_xor(RowStats v, int m) {
  return {__shfl_xor_sync(0xffffffffu, v.max, m), __shfl_xor_sync(0xffffffffu, v.arg, m),
          __shfl_xor_sync(0xffffffffu, v.sum, m), __shfl_xor_sync(0xffffffffu, v.bad, m)};
}
__device__ __forceinline__ double shfl_xor(double v, int m) {
  return __shfl_xor_sync(0xffffffffu, v, m);
}

// Every thread gets the result; the combine order is fixed, so every thread (and every run)
// gets the same bits. `red` holds kWarps values.
template <typename R, typename Combine>
__device__ R block_allreduce(R v, Combine comb, R* red) {
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) v = comb(v, shfl_xor(v, m));
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  R r = red[0];
  for (int w = 1; w < kWarps; ++w) r = comb(r, red[w]);
  __syncthreads();  // `red` may be reused right after
  return r;
}

// Two partial RowStats of disjoint parts of a row -> the stats of their union.
__device__ __forceinline__ RowStats combine_stats(RowStats a, RowStats b, float inv_t,
                                                  bool want_sum) {
  RowStats r;
  r.bad = a.bad | b.bad;
  r.max = fmaxf(a.max, b.max);
  r.arg = a.max > b.max ? a.arg : b.max > a.max ? b.arg : min(a.arg, b.arg);
  r.sum = 0.0;
  if (want_sum && r.max != -INFINITY) {
    if (a.max != -INFINITY) r.sum += a.sum * static_cast<double>(expf((a.max - r.max) * inv_t));
    if (b.max != -INFINITY) r.sum += b.sum * static_cast<double>(expf((b.max - r.max) * inv_t));
  }
  return r;
}

// Pass 1: max, its lowest index, and (T > 0) the softmax denominator, with the online-softmax
// rescaling so that one read suffices; and whether the row holds a NaN or +inf (one compare per
// logit in a pass that is read anyway: detecting it costs no extra memory traffic).
// `row` [0, n) holds the vocabulary positions first .. first + n (a slice when a cluster shares
// the row; the whole row otherwise).
template <typename T>
__device__ RowStats row_stats(const T* row, int n_values, float inv_t, bool want_sum,
                              RowStats* red, int first = 0) {
  RowStats s{-INFINITY, INT_MAX, 0.0, 0};
  for_each_in_row(row, n_values, [&](const float* x, int n, int base) {
    for (int j = 0; j < n; ++j) {
      const float v = x[j];
      s.bad |= !(v <= FLT_MAX);  // NaN or +inf
      // strict: the first (lowest) index of a tie stays; a row of -inf gets its first index
      if (v > s.max || s.arg == INT_MAX) {
        if (want_sum && s.max != -INFINITY) s.sum *= static_cast<double>(expf((s.max - v) * inv_t));
        s.max = v;
        s.arg = first + base + j;
      }
      if (want_sum && v != -INFINITY) s.sum += static_cast<double>(expf((v - s.max) * inv_t));
    }
  });
  return block_allreduce(
      s, [inv_t, want_sum](RowStats a, RowStats b) { return combine_stats(a, b, inv_t, want_sum); },
      red);
}

// ---- radix-select histograms ---------------------------------------------------------------
// Level `shift` (24, 16, 8, 0) looks at key bits [shift, shift+8) of the keys whose higher bits
// equal `prefix` (no condition at level 24) and that are >= `floor` (the top-k threshold when
// top-p searches inside the top-k set).
__device__ __forceinline__ bool in_level(uint32_t key, uint32_t floor, uint32_t prefix, int shift) {
  return key >= floor && (shift == 24 || (key >> (shift + 8)) == prefix);
}

// The histogram lives in shared memory as kCopies = 32 copies, laid out [bin][copy] with
// copy = lane: the 32 lanes of a warp always hit 32 different banks, whatever bins their values
// fall in. Logits concentrate in a few bins (a normal row puts most of its values in 2-3 bins of
// the top level); with one copy, the lanes of a warp would hit the same word and the shared-
// memory atomic unit would serialise them 32-fold - that made each histogram pass ~6x slower
// than its HBM time. Other warps still collide on a word, but one at a time, not 32 at a time.
// After the pass, each bin's 32 copies are summed (rotated so that lanes read distinct banks)
// into hcnt / hmass.
struct HistCopies {
  uint32_t cnt[kBins * kCopies];
  float mass[kBins * kCopies];
};

// Returns the total mass of the level's elements, summed in double (the float bins are only
// precise enough to choose a bin).
template <typename T>
__device__ double histogram_pass(const T* row, int vocab, uint32_t floor, uint32_t prefix,
                                 int shift, float max, float inv_t, HistCopies& hc, uint32_t* hcnt,
                                 float* hmass, double* red) {
  {
    uint4* z = reinterpret_cast<uint4*>(&hc);
    for (int i = threadIdx.x; i < static_cast<int>(sizeof(HistCopies) / 16); i += kThreads)
      z[i] = make_uint4(0, 0, 0, 0);
  }
  __syncthreads();
  count_row_pass();
  const int lane = threadIdx.x % 32;
  double total = 0;
  for_each_in_row(row, vocab, [&](const float* x, int n, int) {
    for (int j = 0; j < n; ++j) {
      const uint32_t key = float_key(x[j]);
      if (in_level(key, floor, prefix, shift)) {
        const uint32_t b = (key >> shift) & (kBins - 1);
        const float m = expf((x[j] - max) * inv_t);
        atomicAdd(&hc.cnt[b * kCopies + lane], 1u);
        atomicAdd(&hc.mass[b * kCopies + lane], m);
        total += static_cast<double>(m);
      }
    }
  });
  total = block_allreduce(
      total, [](double a, double b) { return a + b; }, red);  // syncs: the copies are complete
  for (int b = threadIdx.x; b < kBins; b += kThreads) {
    uint32_t c = 0;
    float m = 0.f;
    for (int j = 0; j < kCopies; ++j) {
      const int at = b * kCopies + ((j + lane) % kCopies);  // lanes read distinct banks
      c += hc.cnt[at];
      m += hc.mass[at];
    }
    hcnt[b] = c;
    hmass[b] = m;
  }
  __syncthreads();
  return total;
}

// Result of walking a histogram from the top bin down.
struct Walk {
  int bin;               // the bin holding the threshold
  uint32_t cnt_greater;  // elements in bins above it
  double mass_greater;   // their mass
  uint32_t cnt_bin;
  double mass_bin;
};

// Warp 0 walks: lane l owns bins [8l, 8l+8); a suffix scan over lanes gives each lane the count
// and mass above its bins. The chosen bin is the highest b with
//   above + sum_{bins >= b} >= need   (need = k for counts, the mass target for top-p).
// The bin masses are float sums; a target within ~1e-6 of a bin edge can pick the neighbour bin,
// which moves the top-p cut by a token at most (see the tests' agreement-rate justification).
__device__ void walk_histogram(const uint32_t* hcnt, const float* hmass, bool by_mass,
                               uint32_t cnt_above, double mass_above, double need, Walk* out) {
  if (threadIdx.x >= 32) return;
  const int lane = threadIdx.x;
  constexpr int kPer = kBins / 32;
  uint32_t c = 0;
  double m = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    c += hcnt[lane * kPer + j];
    m += hmass[lane * kPer + j];
  }
  uint32_t sc = c;  // inclusive suffix over lanes
  double sm = m;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t vc = __shfl_down_sync(0xffffffffu, sc, off);
    const double vm = __shfl_down_sync(0xffffffffu, sm, off);
    if (lane + off < 32) {
      sc += vc;
      sm += vm;
    }
  }
  // Highest satisfying bin in this lane.
  uint32_t run_c = cnt_above + (sc - c);
  double run_m = mass_above + (sm - m);
  int mine = -1;
  for (int j = kPer - 1; j >= 0; --j) {
    const int b = lane * kPer + j;
    run_c += hcnt[b];
    run_m += hmass[b];
    if (by_mass ? run_m >= need : run_c >= static_cast<uint32_t>(need)) {
      mine = b;
      break;
    }
  }
  int lowest_nonempty = INT_MAX;
  for (int j = 0; j < kPer; ++j)
    if (hcnt[lane * kPer + j] != 0) {
      lowest_nonempty = lane * kPer + j;
      break;
    }
  int chosen = mine;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    chosen = max(chosen, __shfl_xor_sync(0xffffffffu, chosen, off));
    lowest_nonempty = min(lowest_nonempty, __shfl_xor_sync(0xffffffffu, lowest_nonempty, off));
  }
  // Rounding can leave the target a hair above the total mass (p close to 1): take the lowest
  // non-empty bin then (everything is kept down to it).
  if (chosen < 0) chosen = lowest_nonempty;
  if (lane == chosen / kPer) {
    uint32_t cg = cnt_above + (sc - c);
    double mg = mass_above + (sm - m);
    for (int b = lane * kPer + kPer - 1; b > chosen; --b) {
      cg += hcnt[b];
      mg += hmass[b];
    }
    out->bin = chosen;
    out->cnt_greater = cg - cnt_above;
    out->mass_greater = mg - mass_above;
    out->cnt_bin = hcnt[chosen];
    out->mass_bin = hmass[chosen];
  }
}

// ---- the Gumbel key ------------------------------------------------------------------------
// Double precision, bit-for-bit the CPU oracle's formula, so that both backends rank tokens the
// same. Computing it for every token would be slow (two double-precision logs), and even two
// float logs per token made the sampling pass compute-bound. So each thread keeps `bound`, a
// float a little below its best key so far, and screens every token with cheap float math
// that can only err towards "maybe": a token is worth the double key only if
//     s + g >= bound,   s = (logit - max) / T,  g = -log(y),  y = -log(u)
//   <=> y <= e := exp(s - bound)  <=>  u >= exp(-e)  <=>  w := 1 - u <= 1 - exp(-e).
// w is exact in float (u has 24 bits), and min(e, 1 - exp(-e) + 1e-5) bounds 1 - exp(-e) from
// above for every e despite the fast exponentials' rounding. Before that, a token with
// s < bound - 16.7 cannot win even with the largest Gumbel value a 24-bit u gives
// (-log(-log(1 - 2^-24)) = 16.64): its Philox numbers are never computed.
// The margin of `bound` below the best key (1e-4 + 1e-5 |key|) dwarfs the float errors of s, e
// and the double -> float rounding, so the screen never drops a token that would win.
struct GumbelRow {
  uint64_t seed, offset;
  float max;
  float inv_t;
  double t;
};

// Out of line: the scan loops are unrolled, and an inlined copy of the double logs at every
// call site made the kernel's hot loops too big for the instruction cache. It runs rarely.
__device__ __noinline__ double gumbel_key(float v, float max, double t, uint32_t bits) {
  const double u = uniform_from_bits(bits);
  return (static_cast<double>(v) - static_cast<double>(max)) / t - log(-log(u));
}

constexpr float kMaxGumbel = 16.7f;  // > -log(-log(1 - 2^-24)) = 16.635

struct GumbelScan {
  Best best{-INFINITY, INT_MAX};
  float bound = -INFINITY;  // tokens whose key is below this cannot beat `best`
  uint32_t group = 0xffffffffu;
  Philox4x32 bits{};

  // The cheap screen of one token whose random word is r; the double key only if it may win.
  __device__ __forceinline__ void screen(const GumbelRow& g, float v, float s, int i, uint32_t r) {
    if (bound > -INFINITY) {
      const float e = __expf(s - bound);
      const float w = __uint2float_rn(2u * (0x7FFFFFu - (r >> 9)) + 1u) * 5.9604645e-8f;  // 1 - u
      if (w > fminf(e * 1.00001f, 1.f - __expf(-e) + 1e-5f)) return;
    }
    best = better(best, Best{gumbel_key(v, g.max, g.t, r), i});
    if (best.key > -INFINITY) {
      const float bf = static_cast<float>(best.key);
      bound = bf - (1e-4f + 1e-5f * fabsf(bf));
    }
  }

  // One token at a time (any position); caches the Philox block of the last group.
  __device__ __forceinline__ void offer(const GumbelRow& g, float v, int i) {
    const float s = (v - g.max) * g.inv_t;
    if (s < bound - kMaxGumbel) return;
    const uint32_t grp = static_cast<uint32_t>(i) >> 2;
    if (grp != group) {
      bits = sampling_random_bits(g.seed, g.offset, grp);
      group = grp;
    }
    // Selects instead of bits.v[i & 3]: a runtime index would put `bits` in local memory.
    const int q = i & 3;
    screen(g, v, s, i, q == 0 ? bits.v[0] : q == 1 ? bits.v[1] : q == 2 ? bits.v[2] : bits.v[3]);
  }

  // The n tokens of one vector load at positions base.. (every token offered): whole Philox
  // groups of 4 when aligned, one Philox call per group and none for a group that cannot win.
  __device__ __forceinline__ void offer_all(const GumbelRow& g, const float* x, int n, int base) {
    if (n % 4 != 0 || base % 4 != 0) {
      for (int j = 0; j < n; ++j) offer(g, x[j], base + j);
      return;
    }
    for (int q = 0; q < n; q += 4) {
      float s[4];
      bool any = false;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[j] = (x[q + j] - g.max) * g.inv_t;
        any |= !(s[j] < bound - kMaxGumbel);
      }
      if (!any) continue;
      const Philox4x32 b =
          sampling_random_bits(g.seed, g.offset, static_cast<uint32_t>(base + q) >> 2);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (!(s[j] < bound - kMaxGumbel)) screen(g, x[q + j], s[j], base + q + j, b.v[j]);
    }
  }
};

// ---- shared-memory finish --------------------------------------------------------------------
__device__ __forceinline__ uint64_t pack_candidate(uint32_t key, int idx) {
  return (static_cast<uint64_t>(~key) << 32) | static_cast<uint32_t>(idx);  // ascending = key desc
}
__device__ __forceinline__ uint32_t cand_key(uint64_t c) {
  return ~static_cast<uint32_t>(c >> 32);
}
__device__ __forceinline__ int cand_idx(uint64_t c) {
  return static_cast<int>(c & 0xffffffffu);
}

__device__ void bitonic_sort(uint64_t* a, int n2) {
  for (int k = 2; k <= n2; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n2; i += kThreads) {
        const int p = i ^ j;
        if (p > i) {
          const uint64_t x = a[i], y = a[p];
          const bool ascending = (i & k) == 0;
          if ((x > y) == ascending) {
            a[i] = y;
            a[p] = x;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Number of leading (sorted, key-descending) candidates among the first n whose key >= t.
// Requires cand[0] >= t. All threads get the answer.
__device__ int count_at_least(const uint64_t* cand, int n, uint32_t t, int* slot) {
  for (int j = threadIdx.x; j < n; j += kThreads)
    if (cand_key(cand[j]) >= t && (j + 1 == n || cand_key(cand[j + 1]) < t)) *slot = j + 1;
  __syncthreads();
  const int r = *slot;
  __syncthreads();
  return r;
}

// 64 KB: more than the 48 KB of static shared memory, so the sampler takes it as dynamic shared
// memory (two blocks still fit on an SM). The histogram copies and the candidate buffer are never
// live at the same time.
struct SmemShared {
  union {
    uint64_t cand[kCap];
    HistCopies hc;
  };
  uint32_t hcnt[kBins];
  float hmass[kBins];
  double warp_tot[kWarps];
  Walk walk;
  int ncand;
  int slot;
  int jstar;
  double z_kept;
  union {
    RowStats stats[kWarps];
    Best best[kWarps];
    double sum[kWarps];
  } red;
  RowStats cluster_part;  // this block's slice of the row (a cluster shares the first pass)
};

// Block-wide exclusive prefix sum of one double per thread; also returns the total.
__device__ double block_exclusive_sum(double v, double* total, SmemShared& sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  double incl = v;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const double o = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += o;
  }
  if (lane == 31) sh.warp_tot[warp] = incl;
  __syncthreads();
  double before = 0, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += sh.warp_tot[w];
    all += sh.warp_tot[w];
  }
  __syncthreads();
  *total = all;
  return before + incl - v;
}

struct Finish {
  uint32_t t_final;  // kept = key >= t_final
  double z_kept;     // mass of the kept set
};

// Candidates cand[0..n) are in shared memory (unsorted). `k_rank` > 0: they are every token
// with key >= some bound and top-k still has to be applied (k-th largest = position k-1).
// `use_p`: top-p cut with `target` (or p * top-k mass when k_rank > 0), `mass_above` = mass of
// kept tokens not in the buffer (all larger than every candidate). Sampling offers the kept
// candidates to `scan`.
__device__ Finish finish_in_smem(SmemShared& sh, int n, int k_rank, bool use_p, float top_p,
                                 double target, double mass_above, const GumbelRow& g,
                                 GumbelScan* scan) {
  int n2 = 1;
  while (n2 < n) n2 <<= 1;
  for (int j = n + threadIdx.x; j < n2; j += kThreads) sh.cand[j] = ~0ull;
  __syncthreads();
  bitonic_sort(sh.cand, n2);

  int n_k = n;
  if (k_rank > 0) n_k = count_at_least(sh.cand, n, cand_key(sh.cand[k_rank - 1]), &sh.slot);

  // Masses of the top-k-kept candidates, in double, exactly as the CPU oracle computes them;
  // thread t owns the consecutive positions [t * kItems, (t + 1) * kItems).
  double mass[kItems];
  double local = 0;
#pragma unroll
  for (int e = 0; e < kItems; ++e) {
    const int j = threadIdx.x * kItems + e;
    mass[e] = 0;
    if (j < n_k)
      mass[e] = exp((static_cast<double>(key_float(cand_key(sh.cand[j]))) - g.max) / g.t);
    local += mass[e];
  }
  double total = 0;
  const double excl = block_exclusive_sum(local, &total, sh);

  int n_kept = n_k;
  if (use_p) {
    if (k_rank > 0) target = static_cast<double>(top_p) * total;
    // j* = the first position whose inclusive prefix reaches the target. Each thread tests its
    // own positions; atomicMin makes the answer unique and deterministic even where two threads'
    // differently-associated double sums disagree in the last bit at their boundary. Never
    // reached (rounding, p close to 1): keep every candidate.
    if (threadIdx.x == 0) sh.jstar = n_k - 1;
    __syncthreads();
    double run = mass_above + excl;
#pragma unroll
    for (int e = 0; e < kItems; ++e) {
      const int j = threadIdx.x * kItems + e;
      run += mass[e];
      if (j < n_k && run >= target) {
        atomicMin(&sh.jstar, j);
        break;
      }
    }
    __syncthreads();
    n_kept = count_at_least(sh.cand, n_k, cand_key(sh.cand[sh.jstar]), &sh.slot);
  }

  // Mass of the kept set (for the probs output) and the Gumbel argmax over it.
  double run = excl;
#pragma unroll
  for (int e = 0; e < kItems; ++e) {
    const int j = threadIdx.x * kItems + e;
    run += mass[e];
    if (j == n_kept - 1) sh.z_kept = mass_above + run;
    if (scan && j < n_kept) {
      const uint64_t c = sh.cand[j];
      scan->offer(g, key_float(cand_key(c)), cand_idx(c));
    }
  }
  __syncthreads();
  return {cand_key(sh.cand[n_kept - 1]), sh.z_kept};
}

// Appends c to sh.cand with one shared atomic per warp instead of one per candidate (the lanes
// that append at the same time take consecutive slots).
__device__ __forceinline__ void append_candidate(SmemShared& sh, uint64_t c) {
  const unsigned active = __activemask();
  const int lane = threadIdx.x % 32;
  const int leader = __ffs(active) - 1;
  int base = 0;
  if (lane == leader) base = atomicAdd(&sh.ncand, __popc(active));
  base = __shfl_sync(active, base, leader);
  sh.cand[base + __popc(active & ((1u << lane) - 1u))] = c;
}

// ---- the sampler ---------------------------------------------------------------------------
template <typename T, bool kProbs>
__global__ void __launch_bounds__(kThreads, kSamplerBlocksPerSm)
    sampling_kernel(int* __restrict__ tokens, float* __restrict__ probs,
                    const T* __restrict__ logits, const float* __restrict__ temperature,
                    const int* __restrict__ top_k, const float* __restrict__ top_p,
                    const int64_t* __restrict__ seeds, const int64_t* __restrict__ offsets,
                    int vocab) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  SmemShared& sh = *reinterpret_cast<SmemShared*>(smem_raw);
  // A small batch is launched as clusters of kClusterBlocks blocks per row (see launch_sampling):
  // the cluster reads the row once for pass 1, each block its slice, and exchanges the partial
  // stats through distributed shared memory; block 0 of the cluster then does the rest alone.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
  const int csize = static_cast<int>(cluster.num_blocks());
  const int crank = static_cast<int>(cluster.block_rank());
#else
  constexpr int csize = 1, crank = 0;
#endif
  const int row_id = static_cast<int>(blockIdx.x) / csize;
  const T* row = logits + static_cast<int64_t>(row_id) * vocab;
  float* prow = kProbs ? probs + static_cast<int64_t>(row_id) * vocab : nullptr;

  const float temp = temperature[row_id];
  const bool greedy = !(temp > 0.f);  // the ops layer rejects < 0 and NaN
  const float inv_t = greedy ? 0.f : 1.f / temp;
  const int k = top_k[row_id];
  const float p = fminf(fmaxf(top_p[row_id], FLT_MIN), 1.f);
  const bool use_k = k > 0 && k < vocab;
  const bool use_p = p < 1.f;

  RowStats st;
  if (csize == 1) {
    count_row_pass();
    st = row_stats(row, vocab, inv_t, !greedy, sh.red.stats);
  } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (crank == 0) count_row_pass();  // the cluster reads the row once
    constexpr int kN = 16 / sizeof(T);  // slices start at 16-byte boundaries
    const int per = ((vocab + csize - 1) / csize + kN - 1) / kN * kN;
    const int first = min(vocab, crank * per);
    const RowStats part = row_stats(row + first, min(vocab, first + per) - first, inv_t, !greedy,
                                    sh.red.stats, first);
    if (threadIdx.x == 0) sh.cluster_part = part;
    cluster.sync();  // every block's part is written
    // Combined in rank order by every thread of every block: the same bits everywhere.
    st = *cluster.map_shared_rank(&sh.cluster_part, 0);
    for (int b = 1; b < csize; ++b)
      st = combine_stats(st, *cluster.map_shared_rank(&sh.cluster_part, b), inv_t, !greedy);
    cluster.sync();  // no block leaves (freeing its shared memory) before all have read it
#endif
    if (crank != 0) return;
  }
  if (st.bad) {  // NaN or +inf: no distribution (every thread has the same st: uniform exit)
    if constexpr (kProbs) {
      for (int i = threadIdx.x; i < vocab; i += kThreads) prow[i] = __int_as_float(0x7fc00000);
    } else if (threadIdx.x == 0) {
      tokens[row_id] = -1;
    }
    return;
  }

  // Writes probs = mass / z for key >= t (one-hot at the argmax when greedy).
  auto write_probs = [&](uint32_t t, float z, bool one_hot) {
    count_row_pass();
    const float inv_z = 1.f / z;
    auto value = [&](float v, int i) {
      if (one_hot) return i == st.arg ? 1.f : 0.f;
      return float_key(v) >= t ? expf((v - st.max) * inv_t) * inv_z : 0.f;
    };
    for_each_in_row(row, vocab, [&](const float* x, int n, int base) {
      if (n % 4 == 0 && (reinterpret_cast<uintptr_t>(prow + base) & 15) == 0) {
        for (int j = 0; j < n; j += 4)
          *reinterpret_cast<float4*>(prow + base + j) =
              make_float4(value(x[j], base + j), value(x[j + 1], base + j + 1),
                          value(x[j + 2], base + j + 2), value(x[j + 3], base + j + 3));
      } else {
        for (int j = 0; j < n; ++j) prow[base + j] = value(x[j], base + j);
      }
    });
  };

  if (greedy || st.max == -INFINITY) {  // all -inf: nothing to sample, fall back to argmax
    if constexpr (kProbs)
      write_probs(0, 1.f, true);
    else if (threadIdx.x == 0)
      tokens[row_id] = st.arg;
    return;
  }

  const GumbelRow g{static_cast<uint64_t>(seeds ? seeds[row_id] : 0),
                    static_cast<uint64_t>(offsets ? offsets[row_id] : 0), st.max, inv_t,
                    static_cast<double>(temp)};
  GumbelScan scan;

  enum Phase { kNone, kCount, kMass };
  Phase phase = use_k ? kCount : use_p ? kMass : kNone;
  uint32_t floor = 0, prefix = 0, cnt_above = 0;
  int shift = 24;
  double mass_above = 0;
  // Top-p's target mass: p times the mass of the set it cuts (all tokens, or the top-k set).
  double target = static_cast<double>(p) * st.sum;
  Finish fin{0u, static_cast<double>(st.sum)};  // no filter: everything kept
  bool sampled = false;                         // the Gumbel argmax is already in `scan`

  while (phase != kNone) {
    const double level_mass = histogram_pass(row, vocab, floor, prefix, shift, st.max, inv_t, sh.hc,
                                             sh.hcnt, sh.hmass, sh.red.sum);
    // Top-p after top-k: the target is p times the top-k set's mass, summed in double.
    if (phase == kMass && shift == 24 && use_k) target = static_cast<double>(p) * level_mass;
    walk_histogram(sh.hcnt, sh.hmass, phase == kMass, cnt_above, mass_above,
                   phase == kMass ? target : static_cast<double>(k), &sh.walk);
    __syncthreads();
    const Walk w = sh.walk;
    __syncthreads();
    cnt_above += w.cnt_greater;
    mass_above += w.mass_greater;
    prefix = (shift == 24 ? 0u : prefix << 8) | static_cast<uint32_t>(w.bin);
    const uint32_t lo = prefix << shift;
    const uint32_t hi = lo | (shift == 0 ? 0u : (1u << shift) - 1u);

    if (shift == 0) {  // exact threshold key
      if (phase == kCount) {
        floor = lo;
        fin = {lo, mass_above + w.mass_bin};
        if (use_p) {  // top-p inside the top-k set: restart the search above `floor`
          phase = kMass;
          prefix = cnt_above = 0;
          mass_above = 0;
          shift = 24;
          continue;
        }
      } else {
        fin = {lo, mass_above + w.mass_bin};
      }
      break;
    }
    const bool gather_all_above = phase == kCount && cnt_above + w.cnt_bin <= kCap;
    const bool gather_bin = phase == kMass && w.cnt_bin <= kCap;
    if (gather_all_above || gather_bin) {
      // One more pass: the bin's tokens (top-k: and everything above it) go to shared memory;
      // top-p: tokens above the bin are kept for sure and enter the Gumbel argmax right away.
      if (threadIdx.x == 0) sh.ncand = 0;
      __syncthreads();
      count_row_pass();
      // The mass above the bin is re-summed here in double: the histogram's float bin sums
      // were good enough to pick the bin, not to place the cut inside it.
      const uint32_t top = gather_all_above ? 0xffffffffu : hi;
      double above = 0;
      for_each_in_row<T, kScanUnroll>(row, vocab, [&](const float* x, int n, int base) {
        for (int j = 0; j < n; ++j) {
          const uint32_t key = float_key(x[j]);
          if (key < floor || key < lo) continue;
          if (key <= top) {
            append_candidate(sh, pack_candidate(key, base + j));
          } else {
            above += static_cast<double>(expf((x[j] - st.max) * inv_t));
            if (!kProbs) scan.offer(g, x[j], base + j);
          }
        }
      });
      above = block_allreduce(
          above, [](double a, double b) { return a + b; }, sh.red.sum);
      fin = finish_in_smem(sh, sh.ncand, gather_all_above ? k : 0, use_p, p, target, above, g,
                           kProbs ? nullptr : &scan);
      sampled = true;
      break;
    }
    shift -= 8;
  }

  if constexpr (kProbs) {
    write_probs(fin.t_final, static_cast<float>(fin.z_kept), false);
  } else {
    if (!sampled) {  // one pass: Gumbel argmax over every kept token
      count_row_pass();
      for_each_in_row<T, kScanUnroll>(row, vocab, [&](const float* x, int n, int base) {
        if (fin.t_final == 0u) {
          scan.offer_all(g, x, n, base);
        } else {
          for (int j = 0; j < n; ++j)
            if (float_key(x[j]) >= fin.t_final) scan.offer(g, x[j], base + j);
        }
      });
    }
    const Best b = block_allreduce(
        scan.best, [](Best x, Best y) { return better(x, y); }, sh.red.best);
    if (threadIdx.x == 0) tokens[row_id] = b.idx == INT_MAX ? st.arg : b.idx;
  }
}

// ---- softmax and argmax --------------------------------------------------------------------
template <typename T>
__global__ void __launch_bounds__(kThreads)
    softmax_kernel(float* __restrict__ probs, const T* __restrict__ logits,
                   const float* __restrict__ temperature, int vocab) {
  __shared__ RowStats red[kWarps];
  const T* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float* prow = probs + static_cast<int64_t>(blockIdx.x) * vocab;
  const float temp = temperature[blockIdx.x];
  const bool greedy = !(temp > 0.f);
  const float inv_t = greedy ? 0.f : 1.f / temp;
  const RowStats st = row_stats(row, vocab, inv_t, !greedy, red);
  if (st.bad) {  // NaN or +inf: no distribution (see sampling.h)
    for (int i = threadIdx.x; i < vocab; i += kThreads) prow[i] = __int_as_float(0x7fc00000);
    return;
  }
  const float inv_z = static_cast<float>(1.0 / st.sum);
  for_each_in_row(row, vocab, [&](const float* x, int n, int base) {
    float o[8];
    for (int j = 0; j < n; ++j)
      o[j] = greedy ? (base + j == st.arg ? 1.f : 0.f) : expf((x[j] - st.max) * inv_t) * inv_z;
    if (n % 4 == 0 && (reinterpret_cast<uintptr_t>(prow + base) & 15) == 0) {
      for (int j = 0; j < n; j += 4)
        *reinterpret_cast<float4*>(prow + base + j) =
            make_float4(o[j], o[j + 1], o[j + 2], o[j + 3]);
    } else {
      for (int j = 0; j < n; ++j) prow[base + j] = o[j];
    }
  });
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    argmax_kernel(int* __restrict__ tokens, const T* __restrict__ logits, int vocab) {
  __shared__ RowStats red[kWarps];
  const RowStats st =
      row_stats(logits + static_cast<int64_t>(blockIdx.x) * vocab, vocab, 0.f, false, red);
  if (threadIdx.x == 0) tokens[blockIdx.x] = st.bad ? -1 : st.arg;
}

// Thread-block clusters (sm_90 and later) on the current device; asked once per device.
bool cluster_launch_supported() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};  // 0 unknown, 1 no, 2 yes
  int dev = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= kMaxDevices) return false;
  int v = cached[dev].load(std::memory_order_relaxed);
  if (v == 0) {
    int yes = 0;
    DAY18_CUDA_CHECK(cudaDeviceGetAttribute(&yes, cudaDevAttrClusterLaunch, dev));
    v = yes ? 2 : 1;
    cached[dev].store(v, std::memory_order_relaxed);
  }
  return v == 2;
}

template <bool kProbs>
void launch_sampling(int* tokens, float* probs, const Tensor& logits, const Tensor& temperature,
                     const Tensor& top_k, const Tensor& top_p, const int64_t* seeds,
                     const int64_t* offsets, cudaStream_t stream, int blocks_per_row = 0) {
  const int batch = static_cast<int>(logits.size(0));
  const int vocab = static_cast<int>(logits.size(1));
  if (batch == 0) return;
  // Small batch: kClusterBlocks blocks per row (one cluster each), so that the first pass over a
  // 128K-token row is not one SM's work. Only up to SMs / 32 rows (4 on 132 SMs): measured on
  // the H200 (BM_sample_small_batch, 128256 fp32 logits), a cluster per row wins at batch 1 in
  // every mode (greedy 26.7 -> 12.8 us, plain 151 -> 128, top-k 50 + top-p 0.9 205 -> 180) but
  // loses at batch 16 where block 0 of each cluster samples alone (plain 156 -> 194 us: the
  // clusters' first blocks share SMs).
  DAY18_REQUIRE(blocks_per_row == 0 || blocks_per_row == 1 || blocks_per_row == kClusterBlocks,
                "sample: blocks_per_row ", blocks_per_row, " must be 0 (auto), 1 or ",
                kClusterBlocks);
  dispatch_float(logits.dtype(), [&]<typename T>() {
    constexpr int smem = static_cast<int>(sizeof(SmemShared));
    auto* kernel = sampling_kernel<T, kProbs>;
    DAY18_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    // Clusters need the GPU (sm_90+) and a kernel binary compiled for it: built for an older
    // architecture, the kernel has no cluster code and must get one block per row.
    static const int binary_version = [&] {
      cudaFuncAttributes fa = {};
      DAY18_CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
      return fa.binaryVersion;
    }();
    const bool clusters = binary_version >= 90 && cluster_launch_supported();
    DAY18_REQUIRE(blocks_per_row <= 1 || clusters, "sample: blocks_per_row ", blocks_per_row,
                  " needs thread-block clusters (an sm_90 GPU and kernel)");
    const int per_row = blocks_per_row != 0 ? blocks_per_row
                        : clusters && batch * kClusterSmsPerRow <= sm_count() ? kClusterBlocks
                                                                              : 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(static_cast<unsigned>(batch * per_row));
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = static_cast<unsigned>(per_row);
    attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = per_row > 1 ? 1 : 0;
    DAY18_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, tokens, probs, logits.ptr<T>(),
                                        temperature.ptr<float>(), top_k.ptr<int32_t>(),
                                        top_p.ptr<float>(), seeds, offsets, vocab));
    DAY18_CHECK_LAUNCH();
  });
}

}  // namespace

// grid = batch (a block per row), block = 512: pass 1 (max, sum) then a write pass.
void softmax(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
             cudaStream_t stream) {
  const int batch = static_cast<int>(logits.size(0));
  const int vocab = static_cast<int>(logits.size(1));
  if (batch == 0) return;
  dispatch_float(logits.dtype(), [&]<typename T>() {
    softmax_kernel<T><<<batch, kThreads, 0, stream>>>(probs.ptr<float>(), logits.ptr<T>(),
                                                      temperature.ptr<float>(), vocab);
    DAY18_CHECK_LAUNCH();
  });
}

// grid = batch (a block per row), block = 512: one read of the row, block argmax.
void argmax(const Tensor& tokens, const Tensor& logits, cudaStream_t stream) {
  const int batch = static_cast<int>(logits.size(0));
  const int vocab = static_cast<int>(logits.size(1));
  if (batch == 0) return;
  dispatch_float(logits.dtype(), [&]<typename T>() {
    argmax_kernel<T><<<batch, kThreads, 0, stream>>>(tokens.ptr<int32_t>(), logits.ptr<T>(), vocab);
    DAY18_CHECK_LAUNCH();
  });
}

// grid = batch (a block per row), block = 512: the sampler's threshold search, then a write pass.
void top_k_top_p_probs(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
                       const Tensor& top_k, const Tensor& top_p, cudaStream_t stream) {
  launch_sampling<true>(nullptr, probs.ptr<float>(), logits, temperature, top_k, top_p, nullptr,
                        nullptr, stream);
}

// grid = batch (a block, or a cluster of 8, per row), block = 512: see the pass table at the top.
void sample(const Tensor& tokens, const Tensor& logits, const Tensor& temperature,
            const Tensor& top_k, const Tensor& top_p, const Tensor& seeds, const Tensor& offsets,
            cudaStream_t stream, int blocks_per_row) {
  launch_sampling<false>(tokens.ptr<int32_t>(), nullptr, logits, temperature, top_k, top_p,
                         seeds.ptr<int64_t>(), offsets.ptr<int64_t>(), stream, blocks_per_row);
}

uint64_t sampling_row_passes_read_and_reset() {
  unsigned long long v = 0, zero = 0;
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  DAY18_CUDA_CHECK(cudaMemcpyFromSymbol(&v, g_row_passes, sizeof(v)));
  DAY18_CUDA_CHECK(cudaMemcpyToSymbol(g_row_passes, &zero, sizeof(zero)));
  return v;
}

}  // namespace day18::cuda
