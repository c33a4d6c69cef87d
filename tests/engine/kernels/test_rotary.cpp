// rotary_embedding (RoPE): CPU oracle by hand, CUDA kernel vs oracle over shapes, styles and
// dtypes, partial rotary (the tail stays bit-identical), GQA, bad positions, bad arguments.
//
// The op works in place on query and key (they are its inputs), so they cannot be poisoned
// before the launch; instead every element is compared with the oracle, and the dimensions
// that must not change are compared bit for bit with the input.
#include <cmath>
#include <cstring>

#include "engine/cpu/rotary.h"
#include "engine/ops/cache.h"
#include "engine/ops/rotary.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

using testing::copy_of;
using testing::to_host;

constexpr auto& kDtypes = testing::kAllFloatDtypes;

OwnedTensor f32_tensor(const std::vector<float>& v, std::vector<int64_t> shape) {
  OwnedTensor t(shape, DType::f32, Storage::host);
  std::copy(v.begin(), v.end(), t.ptr<float>());
  return t;
}

OwnedTensor positions_tensor(const std::vector<int64_t>& v, Storage storage = Storage::host) {
  OwnedTensor t({int64_t(v.size())}, DType::i64, Storage::host);
  std::copy(v.begin(), v.end(), t.ptr<int64_t>());
  return storage == Storage::host ? std::move(t) : t.to(storage);
}

template <typename F>
void expect_invalid(F&& f, const std::vector<std::string>& must_contain) {
  try {
    f();
    ADD_FAILURE() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    for (auto& s : must_contain)
      EXPECT_NE(std::string(e.what()).find(s), std::string::npos)
          << "message lacks '" << s << "': " << e.what();
  }
}

// Elements [rot_dim, head_size) of every head: identical bytes in a and b.
int64_t tail_differences(const Tensor& a_any, const Tensor& b_any, int64_t rot_dim) {
  OwnedTensor a = to_host(a_any), b = to_host(b_any);
  const int64_t D = a.sizes().back(), rows = a.numel() / D;
  const size_t esz = dtype_size(a.dtype());
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    bad += std::memcmp(static_cast<const char*>(a.data()) + (r * D + rot_dim) * esz,
                       static_cast<const char*>(b.data()) + (r * D + rot_dim) * esz,
                       (D - rot_dim) * esz) != 0;
  return bad;
}

// ============================================================ cos/sin cache
TEST(RotaryCosSinCache, RowsAreCosThenSinOfPositionTimesInverseFrequency) {
  const double theta = 10000;
  OwnedTensor cs = make_cos_sin_cache(64, 8, theta, DType::f32);
  ASSERT_EQ(cs.sizes(), (std::vector<int64_t>{64, 8}));
  for (int64_t p : {0, 1, 17, 63})
    for (int64_t i = 0; i < 4; ++i) {
      const double angle = double(p) * std::pow(theta, -2.0 * double(i) / 8.0);
      EXPECT_NEAR(host_get(cs, p * 8 + i), std::cos(angle), 1e-6) << p << "," << i;
      EXPECT_NEAR(host_get(cs, p * 8 + 4 + i), std::sin(angle), 1e-6) << p << "," << i;
    }
  expect_invalid([] { (void)make_cos_sin_cache(16, 7, 10000, DType::f32); }, {"rot_dim"});
  expect_invalid([] { (void)make_cos_sin_cache(16, 8, -1, DType::f32); }, {"rope_theta"});
  expect_invalid([] { (void)make_cos_sin_cache(0, 8, 10000, DType::f32); }, {"max_position"});
}

// ============================================================ CPU oracle by hand
TEST(RotaryEmbedding, CpuRotatesAKnownVectorByAKnownAngle) {
  // rot_dim 2: one pair, frequency theta^0 = 1, so position p rotates by p radians.
  OwnedTensor cs = make_cos_sin_cache(4, 2, 10000, DType::f32);
  OwnedTensor q = f32_tensor({1, 0, 3, 4}, {2, 1, 2});  // tokens at positions 1 and 2
  OwnedTensor k = f32_tensor({0, 2, 1, 1}, {2, 1, 2});
  OwnedTensor pos = positions_tensor({1, 2});
  for (bool neox : {true, false}) {  // one pair: both styles agree
    OwnedTensor qq = copy_of(q, Storage::host), kk = copy_of(k, Storage::host);
    rotary_embedding(pos, qq, kk, cs, 2, neox);
    const float* a = qq.ptr<float>();
    const float* b = kk.ptr<float>();
    EXPECT_NEAR(a[0], std::cos(1.0), 1e-6);  // (1, 0) by 1 rad
    EXPECT_NEAR(a[1], std::sin(1.0), 1e-6);
    EXPECT_NEAR(a[2], 3 * std::cos(2.0) - 4 * std::sin(2.0), 1e-5);  // (3, 4) by 2 rad
    EXPECT_NEAR(a[3], 4 * std::cos(2.0) + 3 * std::sin(2.0), 1e-5);
    EXPECT_NEAR(b[0], -2 * std::sin(1.0), 1e-6);  // (0, 2) by 1 rad
    EXPECT_NEAR(b[1], 2 * std::cos(1.0), 1e-6);
    EXPECT_NEAR(std::hypot(b[2], b[3]), std::sqrt(2.0), 1e-6);  // rotation keeps the length
  }
}

