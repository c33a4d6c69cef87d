// RAII owners: device/pinned/host buffers, owning tensors, streams and events.
//
// Move-only; destructors never throw (a failing cudaFree during unwinding is reported on stderr).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/tensor.h"

namespace day18 {

// Where a buffer lives. Pinned host memory is page-locked (cudaMallocHost): the DMA engines
// copy it directly, so H2D/D2H copies from it are fast and can be asynchronous.
enum class Storage : uint8_t { host, pinned, device };
std::string_view storage_name(Storage s);
inline Device device_of(Storage s) { return s == Storage::device ? Device::cuda : Device::cpu; }

class Buffer {
 public:
  Buffer() = default;
  Buffer(size_t bytes, Storage storage);
  ~Buffer();
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return bytes_; }
  Storage storage() const { return storage_; }

 private:
  void release() noexcept;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Storage storage_ = Storage::host;
};

// A tensor that owns its (contiguous) memory.
class OwnedTensor {
 public:
  OwnedTensor() = default;
  OwnedTensor(const std::vector<int64_t>& shape, DType dtype, Storage storage);

  const Tensor& view() const { return view_; }
  operator const Tensor&() const { return view_; }  // NOLINT: pass wherever a view is expected
  Storage storage() const { return buf_.storage(); }
  DType dtype() const { return view_.dtype(); }
  std::vector<int64_t> sizes() const { return view_.sizes(); }
  int64_t numel() const { return view_.numel(); }
  size_t nbytes() const { return view_.nbytes(); }
  void* data() const { return view_.data(); }
  template <typename T> T* ptr() const { return view_.ptr<T>(); }

  // A new tensor in `storage` with the same contents (synchronous).
  OwnedTensor to(Storage storage) const;

 private:
  Buffer buf_;
  Tensor view_;
};

// Copies a contiguous tensor into another of the same shape and dtype, any devices.
// With a stream, the copy is asynchronous on it (truly async only for pinned/device memory).
void copy_tensor(const Tensor& dst, const Tensor& src, cudaStream_t stream = nullptr,
                 bool synchronous = true);

// True when a CUDA device is usable; otherwise the reason (no device, no driver, ...).
bool cuda_available();
const std::string& cuda_unavailable_reason();

class Stream {
 public:
  // Non-blocking: does not synchronize with the legacy default stream.
  Stream();
  ~Stream();
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return s_; }
  operator cudaStream_t() const { return s_; }  // NOLINT
  void synchronize() const;
  // This stream waits (on the device) until `event` has completed; the CPU does not block.
  void wait(cudaEvent_t event) const;

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  // timing=false makes a lighter event for pure synchronization.
  explicit Event(bool timing = true);
  ~Event();
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  cudaEvent_t get() const { return e_; }
  operator cudaEvent_t() const { return e_; }  // NOLINT
  void record(cudaStream_t stream) const;
  void synchronize() const;
  bool query() const;  // true when complete
  // Milliseconds between two recorded timing events.
  static float elapsed_ms(const Event& start, const Event& stop);

 private:
  cudaEvent_t e_ = nullptr;
};

}  // namespace day18
