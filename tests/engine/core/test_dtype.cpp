// dtype names, parsing and sizes: the names travel through safetensors headers, golden files and
// the command line, so every spelling must round-trip.
#include <gtest/gtest.h>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

constexpr DType kAll[] = {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8};

TEST(DType, SizesMatchTheCTypes) {
  EXPECT_EQ(dtype_size(DType::f32), sizeof(float));
  EXPECT_EQ(dtype_size(DType::f16), sizeof(__half));
  EXPECT_EQ(dtype_size(DType::bf16), sizeof(__nv_bfloat16));
  EXPECT_EQ(dtype_size(DType::i32), sizeof(int32_t));
  EXPECT_EQ(dtype_size(DType::i64), sizeof(int64_t));
  EXPECT_EQ(dtype_size(DType::u8), sizeof(uint8_t));
}

TEST(DType, OnlyFloatTypesAreFloating) {
  EXPECT_TRUE(is_floating(DType::f32));
  EXPECT_TRUE(is_floating(DType::f16));
  EXPECT_TRUE(is_floating(DType::bf16));
  EXPECT_FALSE(is_floating(DType::i32));
  EXPECT_FALSE(is_floating(DType::i64));
  EXPECT_FALSE(is_floating(DType::u8));
}

TEST(DType, TorchNamesRoundTrip) {
  for (DType t : kAll) EXPECT_EQ(parse_dtype(dtype_name(t)), t) << dtype_name(t);
  EXPECT_EQ(dtype_name(DType::bf16), "bfloat16");
}

TEST(DType, SafetensorsNamesRoundTrip) {
  for (DType t : kAll) EXPECT_EQ(parse_dtype(safetensors_dtype_name(t)), t);
  EXPECT_EQ(safetensors_dtype_name(DType::f16), "F16");
  EXPECT_EQ(safetensors_dtype_name(DType::i64), "I64");
}

TEST(DType, ShortFormsAndAnyCaseParse) {
  EXPECT_EQ(parse_dtype("fp32"), DType::f32);
  EXPECT_EQ(parse_dtype("float"), DType::f32);
  EXPECT_EQ(parse_dtype("FP16"), DType::f16);
  EXPECT_EQ(parse_dtype("half"), DType::f16);
  EXPECT_EQ(parse_dtype("bf16"), DType::bf16);
  EXPECT_EQ(parse_dtype("Int64"), DType::i64);
}

TEST(DType, UnknownNameIsRejectedWithTheNameAndTheChoices) {
  EXPECT_THROW_WITH(parse_dtype("float64"), InvalidArgument, "unknown dtype 'float64'", "bf16");
  EXPECT_THROW_WITH(parse_dtype(""), InvalidArgument, "unknown dtype ''");
}

TEST(DType, DtypeOfMapsCTypes) {
  static_assert(dtype_of_v<float> == DType::f32);
  static_assert(dtype_of_v<__half> == DType::f16);
  static_assert(dtype_of_v<__nv_bfloat16> == DType::bf16);
  static_assert(dtype_of_v<int64_t> == DType::i64);
}

TEST(DType, HalfConversionsRoundToNearest) {
  EXPECT_EQ(to_float(from_float<__half>(1.0f)), 1.0f);
  EXPECT_FLOAT_EQ(to_float(from_float<__half>(0.1f)), 0.0999755859375f);
  EXPECT_FLOAT_EQ(to_float(from_float<__nv_bfloat16>(0.1f)), 0.10009765625f);
  EXPECT_EQ(to_float(from_float<__half>(65504.f)), 65504.f);  // largest finite half
}

TEST(DType, DispatchFloatPicksTheCType) {
  EXPECT_EQ(dispatch_float(DType::f32, []<typename T>() { return sizeof(T); }), 4u);
  EXPECT_EQ(dispatch_float(DType::bf16, []<typename T>() { return dtype_of_v<T>; }), DType::bf16);
  EXPECT_THROW(dispatch_float(DType::i32, []<typename T>() { return 0; }), std::invalid_argument);
}

}  // namespace
}  // namespace day18
