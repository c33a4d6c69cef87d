// Tensor views and the validation helpers every op uses: errors must name the argument and show
// the offending value, since that is what a learner reads when a call is wrong.
#include <gtest/gtest.h>

#include "engine/core/memory.h"
#include "engine/core/tensor.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

// Views never dereference their pointer, so a fake address serves for device tensors too.
void* const kFake = reinterpret_cast<void*>(0x10000);

TEST(Tensor, ContiguousViewHasRowMajorStrides) {
  Tensor t(kFake, DType::f16, {7, 32, 128}, Device::cuda);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.size(0), 7);
  EXPECT_EQ(t.size(-1), 128);
  EXPECT_EQ(t.stride(0), 32 * 128);
  EXPECT_EQ(t.stride(1), 128);
  EXPECT_EQ(t.stride(-1), 1);
  EXPECT_EQ(t.numel(), 7 * 32 * 128);
  EXPECT_EQ(t.nbytes(), 7u * 32 * 128 * 2);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_TRUE(t.is_cuda());
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{7, 32, 128}));
}

TEST(Tensor, DescribeShowsShapeDtypeAndDevice) {
  EXPECT_EQ(Tensor(kFake, DType::f16, {7, 32, 128}, Device::cuda).describe(),
            "[7, 32, 128] float16 cuda");
  EXPECT_EQ(Tensor(kFake, DType::i64, {5}, Device::cpu).describe(), "[5] int64 cpu");
}

TEST(Tensor, ScalarAndEmptyTensors) {
  Tensor scalar(kFake, DType::f32, std::vector<int64_t>{}, Device::cpu);
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  Tensor empty(nullptr, DType::f32, {0, 4}, Device::cpu);
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_TRUE(empty.defined());
  EXPECT_NO_THROW(expect_defined(empty, "empty"));
}

TEST(Tensor, TransposedStridesAreNotContiguous) {
  Tensor t(kFake, DType::f32, {4, 3}, {1, 4}, Device::cpu);
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_THROW_WITH(expect_contiguous(t, "key"), InvalidArgument, "key: must be contiguous",
                    "[4, 3] float32 cpu");
  EXPECT_THROW_WITH(t.view({12}), InvalidArgument, "non-contiguous");
}

TEST(Tensor, SizeOneDimensionsIgnoreTheirStride) {
  Tensor t(kFake, DType::f32, {1, 3}, {99, 1}, Device::cpu);
  EXPECT_TRUE(t.is_contiguous());
}

TEST(Tensor, Slice0OffsetsThePointerByWholeRows) {
  Tensor t(kFake, DType::bf16, {10, 8}, Device::cuda);
  Tensor s = t.slice0(3, 5);
  EXPECT_EQ(s.size(0), 2);
  EXPECT_EQ(s.size(1), 8);
  EXPECT_EQ(static_cast<char*>(s.data()) - static_cast<char*>(t.data()), 3 * 8 * 2);
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(t.slice0(10, 10).numel(), 0);
}

TEST(Tensor, Slice0OutOfRangeNamesTheRange) {
  Tensor t(kFake, DType::f32, {10, 8}, Device::cpu);
  EXPECT_THROW_WITH(t.slice0(4, 11), InvalidArgument, "slice0 [4, 11)", "[10, 8]");
  EXPECT_THROW_WITH(t.slice0(5, 4), InvalidArgument, "slice0 [5, 4)");
}

TEST(Tensor, ViewKeepsMemoryAndChecksElementCount) {
  Tensor t(kFake, DType::f32, {4, 6}, Device::cpu);
  Tensor v = t.view({2, 3, 4});
  EXPECT_EQ(v.data(), t.data());
  EXPECT_EQ(v.stride(0), 12);
  EXPECT_THROW_WITH(t.view({5, 5}), InvalidArgument, "view [5, 5] has 25 elements", "has 24");
}

TEST(Tensor, BadConstructionIsRejected) {
  EXPECT_THROW_WITH(Tensor(kFake, DType::f32, {4, -2}, Device::cpu), InvalidArgument,
                    "negative extent -2");
  EXPECT_THROW_WITH(Tensor(kFake, DType::f32, {1, 1, 1, 1, 1, 1, 1}, Device::cpu), InvalidArgument,
                    "rank 7");
  EXPECT_THROW_WITH(Tensor(kFake, DType::f32, {4, 3}, {1}, Device::cpu), InvalidArgument,
                    "strides rank 1 != shape rank 2");
}

TEST(Tensor, DimensionOutOfRangeIsAnError) {
  Tensor t(kFake, DType::f32, {4, 3}, Device::cpu);
  EXPECT_THROW_WITH(t.size(2), InvalidArgument, "dimension 2 out of range");
  EXPECT_THROW_WITH(t.stride(-3), InvalidArgument, "out of range");
}

TEST(Tensor, TypedPointerChecksTheDtype) {
  Tensor t(kFake, DType::f16, {4}, Device::cpu);
  EXPECT_EQ(t.ptr<__half>(), kFake);
  EXPECT_THROW_WITH(t.ptr<float>(), InvalidArgument, "tensor is float16, accessed as float32");
}

