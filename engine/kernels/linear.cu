// Linear layer = one cuBLAS GEMM. No kernel of ours: a GEMM is where a vendor library is the
// right tool, and the lesson is how to call it correctly:
//   - layouts: cuBLAS is column-major. Our row-major out[M, N] is column-major out^T [N, M], and
//     out^T = weight * input^T with weight [N, K] row-major = column-major [K, N] used
//     transposed. So one call with op(A) = T (A = weight, lda = K), op(B) = N (B = input,
//     ldb = K), C = out (ldc = N), m = N, n = M, k = K: no copies, no transposes in memory.
//   - fp16/bf16 inputs with fp32 accumulation: cublasGemmEx with CUBLAS_COMPUTE_32F.
//   - one handle per (thread, device): handles are not thread-safe to share, and creating one
//     per call costs far more than the GEMM of a decode step.
//   - cublasSetStream on every call, then cublasSetWorkspace: setting the stream resets the
//     workspace to cuBLAS's default pool, so the workspace is attached again after it.
#include "engine/kernels/linear.h"

#include <map>
#include <mutex>
#include <vector>

namespace day18::cuda {
namespace {

struct HandleEntry {
  cublasHandle_t handle = nullptr;
  void* workspace = nullptr;
};

// Handles are never destroyed: a thread that ends gives its handles back to this pool (per
// device) and the next thread reuses them. The pool itself is intentionally leaked at process
// exit, because destroying cuBLAS handles after the CUDA runtime has shut down can crash (the
// same choice PyTorch makes).
class HandlePool {
 public:
  static HandlePool& instance() {
    static HandlePool* pool = new HandlePool;  // leaked on purpose, see above
    return *pool;
  }

  HandleEntry acquire(int device) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& free_list = free_[device];
      if (!free_list.empty()) {
        HandleEntry e = free_list.back();
        free_list.pop_back();
        return e;
      }
    }
    HandleEntry e;
    DAY18_CUBLAS_CHECK(cublasCreate(&e.handle));
    // Default math: no TF32 for fp32 GEMMs, tensor cores for fp16/bf16. And no reduced-precision
    // reductions: a split-K GEMM must add its partial sums in fp32 (the compute type), not in
    // the fp16/bf16 output type, which cuBLAS would otherwise be allowed to do.
    DAY18_CUBLAS_CHECK(cublasSetMathMode(
        e.handle, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                            CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    DAY18_CUDA_CHECK(cudaMalloc(&e.workspace, kCublasWorkspaceBytes));
    return e;
  }

  void release(int device, HandleEntry e) {
    std::lock_guard<std::mutex> lock(mu_);
    free_[device].push_back(e);
  }

 private:
  std::mutex mu_;
  std::map<int, std::vector<HandleEntry>> free_;
};

// The calling thread's handles, one per device; given back to the pool when the thread ends.
struct ThreadHandles {
  std::map<int, HandleEntry> by_device;
  ~ThreadHandles() {
    for (auto& [dev, e] : by_device) HandlePool::instance().release(dev, e);
  }
};

HandleEntry& thread_handle() {
  thread_local ThreadHandles mine;
  int device = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&device));
  auto it = mine.by_device.find(device);
  if (it == mine.by_device.end())
    it = mine.by_device.emplace(device, HandlePool::instance().acquire(device)).first;
  return it->second;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::f16:
      return CUDA_R_16F;
    case DType::bf16:
      return CUDA_R_16BF;
    default:
      break;
  }
  DAY18_REQUIRE(false, "linear: dtype ", dtype_name(t), " has no cuBLAS GEMM here");
}

}  // namespace

cublasHandle_t cublas_handle(cudaStream_t stream) {
  HandleEntry& e = thread_handle();
  DAY18_CUBLAS_CHECK(cublasSetStream(e.handle, stream));
  // After SetStream, which resets the workspace to the default pool.
  DAY18_CUBLAS_CHECK(cublasSetWorkspace(e.handle, e.workspace, kCublasWorkspaceBytes));
  return e.handle;
}

// Mapping: no grid of ours; cuBLAS picks the kernel and its tiling from (m, n, k) = (N, M, K).
void linear(const Tensor& out, const Tensor& input, const Tensor& weight, cudaStream_t stream) {
  const int M = static_cast<int>(input.size(0)), K = static_cast<int>(input.size(1));
  const int N = static_cast<int>(weight.size(0));
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: out = 0 (not left to cuBLAS's reading of the k = 0 corner)
    DAY18_CUDA_CHECK(cudaMemsetAsync(out.data(), 0, out.nbytes(), stream));
    return;
  }
  cublasHandle_t handle = cublas_handle(stream);
  const cudaDataType_t type = cuda_type(input.dtype());
  const float alpha = 1.f, beta = 0.f;  // fp32 scalars: they match CUBLAS_COMPUTE_32F
  DAY18_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, weight.data(),
                                  type, K,                     // A: [N, K] row-major, transposed
                                  input.data(), type, K,       // B: [M, K] row-major
                                  &beta, out.data(), type, N,  // C: [M, N] row-major
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace day18::cuda
