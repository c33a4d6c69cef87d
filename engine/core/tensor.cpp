#include "engine/core/tensor.h"

#include <algorithm>
#include <sstream>

namespace day18 {

std::string_view device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

Device parse_device(std::string_view name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda" || name == "gpu") return Device::cuda;
  DAY18_REQUIRE(false, "unknown device '", name, "' (expected cpu or cuda)");
}

Tensor::Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device)
    : Tensor(data, dtype, std::vector<int64_t>(shape), device) {}

Tensor::Tensor(void* data, DType dtype, const std::vector<int64_t>& shape, Device device)
    : data_(data), dtype_(dtype), device_(device) {
  DAY18_REQUIRE(shape.size() <= kMaxDims, "tensor rank ", shape.size(), " exceeds ", kMaxDims);
  ndim_ = static_cast<int>(shape.size());
  int64_t s = 1;
  for (int i = ndim_ - 1; i >= 0; --i) {
    DAY18_REQUIRE(shape[i] >= 0, "negative extent ", shape[i], " in shape ", shape_string(shape));
    shape_[i] = shape[i];
    strides_[i] = s;
    s *= shape[i];
  }
}

Tensor::Tensor(void* data, DType dtype, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& strides, Device device)
    : Tensor(data, dtype, shape, device) {
  DAY18_REQUIRE(strides.size() == shape.size(), "strides rank ", strides.size(),
                " != shape rank ", shape.size());
  std::copy(strides.begin(), strides.end(), strides_.begin());
}

int64_t Tensor::size(int i) const {
  if (i < 0) i += ndim_;
  DAY18_REQUIRE(i >= 0 && i < ndim_, "dimension ", i, " out of range for ", describe());
  return shape_[i];
}

int64_t Tensor::stride(int i) const {
  if (i < 0) i += ndim_;
  DAY18_REQUIRE(i >= 0 && i < ndim_, "dimension ", i, " out of range for ", describe());
  return strides_[i];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= shape_[i];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (int i = ndim_ - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != s) return false;
    s *= shape_[i];
  }
  return true;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  DAY18_REQUIRE(ndim_ >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "slice0 [", begin,
                ", ", end, ") out of range for ", describe());
  Tensor t = *this;
  t.data_ = static_cast<char*>(data_) + begin * strides_[0] * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::view(const std::vector<int64_t>& shape) const {
  DAY18_REQUIRE(is_contiguous(), "view of a non-contiguous tensor ", describe());
  Tensor t(data_, dtype_, shape, device_);
  DAY18_REQUIRE(t.numel() == numel(), "view ", shape_string(shape), " has ", t.numel(),
                " elements, tensor ", describe(), " has ", numel());
  return t;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) os << ", ";
    if (shape[i] == kAnyDim) os << "*"; else os << shape[i];
  }
  os << "]";
  return os.str();
}

std::string Tensor::describe() const {
  return detail::concat(shape_string(sizes()), " ", dtype_name(dtype_), " ", device_name(device_));
}

void expect_defined(const Tensor& t, const char* name) {
  DAY18_REQUIRE(t.data() != nullptr || t.numel() == 0, name, ": null data pointer (",
                t.describe(), ")");
}

void expect_dtype(const Tensor& t, const char* name, DType want) {
  DAY18_REQUIRE(t.dtype() == want, name, ": expected dtype ", dtype_name(want), ", got ",
                dtype_name(t.dtype()), " (", t.describe(), ")");
}

void expect_dtype_in(const Tensor& t, const char* name, std::initializer_list<DType> allowed) {
  for (DType d : allowed)
    if (t.dtype() == d) return;
  std::string list;
  for (DType d : allowed) list += detail::concat(list.empty() ? "" : ", ", dtype_name(d));
  DAY18_REQUIRE(false, name, ": dtype ", dtype_name(t.dtype()), " not supported (expected one of ",
                list, ")");
}

void expect_same_dtype(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name) {
  DAY18_REQUIRE(t.dtype() == ref.dtype(), name, ": dtype ", dtype_name(t.dtype()),
                " does not match ", ref_name, " (", dtype_name(ref.dtype()), ")");
}

void expect_dim(const Tensor& t, const char* name, int ndim) {
  DAY18_REQUIRE(t.dim() == ndim, name, ": expected ", ndim, " dimensions, got ", t.dim(), " (",
                t.describe(), ")");
}

void expect_shape(const Tensor& t, const char* name, std::initializer_list<int64_t> shape) {
  std::vector<int64_t> want(shape);
  bool ok = t.dim() == static_cast<int>(want.size());
  for (int i = 0; ok && i < t.dim(); ++i) ok = want[i] == kAnyDim || want[i] == t.size(i);
  DAY18_REQUIRE(ok, name, ": expected shape ", shape_string(want), ", got ", t.describe());
}

void expect_device(const Tensor& t, const char* name, Device want) {
  DAY18_REQUIRE(t.device() == want, name, ": expected a ", device_name(want), " tensor, got ",
                t.describe());
}

void expect_contiguous(const Tensor& t, const char* name) {
  DAY18_REQUIRE(t.is_contiguous(), name, ": must be contiguous (", t.describe(), ")");
}

}  // namespace day18