TEST(Tensor, DeviceNamesParse) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu);
  EXPECT_EQ(parse_device("cuda"), Device::cuda);
  EXPECT_EQ(parse_device("gpu"), Device::cuda);
  EXPECT_THROW_WITH(parse_device("tpu"), InvalidArgument, "unknown device 'tpu'");
}

// ---- validation helpers: the message names the argument and the value ----

TEST(Validation, ExpectShapeNamesArgumentExpectedAndActual) {
  Tensor q(kFake, DType::f16, {7, 32, 64}, Device::cuda);
  EXPECT_NO_THROW(expect_shape(q, "query", {7, 32, 64}));
  EXPECT_THROW_WITH(expect_shape(q, "query", {7, 32, 128}), InvalidArgument,
                    "query: expected shape [7, 32, 128], got [7, 32, 64] float16 cuda");
}

TEST(Validation, ExpectShapeWildcardAcceptsAnyExtent) {
  Tensor q(kFake, DType::f16, {7, 32, 64}, Device::cuda);
  EXPECT_NO_THROW(expect_shape(q, "query", {kAnyDim, 32, kAnyDim}));
  EXPECT_THROW_WITH(expect_shape(q, "query", {kAnyDim, 8, 64}), InvalidArgument,
                    "expected shape [*, 8, 64]");
  EXPECT_THROW_WITH(expect_shape(q, "query", {kAnyDim, kAnyDim}), InvalidArgument,
                    "query: expected shape [*, *]");
}

TEST(Validation, ExpectDtypeNamesBothDtypes) {
  Tensor t(kFake, DType::i32, {5}, Device::cpu);
  EXPECT_NO_THROW(expect_dtype(t, "slot_mapping", DType::i32));
  EXPECT_THROW_WITH(expect_dtype(t, "slot_mapping", DType::i64), InvalidArgument,
                    "slot_mapping: expected dtype int64, got int32");
}

TEST(Validation, ExpectDtypeInListsTheAllowedDtypes) {
  Tensor t(kFake, DType::i32, {5}, Device::cpu);
  EXPECT_NO_THROW(expect_dtype_in(t, "x", {DType::f32, DType::i32}));
  EXPECT_THROW_WITH(expect_dtype_in(t, "input", {DType::f32, DType::f16, DType::bf16}),
                    InvalidArgument, "input: dtype int32 not supported",
                    "float32, float16, bfloat16");
}

TEST(Validation, ExpectSameDtypeNamesBothArguments) {
  Tensor a(kFake, DType::f16, {5}, Device::cpu), b(kFake, DType::bf16, {5}, Device::cpu);
  EXPECT_THROW_WITH(expect_same_dtype(a, "weight", b, "input"), InvalidArgument,
                    "weight: dtype float16 does not match input (bfloat16)");
}

TEST(Validation, ExpectDimDeviceAndDefined) {
  Tensor t(kFake, DType::f32, {5, 2}, Device::cpu);
  EXPECT_THROW_WITH(expect_dim(t, "block_tables", 3), InvalidArgument,
                    "block_tables: expected 3 dimensions, got 2");
  EXPECT_THROW_WITH(expect_device(t, "key_cache", Device::cuda), InvalidArgument,
                    "key_cache: expected a cuda tensor, got [5, 2] float32 cpu");
  Tensor null(nullptr, DType::f32, {5}, Device::cuda);
  EXPECT_FALSE(null.defined());
  EXPECT_THROW_WITH(expect_defined(null, "out"), InvalidArgument, "out: null data pointer");
}

TEST(Validation, ErrorsAreInvalidArgumentAndCarryTheSourceLocation) {
  Tensor t(kFake, DType::f32, {5}, Device::cpu);
  try {
    expect_dim(t, "x", 2);
    FAIL() << "did not throw";
  } catch (const Error& e) {  // InvalidArgument is an Error
    EXPECT_NE(std::string(e.what()).find("tensor.cpp:"), std::string::npos) << e.what();
  }
}

TEST(OwnedTensor, HostTensorOwnsAlignedContiguousMemory) {
  OwnedTensor t({3, 5}, DType::f32, Storage::host);
  EXPECT_NE(t.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 256, 0u);
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_EQ(t.storage(), Storage::host);
  const Tensor& v = t;
  EXPECT_EQ(v.device(), Device::cpu);
  OwnedTensor moved = std::move(t);
  EXPECT_EQ(moved.nbytes(), 60u);
}

TEST(OwnedTensor, HostToHostCopyIsExact) {
  OwnedTensor a({4}, DType::i64, Storage::host);
  for (int i = 0; i < 4; ++i) a.ptr<int64_t>()[i] = (int64_t(1) << 40) + i;
  OwnedTensor b = a.to(Storage::host);
  EXPECT_NE(a.data(), b.data());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.ptr<int64_t>()[i], (int64_t(1) << 40) + i);
}

TEST(OwnedTensor, CopyTensorRejectsMismatchedShapesAndDtypes) {
  OwnedTensor a({4}, DType::f32, Storage::host), b({5}, DType::f32, Storage::host),
      c({4}, DType::f16, Storage::host);
  EXPECT_THROW_WITH(copy_tensor(a, b), InvalidArgument, "dst [4] float32 cpu vs src [5]");
  EXPECT_THROW_WITH(copy_tensor(a, c), InvalidArgument, "dst: dtype float32 does not match src");
}

}  // namespace
}  // namespace day18
