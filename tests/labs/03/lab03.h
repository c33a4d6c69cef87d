// What the lab 03 tests share: the PyTorch goldens of reference/outputs, a check that an in-place
// kernel wrote anything at all, and a tensor with guard zones around it (a write outside the
// tensor lands in a guard and is reported, instead of corrupting the test's own memory).
#pragma once

#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/safetensors.h"
#include "tests/labs/support/lab.h"

namespace day18::lab03 {

// The goldens come in three dtypes: reference/outputs/<case>_<suffix>.safetensors.
inline const char* golden_suffix(DType dt) {
  switch (dt) {
    case DType::f32:
      return "fp32";
    case DType::f16:
      return "fp16";
    case DType::bf16:
      return "bf16";
    default:
      return "?";
  }
}

// One golden file: "in.<name>" inputs, "out.<name>" PyTorch's outputs, attributes (metadata
// keys not starting with '_'). Fails the test (ASSERT) when the file is missing: they are
// committed, made by scripts/make_reference_outputs.py.
struct Golden {
  std::string name;
  TensorFile file;
  const OwnedTensor& in(const std::string& n) const { return file.at("in." + n); }
  const OwnedTensor& out(const std::string& n) const { return file.at("out." + n); }
  std::string attr(const std::string& k) const { return file.metadata.at(k); }
  bool has_attr(const std::string& k) const { return file.metadata.count(k) != 0; }
};

inline std::string golden_path(const std::string& stem) {
  return std::string(DAY18_SOURCE_DIR) + "/reference/outputs/" + stem + ".safetensors";
}

// load_golden("rms_norm_odd", DType::f16) reads reference/outputs/rms_norm_odd_fp16.safetensors.
inline Golden load_golden(const std::string& case_name, DType dt) {
  Golden g;
  g.name = case_name + "_" + golden_suffix(dt);
  const std::string path = golden_path(g.name);
  if (!std::filesystem::exists(path))
    throw Error("golden file " + path +
                " is missing (reference/outputs is committed; scripts/make_reference_outputs.py "
                "makes it on a machine with PyTorch)");
  g.file = read_safetensors(path);
  return g;
}

// PyTorch and our code round differently (accumulation order, fused multiply-adds): the golden
// comparisons allow twice the dtype's default tolerance, as tests/engine/golden does.
inline Tolerance golden_tolerance(DType dt) {
  return scaled(default_tolerance(dt), 2.0);
}

// An in-place output after the call, what it held before, and what it should hold now.
struct InPlace {
  const char* name;
  Tensor after, before, expected;
};

// Success unless every output still holds exactly what it held before the call while the
// expected result differs: then the kernel wrote nothing at all, which is what an empty TODO
// region does (in-place outputs cannot be poisoned first, so this is how such a test tells
// "not written yet" from "wrong"). Any other difference is left to LAB_EXPECT_CLOSE.
inline ::testing::AssertionResult wrote_something(const std::vector<InPlace>& outs) {
  bool all_unchanged = true, any_should_change = false;
  std::string names;
  for (const InPlace& o : outs) {
    all_unchanged = all_unchanged && testing::bitwise_equal(o.after, o.before);
    any_should_change = any_should_change || !testing::bitwise_equal(o.expected, o.before);
    names += (names.empty() ? "" : " and ") + std::string(o.name);
  }
  if (all_unchanged && any_should_change)
    return ::testing::AssertionFailure() << lab::not_implemented_message(
               names + " hold exactly what they held before the launch: nothing was written");
  return ::testing::AssertionSuccess();
}

// A contiguous tensor of `shape` inside a larger buffer: `before` guard elements in front of it,
// `after` behind it, all filled with random values that must survive the test untouched.
class Guarded {
 public:
  Guarded(const std::vector<int64_t>& shape, DType dt, Storage storage, int64_t before,
          int64_t after, uint64_t seed = 77)
      : before_(before) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    n_ = n;
    Rng rng(seed);
    initial_ = rng.uniform_tensor({before + n + after}, dt, -4.0, 4.0);
    buf_ = initial_.to(storage);
    view_ = Tensor(static_cast<char*>(buf_.data()) + before * dtype_size(dt), dt, shape,
                   device_of(storage));
  }
  const Tensor& view() const { return view_; }
  operator const Tensor&() const { return view_; }  // NOLINT: use wherever a tensor goes

  // Copies host contents (same shape, contiguous) into the tensor, guards unchanged.
  void set(const Tensor& contents) { copy_tensor(view_, contents); }

  // Every guard element bit for bit as it was.
  ::testing::AssertionResult guards_intact() const {
    OwnedTensor now = testing::to_host(buf_.view());
    const size_t esz = dtype_size(view_.dtype());
    const auto* a = static_cast<const char*>(now.data());
    const auto* b = static_cast<const char*>(initial_.data());
    const int64_t total = initial_.numel();
    int64_t bad_before = 0, bad_after = 0, first = -1;
    for (int64_t i = 0; i < total; ++i) {
      if (i >= before_ && i < before_ + n_) continue;
      if (std::memcmp(a + i * esz, b + i * esz, esz) != 0) {
        (i < before_ ? bad_before : bad_after)++;
        if (first < 0) first = i;
      }
    }
    if (bad_before + bad_after == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "wrote outside the tensor: " << bad_before << " elements in the guard before it and "
           << bad_after << " after it (first at element " << first - before_
           << " counted from the tensor's start, which has " << n_ << " elements)";
  }

 private:
  int64_t before_ = 0, n_ = 0;
  OwnedTensor initial_, buf_;
  Tensor view_;
};

// A stream for device tensors, none (nullptr) for host ones: creating a stream needs a GPU.
class StreamIfGpu {
 public:
  explicit StreamIfGpu(Storage storage) {
    if (storage == Storage::device) stream_.emplace();
  }
  operator cudaStream_t() const { return stream_ ? stream_->get() : nullptr; }  // NOLINT
  void synchronize() const {
    if (stream_) stream_->synchronize();
  }

 private:
  std::optional<Stream> stream_;
};

// Host int64 tensor from values.
inline OwnedTensor i64_tensor(const std::vector<int64_t>& v) {
  OwnedTensor t({static_cast<int64_t>(v.size())}, DType::i64, Storage::host);
  std::memcpy(t.data(), v.data(), v.size() * sizeof(int64_t));
  return t;
}

}  // namespace day18::lab03
