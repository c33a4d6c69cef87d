// Seeded random inputs for tests, the tour and benchmarks. Same seed, same tensor, on any
// machine (std::mt19937_64 and our own distribution code, not std::*_distribution whose output
// is implementation-defined).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/memory.h"

namespace day18 {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  uint64_t next_u64();                       // splitmix64
  double uniform();                          // [0, 1)
  double uniform(double lo, double hi);      // [lo, hi)
  double normal();                           // standard normal (Box-Muller)
  int64_t randint(int64_t lo, int64_t hi);   // [lo, hi]

  // Fill a host (host or pinned) float tensor with uniform [lo, hi) / normal(mean, std) values,
  // rounded to its dtype. Integer tensors get integers in [lo, hi].
  void fill_uniform(const Tensor& t, double lo, double hi);
  void fill_normal(const Tensor& t, double mean, double std);

  // Convenience: a new tensor in `storage`, filled on the host and copied over if needed.
  OwnedTensor uniform_tensor(const std::vector<int64_t>& shape, DType dtype, double lo, double hi,
                             Storage storage = Storage::host);
  OwnedTensor normal_tensor(const std::vector<int64_t>& shape, DType dtype, double mean, double std,
                            Storage storage = Storage::host);

 private:
  uint64_t state_;
};

// Element i of a host tensor (any dtype) as double / set from double (rounded to the dtype).
// Contiguous tensors only; for tests, oracles and I/O, not hot paths.
double host_get(const Tensor& t, int64_t i);
void host_set(const Tensor& t, int64_t i, double v);

}  // namespace day18
