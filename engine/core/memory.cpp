#include "engine/core/memory.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace day18 {

std::string_view storage_name(Storage s) {
  switch (s) {
    case Storage::host: return "host";
    case Storage::pinned: return "pinned";
    case Storage::device: return "device";
  }
  return "?";
}

Buffer::Buffer(size_t bytes, Storage storage) : bytes_(bytes), storage_(storage) {
  if (bytes == 0) return;
  switch (storage) {
    case Storage::host:
      // 256-byte alignment so host tensors can be reinterpreted as vectors like device ones.
      data_ = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
      DAY18_REQUIRE(data_ != nullptr, "host allocation of ", bytes, " bytes failed");
      break;
    case Storage::pinned:
      DAY18_CUDA_CHECK(cudaMallocHost(&data_, bytes));
      break;
    case Storage::device:
      DAY18_CUDA_CHECK(cudaMalloc(&data_, bytes));
      break;
  }
}

Buffer::~Buffer() { release(); }

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    storage_ = o.storage_;
  }
  return *this;
}

void Buffer::release() noexcept {
  if (!data_) return;
  cudaError_t err = cudaSuccess;
  switch (storage_) {
    case Storage::host: std::free(data_); break;
    case Storage::pinned: err = cudaFreeHost(data_); break;
    case Storage::device: err = cudaFree(data_); break;
  }
  // At process exit, static buffers (e.g. the L2 flush scratch) are freed after the CUDA runtime
  // has begun shutting down; the driver reclaims that memory anyway, so that is not an error.
  if (err == cudaErrorCudartUnloading) (void)cudaGetLastError();
  else if (err != cudaSuccess)
    std::fprintf(stderr, "day18: freeing a %s buffer failed: %s\n",
                 std::string(storage_name(storage_)).c_str(), cudaGetErrorString(err));
  data_ = nullptr;
}

OwnedTensor::OwnedTensor(const std::vector<int64_t>& shape, DType dtype, Storage storage) {
  Tensor probe(nullptr, dtype, shape, device_of(storage));
  buf_ = Buffer(probe.nbytes(), storage);
  view_ = Tensor(buf_.data(), dtype, shape, device_of(storage));
}

OwnedTensor OwnedTensor::to(Storage storage) const {
  OwnedTensor out(sizes(), dtype(), storage);
  copy_tensor(out.view(), view_);
  return out;
}

void copy_tensor(const Tensor& dst, const Tensor& src, cudaStream_t stream, bool synchronous) {
  expect_contiguous(dst, "dst");
  expect_contiguous(src, "src");
  expect_same_dtype(dst, "dst", src, "src");
  DAY18_REQUIRE(dst.sizes() == src.sizes(), "copy_tensor: dst ", dst.describe(), " vs src ",
                src.describe());
  if (src.nbytes() == 0) return;
  if (dst.device() == Device::cpu && src.device() == Device::cpu) {
    std::memcpy(dst.data(), src.data(), src.nbytes());
    return;
  }
  // cudaMemcpyDefault: unified addressing tells the runtime which side each pointer is on.
  DAY18_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(), cudaMemcpyDefault, stream));
  if (synchronous) DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
}

namespace {
struct CudaProbe {
  bool ok = false;
  std::string reason;
  CudaProbe() {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      // Without any NVIDIA driver the runtime reports cudaErrorInsufficientDriver, which reads
      // as "update your driver"; a driver version of 0 tells the two situations apart.
      int driver = 0;
      (void)cudaDriverGetVersion(&driver);
      if (driver == 0) {
        reason = detail::concat("no NVIDIA driver is installed (", cudaGetErrorName(err), ")");
      } else {
        reason = detail::concat("no usable CUDA device: ", cudaGetErrorName(err), " (",
                                cudaGetErrorString(err), ")");
        if (auto hint = detail::cuda_error_hint(err); !hint.empty())
          reason += detail::concat("; hint: ", hint);
      }
      (void)cudaGetLastError();
    } else if (n == 0) {
      reason = "no CUDA device found";
    } else {
      ok = true;
    }
  }
};
const CudaProbe& probe() {
  static const CudaProbe p;
  return p;
}
}  // namespace

bool cuda_available() { return probe().ok; }
const std::string& cuda_unavailable_reason() { return probe().reason; }

Stream::Stream() { DAY18_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) (void)cudaStreamDestroy(s_);
}
Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (s_) (void)cudaStreamDestroy(s_);
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}
void Stream::synchronize() const { DAY18_CUDA_CHECK(cudaStreamSynchronize(s_)); }
void Stream::wait(cudaEvent_t event) const { DAY18_CUDA_CHECK(cudaStreamWaitEvent(s_, event, 0)); }

Event::Event(bool timing) {
  DAY18_CUDA_CHECK(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming));
}
Event::~Event() {
  if (e_) (void)cudaEventDestroy(e_);
}
Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (e_) (void)cudaEventDestroy(e_);
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}
void Event::record(cudaStream_t stream) const { DAY18_CUDA_CHECK(cudaEventRecord(e_, stream)); }
void Event::synchronize() const { DAY18_CUDA_CHECK(cudaEventSynchronize(e_)); }
bool Event::query() const {
  cudaError_t err = cudaEventQuery(e_);
  if (err == cudaErrorNotReady) return false;
  DAY18_CUDA_CHECK(err);
  return true;
}
float Event::elapsed_ms(const Event& start, const Event& stop) {
  float ms = 0.f;
  DAY18_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, stop.e_));
  return ms;
}

}  // namespace day18
