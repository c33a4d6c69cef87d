// What every lab test uses: which build it is (the learner's or the engine's), comparisons that
// tell "not written yet" from "wrong", and the timing record that `scripts/lab check` turns into
// a ratio against the engine.
//
// Test names carry the task: TEST(Lab02_Task3_Softmax, StableForLogitsAbove80). When a test
// fails, the listener in lab_main.cpp prints the task's title and where its README section is.
//
//   LAB_EXPECT_CLOSE(out, expected, tol);   // first mismatches; "not implemented yet" when the
//                                           // output still holds the poison of before the launch
//   lab::record_timing("decode_b8_ctx1024_f16", stats, bytes);   // read by scripts/lab check
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "engine/core/compare.h"
#include "engine/core/memory.h"
#include "engine/profiling/timing.h"
#include "tests/support/test_support.h"

namespace day18::lab {

// "student" (linked with labs/NN-name/src) or "solution" (linked with the engine).
const char* build_kind();
inline bool is_student() { return std::string(build_kind()) == "student"; }

// The lab and task of the running test, from its suite name LabNN_TaskK_Name ("" / 0 if the
// name does not follow that form).
std::string current_lab();
int current_task();
// "lab 02 task 3 (Softmax) not implemented yet": the message a stub gives, for tests that find
// an untouched output instead of an exception.
std::string not_implemented_message(const std::string& why);

// True when every element of t still equals the poison that poison() writes (NaN for floating
// dtypes, all-ones bytes for integers): the kernel wrote nothing.
bool still_poisoned(const Tensor& t);

// actual vs expected within tol (any devices). An output that is still poisoned everywhere
// fails with the "not implemented yet" message; otherwise the first mismatches are printed
// (index, expected, got, tolerance) with "... and K more".
::testing::AssertionResult lab_close(const char* a_expr, const char* e_expr, const char*,
                                     const Tensor& actual, const Tensor& expected, Tolerance tol);

// One timing result of this run, appended to $DAY18_LAB_RESULTS (JSON lines) when set:
// {"lab","build","key","median_ms","p20_ms","p80_ms","bytes","gbps","pct_of_p","p_gbps"}.
// `bytes`: the bytes the operation must move at least (for % of P); 0 if not meaningful.
// Never fails a test: timing is reported by scripts/lab check, not asserted.
struct TimingRecord {
  std::string key;
  double median_ms = 0, p20_ms = 0, p80_ms = 0;
  double bytes = 0;
};
void record_timing(const TimingRecord& r);

// Times fn(stream) with engine/profiling/timing.h (warm-up, L2 flushed before each repeat,
// CUDA events on `stream`), records it as `key` and returns the stats (ms). GPU only.
Stats time_and_record(const std::string& key, double bytes,
                      const std::function<void(cudaStream_t)>& fn, cudaStream_t stream,
                      int repeats = 30);

// True when timing is wanted in this run (scripts/lab check sets DAY18_LAB_TIMING=1); timing
// tests skip otherwise, so that ctest stays fast.
bool timing_requested();

}  // namespace day18::lab

#define LAB_EXPECT_CLOSE(actual, expected, tol) \
  EXPECT_PRED_FORMAT3(::day18::lab::lab_close, actual, expected, tol)
#define LAB_ASSERT_CLOSE(actual, expected, tol) \
  ASSERT_PRED_FORMAT3(::day18::lab::lab_close, actual, expected, tol)