TEST(RotaryEmbedding, CpuNeoxPairsHalvesAndGptjPairsNeighbours) {
  const double theta = 100;
  OwnedTensor cs = make_cos_sin_cache(8, 4, theta, DType::f32);
  const double p = 3, f0 = 1, f1 = std::pow(theta, -0.5);
  const double c0 = std::cos(p * f0), s0 = std::sin(p * f0), c1 = std::cos(p * f1),
               s1 = std::sin(p * f1);
  OwnedTensor pos = positions_tensor({3});
  OwnedTensor key = f32_tensor({1, 1, 1, 1}, {1, 1, 4});
  OwnedTensor q1 = f32_tensor({1, 2, 3, 4}, {1, 1, 4});
  rotary_embedding(pos, q1, key, cs, 4, /*is_neox=*/true);  // pairs (0,2) f0 and (1,3) f1
  const double neox[] = {1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1};
  OwnedTensor q2 = f32_tensor({1, 2, 3, 4}, {1, 1, 4});
  rotary_embedding(pos, q2, key, cs, 4, /*is_neox=*/false);  // pairs (0,1) f0 and (2,3) f1
  const double gptj[] = {1 * c0 - 2 * s0, 2 * c0 + 1 * s0, 3 * c1 - 4 * s1, 4 * c1 + 3 * s1};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(q1.ptr<float>()[i], neox[i], 1e-5) << "neox " << i;
    EXPECT_NEAR(q2.ptr<float>()[i], gptj[i], 1e-5) << "gptj " << i;
  }
}

TEST(RotaryEmbedding, CpuPositionZeroIsIdentityAndPartialRotaryKeepsTheTail) {
  Rng rng(21);
  OwnedTensor cs = make_cos_sin_cache(32, 16, 10000, DType::bf16);
  OwnedTensor q = rng.normal_tensor({3, 4, 40}, DType::bf16, 0, 1);
  OwnedTensor k = rng.normal_tensor({3, 2, 40}, DType::bf16, 0, 1);
  OwnedTensor q0 = copy_of(q, Storage::host), k0 = copy_of(k, Storage::host);
  OwnedTensor pos = positions_tensor({0, 5, 31});
  rotary_embedding(pos, q, k, cs, 40, true);
  EXPECT_EQ(tail_differences(q, q0, 16), 0);
  EXPECT_EQ(tail_differences(k, k0, 16), 0);
  // Token 0 (position 0: cos 1, sin 0) is unchanged everywhere.
  EXPECT_EQ(std::memcmp(q.data(), q0.data(), 4 * 40 * 2), 0);
}

TEST(RotaryEmbedding, CpuOutOfRangePositionThrowsNamingItAndTouchesNothing) {
  Rng rng(22);
  OwnedTensor cs = make_cos_sin_cache(16, 8, 10000, DType::f16);
  OwnedTensor q = rng.normal_tensor({3, 2, 8}, DType::f16, 0, 1);
  OwnedTensor k = rng.normal_tensor({3, 1, 8}, DType::f16, 0, 1);
  OwnedTensor q0 = copy_of(q, Storage::host);
  OwnedTensor pos = positions_tensor({1, 2, 16});
  expect_invalid([&] { rotary_embedding(pos, q, k, cs, 8, true); },
                 {"positions[2]", "= 16", "out of range"});
  EXPECT_EQ(std::memcmp(q.data(), q0.data(), q.nbytes()), 0);
  OwnedTensor neg = positions_tensor({-1, 2, 3});
  expect_invalid([&] { rotary_embedding(neg, q, k, cs, 8, true); }, {"positions[0]", "= -1"});
}

