// Error handling for the whole engine: one exception type, one family of check macros.
//
//   DAY18_CUDA_CHECK(cudaMemcpyAsync(...));      // CUDA runtime call
//   DAY18_CUBLAS_CHECK(cublasGemmEx(...));       // cuBLAS call
//   kernel<<<grid, block, 0, stream>>>(...);
//   DAY18_CHECK_LAUNCH();                        // launch-configuration errors
//   DAY18_REQUIRE(head_size % 8 == 0, "head_size must be a multiple of 8, got ", head_size);
//
// Every failure throws day18::Error carrying file:line, the failing expression, and — for the
// CUDA failures a learner meets first (no device, arch mismatch, old driver) — a hint with the fix.
#pragma once

#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace day18 {

// A JSON library's message as a user reads it: nlohmann's "[json.exception.parse_error.101] parse
// error at line 3, column 1: ..." without the bracketed id, which says nothing to them.
std::string json_library_message(std::string_view what);

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed something the op cannot take (wrong shape, dtype, device, value).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A lab skeleton's TODO region that the learner has not written yet (labs/NN-name/src: the
// generated copies of engine files throw this where a task's code goes). Its message is what
// the lab's tests and `scripts/lab check` show: "lab 02 task 3 (softmax) not implemented yet".
class LabNotImplemented : public Error {
 public:
  LabNotImplemented(std::string_view lab, int task, std::string_view key, std::string_view readme)
      : Error("lab " + std::string(lab) + " task " + std::to_string(task) + " (" +
              std::string(key) + ") not implemented yet: see " + std::string(readme) +
              ", Task " + std::to_string(task)) {}
};

namespace detail {

template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

// Hint for the CUDA errors a learner is most likely to hit, or "" if there is none.
std::string_view cuda_error_hint(cudaError_t err);

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file,
                                     int line);
[[noreturn]] void throw_invalid_argument(const std::string& msg, const char* file, int line);

}  // namespace detail
}  // namespace day18

#define DAY18_CUDA_CHECK(expr)                                                        \
  do {                                                                                \
    const cudaError_t day18_err_ = (expr);                                            \
    if (day18_err_ != cudaSuccess)                                                    \
      ::day18::detail::throw_cuda_error(day18_err_, #expr, __FILE__, __LINE__);       \
  } while (0)

#define DAY18_CUBLAS_CHECK(expr)                                                      \
  do {                                                                                \
    const cublasStatus_t day18_st_ = (expr);                                          \
    if (day18_st_ != CUBLAS_STATUS_SUCCESS)                                           \
      ::day18::detail::throw_cublas_error(day18_st_, #expr, __FILE__, __LINE__);      \
  } while (0)

// After every <<<...>>>: catches bad launch configurations (too many threads, too much shared
// memory, no kernel image for this GPU) at the launch site instead of at a later sync.
#define DAY18_CHECK_LAUNCH() DAY18_CUDA_CHECK(cudaGetLastError())

// Argument validation: throws InvalidArgument with the streamed message.
#define DAY18_REQUIRE(cond, ...)                                                            \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ::day18::detail::throw_invalid_argument(::day18::detail::concat(__VA_ARGS__), __FILE__, \
                                              __LINE__);                                    \
  } while (0)
