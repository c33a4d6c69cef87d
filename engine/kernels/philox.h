// Philox4x32-10: the counter-based random number generator of
//   J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel Random Numbers: As Easy as
//   1, 2, 3", SC '11 (Random123). https://doi.org/10.1145/2063384.2063405
//
// A counter-based RNG is a pure function  bits = philox(counter, key): no state to carry, no
// sequence to advance. That is exactly what a sampler that must be reproducible on two backends
// needs: the CPU oracle and the GPU kernel ask for "the random numbers of (seed, step) at vocab
// position i" and get the same bits, whatever the thread that asks, the order, or the device.
//
// How the sampler keys it (engine/kernels/sampling.cu and engine/cpu/sampling.cpp):
//   key     = (seed_lo, seed_hi)                      the sequence's 64-bit seed
//   counter = (i / 4, 0, offset_lo, offset_hi)         i = vocab position, offset = decode step
//   u_i     = uniform_from_bits(philox(counter, key)[i % 4])
// One call gives the four numbers of four neighbouring vocab positions, which is why a thread
// that loads a float4 of logits calls it once.
//
// Usable on host and device (plain integer arithmetic; __umulhi on the device).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DAY18_HD __host__ __device__ __forceinline__
#else
#define DAY18_HD inline
#endif

namespace day18 {

struct Philox4x32 {
  uint32_t v[4];
};

namespace philox_detail {
// Multipliers and Weyl key increments from the paper (Table 2 / Random123's philox.h).
constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kW1 = 0xBB67AE85u;  // sqrt(3) - 1

DAY18_HD uint32_t mulhi(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}
}  // namespace philox_detail

// Ten rounds; the key is bumped by the Weyl constants between rounds (nine bumps).
DAY18_HD Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t k0, uint32_t k1) {
  using namespace philox_detail;
  uint32_t c0 = ctr.v[0], c1 = ctr.v[1], c2 = ctr.v[2], c3 = ctr.v[3];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint32_t hi0 = mulhi(kM0, c0), lo0 = kM0 * c0;
    const uint32_t hi1 = mulhi(kM1, c2), lo1 = kM1 * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return {{c0, c1, c2, c3}};
}

// The four random words for vocab positions [4*group, 4*group+4) of (seed, offset).
DAY18_HD Philox4x32 sampling_random_bits(uint64_t seed, uint64_t offset, uint32_t group) {
  Philox4x32 ctr{{group, 0u, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}};
  return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// A uniform number strictly inside (0, 1) from 32 random bits: (2m + 1) / 2^24 with m the top
// 23 bits. It has 24 significant bits, so it is exact in float AND double: both backends start
// the Gumbel transform from the very same number. Never 0 or 1, so log(u) and log(-log(u)) are
// finite.
DAY18_HD double uniform_from_bits(uint32_t bits) {
  return static_cast<double>(2u * (bits >> 9) + 1u) * (1.0 / 16777216.0);
}

}  // namespace day18
