#include "engine/core/error.h"

namespace day18 {

std::string json_library_message(std::string_view what) {
  // "[json.exception.<kind>.<id>] " at the start.
  if (what.rfind("[json.exception.", 0) == 0)
    if (const size_t end = what.find("] "); end != std::string_view::npos)
      return std::string(what.substr(end + 2));
  return std::string(what);
}

}  // namespace day18

namespace day18::detail {

std::string_view cuda_error_hint(cudaError_t err) {
  switch (err) {
    case cudaErrorNoDevice:
      return "no CUDA device is visible: check `nvidia-smi` and CUDA_VISIBLE_DEVICES; on a "
             "machine without a GPU use the CPU backend (--device cpu)";
    case cudaErrorInsufficientDriver:
      return "the NVIDIA driver is older than this CUDA toolkit (or missing): update the driver "
             "or build with a toolkit the driver supports (`scripts/lab doctor` shows both)";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
      return "no kernel image for this GPU: the build's CUDA architecture does not match the "
             "device; reconfigure with -DCMAKE_CUDA_ARCHITECTURES=<compute capability, e.g. 90>";
    case cudaErrorMemoryAllocation:
      return "out of device memory: use smaller shapes or fewer KV blocks";
    case cudaErrorInvalidConfiguration:
      return "bad launch configuration (grid/block size or shared memory over the device limit)";
    default:
      return "";
  }
}

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  std::string msg = concat(file, ":", line, ": CUDA error ", cudaGetErrorName(err), " (",
                           cudaGetErrorString(err), ") in ", expr);
  if (auto hint = cuda_error_hint(err); !hint.empty()) msg += concat("\n  hint: ", hint);
  throw Error(msg);
}

static const char* cublas_status_name(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line) {
  std::string msg = concat(file, ":", line, ": cuBLAS error ", cublas_status_name(st), " in ", expr);
  if (st == CUBLAS_STATUS_NOT_INITIALIZED)
    msg += "\n  hint: cublasCreate failed; usually no usable CUDA device or driver";
  throw Error(msg);
}

void throw_invalid_argument(const std::string& msg, const char* file, int line) {
  throw InvalidArgument(concat(msg, " [", file, ":", line, "]"));
}

}  // namespace day18::detail