TEST(RotaryEmbedding, RejectsBadArguments) {
  Rng rng(23);
  OwnedTensor cs = make_cos_sin_cache(16, 8, 10000, DType::f16);
  OwnedTensor cs32 = make_cos_sin_cache(16, 8, 10000, DType::f32);
  OwnedTensor cs_wide = make_cos_sin_cache(16, 16, 10000, DType::f16);
  OwnedTensor cs_odd = rng.normal_tensor({16, 7}, DType::f16, 0, 1);
  OwnedTensor q = rng.normal_tensor({3, 4, 8}, DType::f16, 0, 1);
  OwnedTensor k = rng.normal_tensor({3, 2, 8}, DType::f16, 0, 1);
  OwnedTensor k3 = rng.normal_tensor({3, 3, 8}, DType::f16, 0, 1);
  OwnedTensor k_tokens = rng.normal_tensor({2, 2, 8}, DType::f16, 0, 1);
  OwnedTensor k_bf16 = rng.normal_tensor({3, 2, 8}, DType::bf16, 0, 1);
  OwnedTensor pos = positions_tensor({0, 1, 2});
  OwnedTensor pos_short = positions_tensor({0, 1});
  OwnedTensor pos32({3}, DType::i32, Storage::host);
  expect_invalid([&] { rotary_embedding(pos, q, k, cs, 16, true); }, {"query", "head_size"});
  expect_invalid([&] { rotary_embedding(pos, q, k, cs32, 8, true); }, {"cos_sin_cache"});
  expect_invalid([&] { rotary_embedding(pos, q, k, cs_wide, 8, true); },
                 {"cos_sin_cache", "rot_dim"});
  expect_invalid([&] { rotary_embedding(pos, q, k, cs_odd, 8, true); }, {"cos_sin_cache", "even"});
  expect_invalid([&] { rotary_embedding(pos, q, k3, cs, 8, true); }, {"num_kv_heads"});
  expect_invalid([&] { rotary_embedding(pos, q, k_tokens, cs, 8, true); }, {"key"});
  expect_invalid([&] { rotary_embedding(pos, q, k_bf16, cs, 8, true); }, {"key"});
  expect_invalid([&] { rotary_embedding(pos_short, q, k, cs, 8, true); }, {"positions"});
  expect_invalid([&] { rotary_embedding(pos32, q, k, cs, 8, true); }, {"positions"});
}

// ============================================================ GPU vs oracle
struct RopeShape {
  int64_t tokens, heads, kv_heads, head_size, rot_dim;
  bool fused_qkv;  // query/key are views into one [tokens, (heads + 2 kv_heads) * head_size]
};

void run_rope_case(const RopeShape& sh, DType dt, bool neox, uint64_t seed) {
  SCOPED_TRACE(detail::concat("tokens ", sh.tokens, " heads ", sh.heads, "/", sh.kv_heads,
                              " head_size ", sh.head_size, " rot_dim ", sh.rot_dim,
                              sh.fused_qkv ? " fused qkv " : " ", dtype_name(dt),
                              neox ? " neox" : " gptj"));
  Rng rng(seed);
  const int64_t max_position = 300;
  OwnedTensor cs = make_cos_sin_cache(max_position, sh.rot_dim, 10000, dt);
  OwnedTensor cs_d = cs.to(Storage::device);
  std::vector<int64_t> p(sh.tokens);
  for (auto& x : p) x = rng.randint(0, max_position - 1);
  p.back() = max_position - 1;  // the last row of the table
  OwnedTensor pos = positions_tensor(p), pos_d = pos.to(Storage::device);
  const int64_t qd = sh.heads * sh.head_size, kd = sh.kv_heads * sh.head_size;
  const int64_t width = sh.fused_qkv ? qd + 2 * kd : qd + kd;
  OwnedTensor qkv = rng.normal_tensor({sh.tokens, width}, dt, 0, 1);
  OwnedTensor qkv0 = copy_of(qkv, Storage::host);
  OwnedTensor qkv_d = qkv.to(Storage::device);
  auto q_of = [&](const OwnedTensor& t, Device d) {
    return Tensor(t.data(), dt, {sh.tokens, sh.heads, sh.head_size}, {width, sh.head_size, 1}, d);
  };
  auto k_of = [&](const OwnedTensor& t, Device d) {
    return Tensor(static_cast<char*>(t.data()) + qd * dtype_size(dt), dt,
                  {sh.tokens, sh.kv_heads, sh.head_size}, {width, sh.head_size, 1}, d);
  };
  rotary_embedding(pos, q_of(qkv, Device::cpu), k_of(qkv, Device::cpu), cs, sh.head_size, neox);
  Stream s;
  rotary_embedding(pos_d, q_of(qkv_d, Device::cuda), k_of(qkv_d, Device::cuda), cs_d, sh.head_size,
                   neox, /*check_positions=*/true, s);
  s.synchronize();
  EXPECT_CLOSE(qkv_d, qkv, default_tolerance(dt));
  // Not rotated: the tail of every head and, in fused qkv, the value part: bit-identical.
  OwnedTensor got = to_host(qkv_d);
  const int64_t heads_all = sh.heads + sh.kv_heads;
  const size_t esz = dtype_size(dt);
  int64_t bad = 0;
  for (int64_t t = 0; t < sh.tokens; ++t) {
    for (int64_t h = 0; h < heads_all; ++h) {
      const int64_t off = (t * width + h * sh.head_size + sh.rot_dim) * int64_t(esz);
      bad +=
          std::memcmp(static_cast<char*>(got.data()) + off, static_cast<char*>(qkv0.data()) + off,
                      (sh.head_size - sh.rot_dim) * esz) != 0;
    }
    if (sh.fused_qkv) {
      const int64_t off = (t * width + qd + kd) * int64_t(esz);
      bad += std::memcmp(static_cast<char*>(got.data()) + off,
                         static_cast<char*>(qkv0.data()) + off, kd * esz) != 0;
    }
  }
  EXPECT_EQ(bad, 0) << "rows changed outside the rotated dimensions";
}

