// Comparing a result with a reference, the way every test, the tour and the kernel runner do:
// tolerance by dtype, a NaN passes only where the reference is NaN too (outputs are poisoned
// with NaN before a launch, so an unwritten element shows up), equal infinities pass, and a
// report of the first few mismatches with their index.
#pragma once

#include <string>

#include "engine/core/tensor.h"

namespace day18 {

struct Tolerance {
  double atol = 0;
  double rtol = 0;
  // |actual - expected| <= atol + rtol * |expected|
};

// fp32: 1e-5 + 1e-4 rel; fp16: 2e-3 + 5e-3 rel (half has 11 significant bits);
// bf16: 1.6e-2 + 1.6e-2 rel (8 significant bits); integers: exact.
Tolerance default_tolerance(DType t);
inline Tolerance scaled(Tolerance t, double s) { return {t.atol * s, t.rtol * s}; }

struct CompareResult {
  bool ok = true;
  int64_t mismatches = 0;
  int64_t checked = 0;
  double max_abs_err = 0;
  std::string report;  // empty when ok; else "N of M elements differ; first: [i,j,k] expected ..."
};

// Both tensors on the host (copy device tensors first), same shape; any dtypes (compared as double).
CompareResult compare_tensors(const Tensor& actual, const Tensor& expected, Tolerance tol,
                              int max_report = 8);

// Fill a host or device tensor with a poison pattern: NaN for floating dtypes, all-ones bytes (-1) for ints.
void poison(const Tensor& t, cudaStream_t stream = nullptr);

}  // namespace day18
