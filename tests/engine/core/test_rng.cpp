// Rng: same seed, same inputs, on every machine and compiler (so a failing case can be replayed
// from its seed). Pinned against splitmix64's published sequence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "engine/core/rng.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

TEST(Rng, SequenceIsSplitmix64AndPinned) {
  // Independent computation (Python: splitmix64 with state 18).
  Rng r(18);
  EXPECT_EQ(r.next_u64(), 0x1120b3d00955f032ull);
  EXPECT_EQ(r.next_u64(), 0xb6d46a242257c018ull);
  EXPECT_EQ(r.next_u64(), 0x6e372283acb06862ull);
}

TEST(Rng, SameSeedSameTensorsDifferentSeedDifferentTensors) {
  Rng a(42), b(42), c(43);
  OwnedTensor ta = a.normal_tensor({256}, DType::f16, 0, 1);
  OwnedTensor tb = b.normal_tensor({256}, DType::f16, 0, 1);
  OwnedTensor tc = c.normal_tensor({256}, DType::f16, 0, 1);
  EXPECT_EQ(std::memcmp(ta.data(), tb.data(), ta.nbytes()), 0);
  EXPECT_NE(std::memcmp(ta.data(), tc.data(), ta.nbytes()), 0);
}

TEST(Rng, SeedZeroIsUsable) {
  Rng r(0);
  std::set<uint64_t> seen;
  for (int i = 0; i < 100; ++i) seen.insert(r.next_u64());
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Rng, UniformStaysInItsHalfOpenRange) {
  Rng r(5);
  double lo = 1e9, hi = -1e9;
  for (int i = 0; i < 100000; ++i) {
    const double u = r.uniform(-2, 3);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    ASSERT_GE(u, -2);
    ASSERT_LT(u, 3);
  }
  EXPECT_LT(lo, -1.99);
  EXPECT_GT(hi, 2.99);
}

TEST(Rng, RandintIsInclusiveAtBothEnds) {
  Rng r(6);
  std::set<int64_t> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(r.randint(-3, 3));
  EXPECT_EQ(seen, (std::set<int64_t>{-3, -2, -1, 0, 1, 2, 3}));
  EXPECT_EQ(r.randint(7, 7), 7);
  EXPECT_THROW_WITH(r.randint(4, 3), InvalidArgument, "randint: empty range [4, 3]");
}

TEST(Rng, NormalHasMeanZeroAndUnitVariance) {
  Rng r(8);
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal();
    ASSERT_TRUE(std::isfinite(x));
    s += x;
    s2 += x * x;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 0, 0.01);
  EXPECT_NEAR(var, 1, 0.02);
}

TEST(Rng, FillUniformRoundsToTheDtypeAndIntegersStayInRange) {
  Rng r(9);
  OwnedTensor h = r.uniform_tensor({1000}, DType::f16, -1, 1);
  std::set<double> distinct;
  for (int i = 0; i < 1000; ++i) {
    const double v = host_get(h, i);
    EXPECT_GE(v, -1);
    EXPECT_LE(v, 1);  // rounding to half may reach the upper bound
    distinct.insert(v);
  }
  EXPECT_GT(distinct.size(), 500u) << "inputs must be varied, never constants";
  OwnedTensor ids = r.uniform_tensor({1000}, DType::i32, 0, 9);
  std::set<double> vals;
  for (int i = 0; i < 1000; ++i) vals.insert(host_get(ids, i));
  EXPECT_EQ(vals.size(), 10u);
  EXPECT_EQ(*vals.begin(), 0);
  EXPECT_EQ(*vals.rbegin(), 9);
}

TEST(Rng, HostGetSetRoundToTheDtype) {
  OwnedTensor t({1}, DType::bf16, Storage::host);
  host_set(t, 0, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(host_get(t, 0), 0.333984375);
  OwnedTensor i({1}, DType::i64, Storage::host);
  host_set(i, 0, 12345678901.0);
  EXPECT_EQ(i.ptr<int64_t>()[0], 12345678901);
}

TEST(Rng, FillRejectsDeviceTensors) {
  Rng r(1);
  Tensor dev(reinterpret_cast<void*>(0x1000), DType::f32, {4}, Device::cuda);
  EXPECT_THROW_WITH(r.fill_uniform(dev, 0, 1), InvalidArgument, "expected a cpu tensor");
}

}  // namespace
}  // namespace day18