TEST(RotaryEmbedding, GpuMatchesOracleBothStylesEveryDtypeRandomShapes) {
  DAY18_REQUIRE_GPU();
  Rng shapes(24);
  uint64_t seed = 400;
  for (DType dt : kDtypes)
    for (bool neox : {true, false})
      for (int rep = 0; rep < 3; ++rep) {
        const int64_t kv = shapes.randint(1, 4), group = shapes.randint(1, 4);
        const int64_t head = std::vector<int64_t>{64, 128, 256}[shapes.randint(0, 2)];
        run_rope_case({shapes.randint(1, 200), kv * group, kv, head, head, rep == 2}, dt, neox,
                      ++seed);
      }
}

TEST(RotaryEmbedding, GpuPartialRotaryGqaSingleTokenAndOddShapes) {
  DAY18_REQUIRE_GPU();
  uint64_t seed = 500;
  for (DType dt : kDtypes)
    for (bool neox : {true, false}) {
      run_rope_case({33, 8, 2, 128, 64, false}, dt, neox, ++seed);  // partial rotary, GQA 4:1
      run_rope_case({1, 32, 8, 128, 128, true}, dt, neox, ++seed);  // single token, fused qkv
      run_rope_case({17, 4, 4, 80, 80, false}, dt, neox, ++seed);   // head 80
      run_rope_case({9, 2, 1, 36, 20, false}, dt, neox, ++seed);    // scalar path, partial
    }
}

TEST(RotaryEmbedding, GpuCheckedModeThrowsOnBadPositionAndUncheckedLeavesTokenUntouched) {
  DAY18_REQUIRE_GPU();
  Rng rng(25);
  OwnedTensor cs = make_cos_sin_cache(64, 128, 10000, DType::f16, Storage::device);
  OwnedTensor q = rng.normal_tensor({4, 4, 128}, DType::f16, 0, 1, Storage::device);
  OwnedTensor k = rng.normal_tensor({4, 2, 128}, DType::f16, 0, 1, Storage::device);
  OwnedTensor pos = positions_tensor({3, 64, 5, 900}, Storage::device);
  Stream s;
  expect_invalid([&] { rotary_embedding(pos, q, k, cs, 128, true, true, s); },
                 {"positions[1]", "= 64", "out of range", "2 bad"});
  OwnedTensor q0 = copy_of(q, Storage::host);
  (void)take_index_errors("positions", s);
  rotary_embedding(pos, q, k, cs, 128, true, false, s);
  const IndexErrors e = take_index_errors("positions", s);
  EXPECT_EQ(e.count, 2);
  EXPECT_EQ(e.first_row, 1);
  OwnedTensor q1 = copy_of(q, Storage::host);
  const size_t row = 4 * 128 * 2;
  EXPECT_EQ(
      std::memcmp(static_cast<char*>(q1.data()) + row, static_cast<char*>(q0.data()) + row, row), 0)
      << "token 1 (bad position) was modified";
  EXPECT_NE(std::memcmp(q1.data(), q0.data(), row), 0) << "token 0 was not rotated";
}

}  // namespace
}  // namespace day18
