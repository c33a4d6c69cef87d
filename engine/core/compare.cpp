#include "engine/core/compare.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "engine/core/memory.h"
#include "engine/core/rng.h"

namespace day18 {

Tolerance default_tolerance(DType t) {
  switch (t) {
    case DType::f32: return {1e-5, 1e-4};
    case DType::f16: return {2e-3, 5e-3};
    case DType::bf16: return {1.6e-2, 1.6e-2};
    default: return {0, 0};
  }
}

static std::string index_string(const Tensor& t, int64_t flat) {
  std::vector<int64_t> idx(t.dim());
  for (int d = t.dim() - 1; d >= 0; --d) {
    idx[d] = flat % t.size(d);
    flat /= t.size(d);
  }
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < idx.size(); ++i) os << (i ? "," : "") << idx[i];
  os << "]";
  return os.str();
}

CompareResult compare_tensors(const Tensor& actual, const Tensor& expected, Tolerance tol,
                              int max_report) {
  expect_device(actual, "actual", Device::cpu);
  expect_device(expected, "expected", Device::cpu);
  expect_contiguous(actual, "actual");
  expect_contiguous(expected, "expected");
  DAY18_REQUIRE(actual.sizes() == expected.sizes(), "compare: actual ", actual.describe(),
                " vs expected ", expected.describe());
  CompareResult r;
  r.checked = actual.numel();
  std::ostringstream os;
  for (int64_t i = 0; i < r.checked; ++i) {
    const double a = host_get(actual, i), e = host_get(expected, i);
    const double err = std::fabs(a - e);
    // NaN passes only against NaN; an infinity only against the same infinity (inf - inf is
    // NaN, and an infinite reference would make the relative tolerance infinite); finite values
    // within atol + rtol * |expected|.
    bool bad;
    if (std::isnan(a) || std::isnan(e)) bad = std::isnan(a) != std::isnan(e);
    else if (std::isinf(a) || std::isinf(e)) bad = a != e;
    else bad = !(err <= tol.atol + tol.rtol * std::fabs(e));
    if (!std::isnan(err) && err > r.max_abs_err) r.max_abs_err = err;
    if (bad) {
      if (r.mismatches < max_report)
        os << "\n    at " << index_string(actual, i) << ": expected " << e << ", actual " << a
           << ", |diff| " << err << " > tol " << tol.atol + tol.rtol * std::fabs(e);
      ++r.mismatches;
    }
  }
  r.ok = r.mismatches == 0;
  if (!r.ok) {
    std::ostringstream head;
    head << r.mismatches << " of " << r.checked << " elements differ (atol " << tol.atol
         << ", rtol " << tol.rtol << "); first " << std::min<int64_t>(r.mismatches, max_report)
         << ":";
    r.report = head.str() + os.str();
  }
  return r;
}

void poison(const Tensor& t, cudaStream_t stream) {
  // 0xFF bytes: NaN for f32/f16/bf16, -1 for ints; all-ones patterns are never a valid result
  // of the ops we test (indices are non-negative, floats finite).
  if (t.nbytes() == 0) return;
  expect_contiguous(t, "tensor");
  if (t.device() == Device::cuda)
    DAY18_CUDA_CHECK(cudaMemsetAsync(t.data(), 0xFF, t.nbytes(), stream));
  else
    std::memset(t.data(), 0xFF, t.nbytes());
}

}  // namespace day18
