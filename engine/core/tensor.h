// Tensor: a non-owning view (pointer, dtype, shape, strides, device). Ops take views; who owns
// the memory is the caller's business (see memory.h for owning buffers).
//
// Validation helpers name the argument and the offending value, e.g.
//   expect_shape(query, "query", {num_tokens, num_heads, head_size});
//   -> "query: expected shape [7, 32, 128], got [7, 32, 64] (float16, cuda)"
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/error.h"

namespace day18 {

enum class Device : uint8_t { cpu, cuda };
std::string_view device_name(Device d);
Device parse_device(std::string_view name);

// Wildcard for expect_shape: any extent is accepted in this dimension.
inline constexpr int64_t kAnyDim = -1;

class Tensor {
 public:
  static constexpr int kMaxDims = 6;

  Tensor() = default;
  // Contiguous (row-major) view.
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device);
  Tensor(void* data, DType dtype, const std::vector<int64_t>& shape, Device device);
  // Strided view (strides in elements).
  Tensor(void* data, DType dtype, const std::vector<int64_t>& shape,
         const std::vector<int64_t>& strides, Device device);

  void* data() const { return data_; }
  template <typename T> T* ptr() const;  // checks dtype_of<T> == dtype()
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_ == Device::cuda; }
  bool defined() const { return data_ != nullptr || numel() == 0; }

  int dim() const { return ndim_; }
  int64_t size(int i) const;    // negative i counts from the back
  int64_t stride(int i) const;  // in elements
  std::vector<int64_t> sizes() const { return {shape_.begin(), shape_.begin() + ndim_}; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;

  // View of rows [begin, end) of dimension 0.
  Tensor slice0(int64_t begin, int64_t end) const;
  // Same memory, new contiguous shape with the same numel (tensor must be contiguous).
  Tensor view(const std::vector<int64_t>& shape) const;

  // "[7, 32, 128] float16 cuda"
  std::string describe() const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
  int ndim_ = 0;
  std::array<int64_t, kMaxDims> shape_{};
  std::array<int64_t, kMaxDims> strides_{};
};

std::string shape_string(const std::vector<int64_t>& shape);

// ---- validation: each throws InvalidArgument naming the argument ----
void expect_dtype(const Tensor& t, const char* name, DType want);
void expect_dtype_in(const Tensor& t, const char* name, std::initializer_list<DType> allowed);
void expect_same_dtype(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name);
void expect_dim(const Tensor& t, const char* name, int ndim);
// Exact shape; kAnyDim accepts any extent in that position.
void expect_shape(const Tensor& t, const char* name, std::initializer_list<int64_t> shape);
void expect_device(const Tensor& t, const char* name, Device want);
void expect_contiguous(const Tensor& t, const char* name);
void expect_defined(const Tensor& t, const char* name);

template <typename T>
T* Tensor::ptr() const {
  DAY18_REQUIRE(dtype_of_v<T> == dtype_, "tensor is ", dtype_name(dtype_), ", accessed as ",
                dtype_name(dtype_of_v<T>));
  return static_cast<T*>(data_);
}

}  // namespace day18
