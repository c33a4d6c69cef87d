// What a user reads when a command fails. day18::Error carries where it was raised (an argument
// error ends in " [engine/ops/attention.cpp:120]", a CUDA or cuBLAS error starts with
// "engine/core/memory.cpp:42: "): a course's learner wants the flag and the value, a developer
// the location. `day18 --verbose ...` keeps the locations; without it they are removed.
//
//   user_message("--block-size must be 8, 16 or 32, got 0 [engine/cli/flags.cpp:88]", false)
//     == "--block-size must be 8, 16 or 32, got 0"
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace day18::cli {

// `what` without its source locations unless `verbose`.
std::string user_message(std::string_view what, bool verbose);

// The line main() prints for an exception that escaped a command, and the exit status: 2 for a
// day18::Error (bad input, a failed CUDA call), 3 for out-of-memory, a malformed JSON value or
// anything else a library threw, each said in words ("out of host memory", "a JSON file has the
// wrong structure") rather than as the library's bare what().
struct FailureText {
  std::string text;
  int exit_code = 3;
};
FailureText describe_failure(const std::exception& e, bool verbose);

}  // namespace day18::cli
