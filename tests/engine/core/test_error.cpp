// Error macros: every failure carries file:line and the failing expression; the CUDA failures a
// learner meets first (no device, wrong arch, old driver) carry a hint with the fix.
#include <gtest/gtest.h>

#include "engine/core/error.h"
#include "engine/core/memory.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

std::string hint(cudaError_t e) {
  return std::string(detail::cuda_error_hint(e));
}

TEST(CudaErrorHint, NoDeviceSaysHowToCheckAndTheCpuFallback) {
  EXPECT_NE(hint(cudaErrorNoDevice).find("nvidia-smi"), std::string::npos);
  EXPECT_NE(hint(cudaErrorNoDevice).find("--device cpu"), std::string::npos);
}

TEST(CudaErrorHint, ArchMismatchSaysHowToRebuild) {
  for (cudaError_t e : {cudaErrorNoKernelImageForDevice, cudaErrorInvalidDeviceFunction}) {
    EXPECT_NE(hint(e).find("CMAKE_CUDA_ARCHITECTURES"), std::string::npos) << hint(e);
  }
}

TEST(CudaErrorHint, OldDriverPointsAtTheDriver) {
  EXPECT_NE(hint(cudaErrorInsufficientDriver).find("driver is older"), std::string::npos);
  EXPECT_NE(hint(cudaErrorInsufficientDriver).find("scripts/lab doctor"), std::string::npos);
}

TEST(CudaErrorHint, OtherErrorsHaveNone) {
  EXPECT_EQ(hint(cudaSuccess), "");
  EXPECT_EQ(hint(cudaErrorIllegalAddress), "");
}

TEST(CudaCheck, ThrowsWithNameExpressionLocationAndHint) {
  auto fails = [] { return cudaErrorNoKernelImageForDevice; };
  EXPECT_THROW_WITH(DAY18_CUDA_CHECK(fails()), Error,
                    "test_error.cpp:", "CUDA error cudaErrorNoKernelImageForDevice", "in fails()",
                    "\n  hint: ", "CMAKE_CUDA_ARCHITECTURES");
}

TEST(CudaCheck, SuccessDoesNotThrowAndEvaluatesOnce) {
  int calls = 0;
  auto ok = [&] {
    ++calls;
    return cudaSuccess;
  };
  EXPECT_NO_THROW(DAY18_CUDA_CHECK(ok()));
  EXPECT_EQ(calls, 1);
}

TEST(CudaCheck, ErrorsWithoutHintHaveNoHintLine) {
  try {
    DAY18_CUDA_CHECK(cudaErrorIllegalAddress);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("hint"), std::string::npos) << e.what();
  }
}

TEST(CublasCheck, NamesTheStatusAndHintsAtInitialization) {
  EXPECT_THROW_WITH(DAY18_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED), Error,
                    "cuBLAS error CUBLAS_STATUS_NOT_INITIALIZED", "hint: cublasCreate failed");
  EXPECT_THROW_WITH(DAY18_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE), Error,
                    "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_NO_THROW(DAY18_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS));
}

TEST(Require, ThrowsInvalidArgumentWithTheStreamedMessageAndLocation) {
  const int head_size = 96;
  EXPECT_THROW_WITH(
      DAY18_REQUIRE(head_size % 64 == 0, "head_size must be a multiple of 64, got ", head_size),
      InvalidArgument, "head_size must be a multiple of 64, got 96 [", "test_error.cpp:");
  EXPECT_NO_THROW(DAY18_REQUIRE(head_size > 0, "unused"));
}

TEST(Require, InvalidArgumentIsAnError) {
  try {
    DAY18_REQUIRE(false, "x");
  } catch (const Error& e) {
    SUCCEED();
    return;
  }
  FAIL() << "InvalidArgument was not caught as day18::Error";
}

TEST(CudaAvailability, AnUnavailableGpuComesWithTheReason) {
  if (cuda_available()) {
    EXPECT_TRUE(cuda_unavailable_reason().empty());
    return;
  }
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  int driver = 0;
  (void)cudaDriverGetVersion(&driver);
  if (driver == 0) {  // no driver at all: say so, rather than "driver version is insufficient"
    EXPECT_NE(cuda_unavailable_reason().find("no NVIDIA driver is installed"), std::string::npos)
        << cuda_unavailable_reason();
  }
}

}  // namespace
}  // namespace day18
