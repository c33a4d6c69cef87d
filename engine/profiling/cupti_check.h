// The CUPTI member of engine/core/error.h's check-macro family (kept here so that only the
// profiling code includes cupti.h):
//
//   DAY18_CUPTI_CHECK(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
//
// throws day18::Error with file:line, the failing call, CUPTI's name for the result
// (cuptiGetResultString) and, for the failures a learner meets (another profiler attached, no
// permission for counters, no GPU), a hint.
#pragma once

#include <cupti.h>

#include <string>
#include <string_view>

namespace day18::detail {

// CUPTI's text for a result code ("CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED").
std::string cupti_result_name(CUptiResult r);
// Hint for the common failures, or "".
std::string_view cupti_error_hint(CUptiResult r);
[[noreturn]] void throw_cupti_error(CUptiResult r, const char* expr, const char* file, int line);

}  // namespace day18::detail

#define DAY18_CUPTI_CHECK(expr)                                                      \
  do {                                                                               \
    const CUptiResult day18_cupti_r_ = (expr);                                       \
    if (day18_cupti_r_ != CUPTI_SUCCESS)                                             \
      ::day18::detail::throw_cupti_error(day18_cupti_r_, #expr, __FILE__, __LINE__); \
  } while (0)
