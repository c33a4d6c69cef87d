// compare_tensors and poison: how every test decides "correct". NaN poison must never pass,
// the report must point at the first bad elements, and tolerances must follow the dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engine/core/compare.h"
#include "engine/core/rng.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

OwnedTensor filled(const std::vector<int64_t>& shape, DType dt, std::vector<double> vals) {
  OwnedTensor t(shape, dt, Storage::host);
  for (size_t i = 0; i < vals.size(); ++i) host_set(t, static_cast<int64_t>(i), vals[i]);
  return t;
}

TEST(DefaultTolerance, LooserForFewerMantissaBitsAndExactForIntegers) {
  const Tolerance f32 = default_tolerance(DType::f32), f16 = default_tolerance(DType::f16),
                  bf16 = default_tolerance(DType::bf16);
  EXPECT_LT(f32.rtol, f16.rtol);
  EXPECT_LT(f16.rtol, bf16.rtol);
  EXPECT_LT(f32.atol, f16.atol);
  EXPECT_LT(f16.atol, bf16.atol);
  for (DType t : {DType::i32, DType::i64, DType::u8}) {
    EXPECT_EQ(default_tolerance(t).atol, 0);
    EXPECT_EQ(default_tolerance(t).rtol, 0);
  }
  const Tolerance s = scaled(f16, 3);
  EXPECT_DOUBLE_EQ(s.atol, 3 * f16.atol);
  EXPECT_DOUBLE_EQ(s.rtol, 3 * f16.rtol);
}

TEST(Compare, IdenticalTensorsPass) {
  Rng rng(1);
  OwnedTensor a = rng.normal_tensor({4, 5}, DType::bf16, 0, 1);
  OwnedTensor b = a.to(Storage::host);
  CompareResult r = compare_tensors(a, b, default_tolerance(DType::bf16));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.checked, 20);
  EXPECT_EQ(r.mismatches, 0);
  EXPECT_EQ(r.max_abs_err, 0);
  EXPECT_TRUE(r.report.empty());
}

TEST(Compare, ToleranceIsAbsolutePlusRelative) {
  const Tolerance tol{1e-3, 1e-2};  // at expected = 10: allowed |diff| = 0.101
  OwnedTensor e = filled({2}, DType::f32, {10.0, 10.0});
  OwnedTensor inside = filled({2}, DType::f32, {10.1, 9.9});
  OwnedTensor outside = filled({2}, DType::f32, {10.11, 9.9});
  EXPECT_TRUE(compare_tensors(inside, e, tol).ok);
  CompareResult r = compare_tensors(outside, e, tol);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.mismatches, 1);
  EXPECT_NEAR(r.max_abs_err, 0.11, 1e-5);
}

TEST(Compare, ReportNamesIndexExpectedActualAndTolerance) {
  OwnedTensor e = filled({2, 3}, DType::f32, {0, 1, 2, 3, 4, 5});
  OwnedTensor a = filled({2, 3}, DType::f32, {0, 1, 2, 3, 4.5, 5});
  CompareResult r = compare_tensors(a, e, default_tolerance(DType::f32));
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.report.find("1 of 6 elements differ"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("at [1,1]: expected 4, actual 4.5"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("> tol"), std::string::npos) << r.report;
}

TEST(Compare, ReportListsOnlyTheFirstFewMismatches) {
  OwnedTensor e({100}, DType::f32, Storage::host), a({100}, DType::f32, Storage::host);
  for (int i = 0; i < 100; ++i) {
    host_set(e, i, i);
    host_set(a, i, i + 1);
  }
  CompareResult r = compare_tensors(a, e, default_tolerance(DType::f32), 3);
  EXPECT_EQ(r.mismatches, 100);
  EXPECT_NE(r.report.find("first 3:"), std::string::npos);
  size_t lines = 0;
  for (size_t p = r.report.find("\n    at "); p != std::string::npos;
       p = r.report.find("\n    at ", p + 1))
    ++lines;
  EXPECT_EQ(lines, 3u);
}

TEST(Compare, PoisonedOutputNeverPasses) {
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    OwnedTensor e = filled({3}, dt, {1, 2, 3});
    OwnedTensor a = e.to(Storage::host);
    poison(a);
    CompareResult r = compare_tensors(a, e, Tolerance{1e9, 1e9});  // even a huge tolerance
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.mismatches, 3);
  }
}

