// Shared helpers for every GoogleTest suite.
//
//   TEST(RmsNorm, MatchesOracle) {
//     DAY18_REQUIRE_GPU();                // skips without a device; fails if REQUIRE_GPU=1
//     ...
//     EXPECT_CLOSE(actual, expected, day18::default_tolerance(dtype));
//   }
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/core/compare.h"
#include "engine/core/memory.h"
#include "engine/core/rng.h"
#include "tests/support/throws.h"

namespace day18::testing {

// Root of the source tree (for reference/outputs and friends).
inline std::string source_dir() {
  return DAY18_SOURCE_DIR;
}

inline bool gpu_required_by_env() {
  const char* v = std::getenv("REQUIRE_GPU");
  return v && std::string(v) == "1";
}

// Every floating dtype the kernels support; GPU tests loop over all of them.
inline constexpr DType kAllFloatDtypes[] = {DType::f32, DType::f16, DType::bf16};

// Copies any tensor into host memory (for comparing device results).
inline OwnedTensor to_host(const Tensor& t) {
  OwnedTensor h(t.sizes(), t.dtype(), Storage::host);
  copy_tensor(h.view(), t);
  return h;
}

// A copy of any tensor in the given storage.
inline OwnedTensor copy_of(const Tensor& t, Storage storage) {
  OwnedTensor o(t.sizes(), t.dtype(), storage);
  copy_tensor(o.view(), t);
  return o;
}

// Every byte equal (any devices); on failure names the first differing elements (flat index,
// both values). For results that must be bit-identical, such as a fused kernel against the
// unfused sequence it replaces, or cache slots a kernel must not touch.
inline ::testing::AssertionResult bitwise_equal(const Tensor& actual_any,
                                                const Tensor& expected_any) {
  OwnedTensor a = to_host(actual_any), e = to_host(expected_any);
  if (a.sizes() != e.sizes() || a.dtype() != e.dtype())
    return ::testing::AssertionFailure()
           << "shape/dtype differ: " << a.view().describe() << " vs " << e.view().describe();
  const size_t esz = dtype_size(a.dtype());
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (std::memcmp(static_cast<const char*>(a.data()) + i * esz,
                    static_cast<const char*>(e.data()) + i * esz, esz) != 0) {
      if (++bad <= 5)
        first += detail::concat(" [", i, "] expected ", host_get(e.view(), i), " got ",
                                host_get(a.view(), i), ";");
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << a.numel() << " elements differ:" << first;
}

// Captures what `record` enqueues on stream s into a CUDA graph (thread-local capture mode: the
// calls must neither allocate nor synchronize), then runs `before_replay` (e.g. poisoning the
// outputs) and replays the graph once, and waits. Proves an op can live in a captured step.
template <typename Record, typename BeforeReplay>
void capture_and_replay(cudaStream_t s, Record&& record, BeforeReplay&& before_replay) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  DAY18_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  record();
  DAY18_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  DAY18_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  before_replay();
  DAY18_CUDA_CHECK(cudaGraphLaunch(exec, s));
  DAY18_CUDA_CHECK(cudaStreamSynchronize(s));
  DAY18_CUDA_CHECK(cudaGraphExecDestroy(exec));
  DAY18_CUDA_CHECK(cudaGraphDestroy(graph));
}

inline ::testing::AssertionResult tensors_close(const char* a_expr, const char* e_expr, const char*,
                                                const Tensor& actual, const Tensor& expected,
                                                Tolerance tol) {
  OwnedTensor a = to_host(actual), e = to_host(expected);
  CompareResult r = compare_tensors(a.view(), e.view(), tol);
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a_expr << " vs " << e_expr << ": " << r.report;
}

}  // namespace day18::testing

// Skip a GPU test on a machine without a usable device, with the reason; with REQUIRE_GPU=1
// (the GPU preset) the same situation is a failure instead.
#define DAY18_REQUIRE_GPU()                                                         \
  do {                                                                              \
    if (!::day18::cuda_available()) {                                               \
      if (::day18::testing::gpu_required_by_env())                                  \
        FAIL() << "REQUIRE_GPU=1 but " << ::day18::cuda_unavailable_reason();       \
      else                                                                          \
        GTEST_SKIP() << "needs a CUDA GPU: " << ::day18::cuda_unavailable_reason(); \
    }                                                                               \
  } while (0)

// EXPECT_CLOSE(actual, expected, tol): any devices; prints the first mismatches.
#define EXPECT_CLOSE(actual, expected, tol) \
  EXPECT_PRED_FORMAT3(::day18::testing::tensors_close, actual, expected, tol)
#define ASSERT_CLOSE(actual, expected, tol) \
  ASSERT_PRED_FORMAT3(::day18::testing::tensors_close, actual, expected, tol)

// EXPECT_INVALID_NAMING(stmt, "argument"): stmt throws InvalidArgument whose message names it.
#define EXPECT_INVALID_NAMING(stmt, needle) \
  EXPECT_THROW_WITH(stmt, ::day18::InvalidArgument, needle)