TEST(Compare, OneUnwrittenElementIsCaught) {
  Rng rng(3);
  OwnedTensor e = rng.normal_tensor({64}, DType::f16, 0, 1);
  OwnedTensor a = e.to(Storage::host);
  host_set(a, 17, std::numeric_limits<double>::quiet_NaN());
  CompareResult r = compare_tensors(a, e, default_tolerance(DType::f16));
  EXPECT_EQ(r.mismatches, 1);
  EXPECT_NE(r.report.find("at [17]"), std::string::npos) << r.report;
}

TEST(Compare, MatchingInfinitiesPassAndOppositeOnesFail) {
  const double inf = std::numeric_limits<double>::infinity();
  OwnedTensor e = filled({3}, DType::f32, {-inf, inf, 1});
  EXPECT_TRUE(compare_tensors(e.to(Storage::host), e, default_tolerance(DType::f32)).ok);
  OwnedTensor a = filled({3}, DType::f32, {inf, inf, 1});
  EXPECT_FALSE(compare_tensors(a, e, default_tolerance(DType::f32)).ok);
  OwnedTensor finite = filled({3}, DType::f32, {-1e30, inf, 1});
  EXPECT_FALSE(compare_tensors(finite, e, Tolerance{1e9, 1e9}).ok);
}

TEST(Compare, IntegersCompareExactly) {
  OwnedTensor e = filled({3}, DType::i64, {5, -1, 1 << 30});
  OwnedTensor a = filled({3}, DType::i64, {5, -1, (1 << 30) + 1});
  EXPECT_TRUE(compare_tensors(e.to(Storage::host), e, default_tolerance(DType::i64)).ok);
  EXPECT_EQ(compare_tensors(a, e, default_tolerance(DType::i64)).mismatches, 1);
}

TEST(Compare, MixedDtypesCompareAsValues) {
  OwnedTensor e = filled({2}, DType::f32, {0.5, 0.25});
  OwnedTensor a = filled({2}, DType::f16, {0.5, 0.25});
  EXPECT_TRUE(compare_tensors(a, e, default_tolerance(DType::f16)).ok);
}

TEST(Compare, ShapeMismatchAndDeviceTensorsAreRejected) {
  OwnedTensor a({2, 3}, DType::f32, Storage::host), b({3, 2}, DType::f32, Storage::host);
  EXPECT_THROW_WITH(compare_tensors(a, b, {}), InvalidArgument, "compare: actual [2, 3]",
                    "expected [3, 2]");
  Tensor dev(reinterpret_cast<void*>(0x1000), DType::f32, {2, 3}, Device::cuda);
  EXPECT_THROW_WITH(compare_tensors(dev, a, {}), InvalidArgument, "actual: expected a cpu tensor");
}

TEST(Poison, FloatsBecomeNanAndIntegersAllOnes) {
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    OwnedTensor t({5}, dt, Storage::host);
    poison(t);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(std::isnan(host_get(t, i))) << dtype_name(dt);
  }
  OwnedTensor i32({3}, DType::i32, Storage::host), i64({3}, DType::i64, Storage::host),
      u8({3}, DType::u8, Storage::host);
  poison(i32);
  poison(i64);
  poison(u8);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(i32.ptr<int32_t>()[i], -1);
    EXPECT_EQ(i64.ptr<int64_t>()[i], -1);
    EXPECT_EQ(u8.ptr<uint8_t>()[i], 255);
  }
}

TEST(Poison, EmptyTensorIsANoOp) {
  OwnedTensor t({0}, DType::f32, Storage::host);
  EXPECT_NO_THROW(poison(t));
}

}  // namespace
}  // namespace day18
