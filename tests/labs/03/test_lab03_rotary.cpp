// Lab 03, tasks 3-4: rotary embedding (RoPE), in place on query and key.
//
//   Task 3 (CPU): a vector rotated by hand-picked cos/sin in both styles, position 0, the
//                 untouched tail of a partial rotation, and the PyTorch goldens (neox and gptj,
//                 GQA, rot_dim 16 of head 48, one token).
//   Task 4 (GPU): the goldens, then your kernel against your task 3 on random shapes (every
//                 dtype, both styles, 16-byte and scalar paths, qkv views, GQA, partial rotary,
//                 one token), a bad position, and the timing.
// rotary_embedding works in place, so its outputs cannot be poisoned before the launch:
// lab03::wrote_something reports a kernel that changed nothing as not implemented.
#include <cmath>
#include <set>

#include "engine/ops/cache.h"
#include "engine/ops/rotary.h"
#include "tests/labs/03/lab03.h"

namespace day18 {
namespace {

using lab03::i64_tensor;
using testing::bitwise_equal;
using testing::copy_of;
using testing::to_host;

constexpr auto& kDtypes = testing::kAllFloatDtypes;

OwnedTensor f32(std::vector<int64_t> shape, std::initializer_list<float> v) {
  OwnedTensor t(shape, DType::f32, Storage::host);
  int64_t i = 0;
  for (float x : v) t.ptr<float>()[i++] = x;
  return t;
}

// ============================================================ Task 3: the CPU oracle

// One token at position 1 of a hand-made table: row 1 holds cos = {0, 0.6}, sin = {1, 0.8}
// (a 90-degree turn for pair 0; cos^2 + sin^2 = 1 for pair 1). Head 4 = rot_dim, so 2 pairs.
OwnedTensor hand_table() {
  return f32({2, 4}, {1, 1, 0, 0,          // position 0: cos 1 1 | sin 0 0
                      0, 0.6f, 1, 0.8f});  // position 1: cos 0 0.6 | sin 1 0.8
}

TEST(Lab03_Task3_RotaryCpu, NeoxRotatesPairsOfHalvesByHandPickedAngles) {
  // neox pairs (0, 2) and (1, 3); x1' = x1 c - x2 s, x2' = x2 c + x1 s.
  //   q = [1 2 3 4]: pair 0 (1, 3), c 0, s 1 -> (-3, 1); pair 1 (2, 4), c .6, s .8 -> (-2, 4)
  //   k = [5 6 7 8]: pair 0 (5, 7) -> (-7, 5);          pair 1 (6, 8) -> (-2.8, 9.6)
  OwnedTensor q = f32({1, 1, 4}, {1, 2, 3, 4}), k = f32({1, 1, 4}, {5, 6, 7, 8});
  rotary_embedding(i64_tensor({1}), q, k, hand_table(), 4, /*is_neox=*/true);
  const Tolerance tol{1e-6, 1e-6};
  LAB_EXPECT_CLOSE(q.view(), f32({1, 1, 4}, {-3, -2, 1, 4}).view(), tol);
  LAB_EXPECT_CLOSE(k.view(), f32({1, 1, 4}, {-7, -2.8f, 5, 9.6f}).view(), tol);
}

TEST(Lab03_Task3_RotaryCpu, GptjRotatesNeighbouringPairsByHandPickedAngles) {
  // gptj pairs (0, 1) and (2, 3), the same cos/sin per pair index:
  //   q = [1 2 3 4]: pair 0 (1, 2) -> (-2, 1); pair 1 (3, 4) -> (1.8 - 3.2, 2.4 + 2.4)
  //   k = [5 6 7 8]: pair 0 (5, 6) -> (-6, 5); pair 1 (7, 8) -> (4.2 - 6.4, 4.8 + 5.6)
  OwnedTensor q = f32({1, 1, 4}, {1, 2, 3, 4}), k = f32({1, 1, 4}, {5, 6, 7, 8});
  rotary_embedding(i64_tensor({1}), q, k, hand_table(), 4, /*is_neox=*/false);
  const Tolerance tol{1e-6, 1e-6};
  LAB_EXPECT_CLOSE(q.view(), f32({1, 1, 4}, {-2, 1, -1.4f, 4.8f}).view(), tol);
  LAB_EXPECT_CLOSE(k.view(), f32({1, 1, 4}, {-6, 5, -2.2f, 10.4f}).view(), tol);
}

TEST(Lab03_Task3_RotaryCpu, PositionZeroIsTheIdentityInBothStyles) {
  // cos 0 = 1, sin 0 = 0: a token at position 0 comes out bit for bit as it went in.
  Rng rng(31);
  OwnedTensor cs = make_cos_sin_cache(16, 64, 10000, DType::bf16);
  for (bool neox : {true, false}) {
    OwnedTensor q = rng.normal_tensor({1, 4, 64}, DType::bf16, 0, 1);
    OwnedTensor k = rng.normal_tensor({1, 2, 64}, DType::bf16, 0, 1);
    OwnedTensor q0 = copy_of(q, Storage::host), k0 = copy_of(k, Storage::host);
    rotary_embedding(i64_tensor({0}), q, k, cs, 64, neox);
    EXPECT_TRUE(bitwise_equal(q, q0)) << (neox ? "neox" : "gptj") << " query";
    EXPECT_TRUE(bitwise_equal(k, k0)) << (neox ? "neox" : "gptj") << " key";
  }
}

// Bytes [rot_dim, head_size) of every head of every token, bit for bit as in `before`.
::testing::AssertionResult tail_untouched(const Tensor& after, const Tensor& before,
                                          int64_t rot_dim) {
  OwnedTensor a = to_host(after), b = to_host(before);
  const int64_t rows = a.numel() / a.sizes().back(), d = a.sizes().back();
  const size_t esz = dtype_size(a.dtype());
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    bad += std::memcmp(static_cast<const char*>(a.data()) + (r * d + rot_dim) * esz,
                       static_cast<const char*>(b.data()) + (r * d + rot_dim) * esz,
                       (d - rot_dim) * esz) != 0;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << rows << " head rows changed in "
         << "[rot_dim, head_size) = [" << rot_dim << ", " << d << "), which must not rotate";
}

TEST(Lab03_Task3_RotaryCpu, PartialRotaryRotatesOnlyTheFirstRotDimValues) {
  // head 64, rot_dim 24: values 24..63 of every head stay bit-identical, 0..23 rotate.
  Rng rng(32);
  OwnedTensor cs = make_cos_sin_cache(32, 24, 10000, DType::f16);
  for (bool neox : {true, false}) {
    OwnedTensor q = rng.normal_tensor({3, 2, 64}, DType::f16, 0, 1);
    OwnedTensor k = rng.normal_tensor({3, 1, 64}, DType::f16, 0, 1);
    OwnedTensor q0 = copy_of(q, Storage::host), k0 = copy_of(k, Storage::host);
    rotary_embedding(i64_tensor({5, 17, 31}), q, k, cs, 64, neox);
    EXPECT_TRUE(tail_untouched(q, q0, 24)) << (neox ? "neox" : "gptj") << " query";
    EXPECT_TRUE(tail_untouched(k, k0, 24)) << (neox ? "neox" : "gptj") << " key";
    EXPECT_FALSE(bitwise_equal(q, q0)) << "the first 24 values of query did not rotate";
  }
}

// The goldens: neox and gptj, 7 tokens of 4 query / 2 key heads x 64 (GQA 2:1), rot_dim 16 of
// head 48 (partial), and one token of 8 + 8 heads x 128 (neox).
constexpr const char* kRotaryGoldens[] = {
    "rotary_embedding_neox_gqa", "rotary_embedding_gptj_gqa", "rotary_embedding_neox_partial",
    "rotary_embedding_gptj_partial", "rotary_embedding_neox_single_token"};

void check_rotary_golden(const std::string& name, DType dt, Storage storage) {
  const lab03::Golden g = lab03::load_golden(name, dt);
  SCOPED_TRACE(g.name);
  OwnedTensor q = g.in("query").to(storage), k = g.in("key").to(storage);
  OwnedTensor pos = g.in("positions").to(storage), cs = g.in("cos_sin_cache").to(storage);
  const bool neox = g.attr("is_neox") == "true";
  lab03::StreamIfGpu s(storage);
  rotary_embedding(pos, q, k, cs, std::stoll(g.attr("head_size")), neox,
                   /*check_positions=*/true, s);
  s.synchronize();
  ASSERT_TRUE(lab03::wrote_something(
      {{"query", q, g.in("query"), g.out("query")}, {"key", k, g.in("key"), g.out("key")}}));
  LAB_EXPECT_CLOSE(q.view(), g.out("query").view(), lab03::golden_tolerance(dt));
  LAB_EXPECT_CLOSE(k.view(), g.out("key").view(), lab03::golden_tolerance(dt));
}

TEST(Lab03_Task3_RotaryCpu, MatchesPyTorchNeoxAndGptjWithGqaPartialRotaryAndOneToken) {
  for (DType dt : kDtypes)
    for (const char* name : kRotaryGoldens) check_rotary_golden(name, dt, Storage::host);
}

// ============================================================ Task 4: the kernel

TEST(Lab03_Task4_RotaryKernel, MatchesPyTorchNeoxAndGptjWithGqaPartialRotaryAndOneToken) {
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes)
    for (const char* name : kRotaryGoldens) check_rotary_golden(name, dt, Storage::device);
}

struct RopeCase {
  int64_t tokens, heads, kv_heads, head_size, rot_dim;
  bool qkv;  // query and key are column blocks of one [tokens, (heads + 2 kv) * head] buffer
};

// Your kernel vs your task 3 on the same random inputs; the unrotated tail of every head and the
// value columns of a qkv buffer must come out bit-identical.
void check_against_cpu(const RopeCase& c, DType dt, bool neox, uint64_t seed) {
  SCOPED_TRACE(detail::concat(dtype_name(dt), neox ? " neox" : " gptj", " tokens ", c.tokens,
                              " heads ", c.heads, "/", c.kv_heads, " head_size ", c.head_size,
                              " rot_dim ", c.rot_dim, c.qkv ? " (qkv views)" : ""));
  Rng rng(seed);
  const int64_t max_position = 300;
  OwnedTensor cs = make_cos_sin_cache(max_position, c.rot_dim, 10000, dt);
  std::vector<int64_t> p(c.tokens);
  for (auto& x : p) x = rng.randint(0, max_position - 1);
  p.back() = max_position - 1;  // the table's last row
  OwnedTensor pos = i64_tensor(p);
  const int64_t qd = c.heads * c.head_size, kd = c.kv_heads * c.head_size;
  const int64_t width = c.qkv ? qd + 2 * kd : qd + kd;
  OwnedTensor want = rng.normal_tensor({c.tokens, width}, dt, 0, 1);
  OwnedTensor before = copy_of(want, Storage::host), got = want.to(Storage::device);
  auto q_of = [&](const OwnedTensor& t, Device d) {
    return Tensor(t.data(), dt, {c.tokens, c.heads, c.head_size}, {width, c.head_size, 1}, d);
  };
  auto k_of = [&](const OwnedTensor& t, Device d) {
    return Tensor(static_cast<char*>(t.data()) + qd * dtype_size(dt), dt,
                  {c.tokens, c.kv_heads, c.head_size}, {width, c.head_size, 1}, d);
  };
  rotary_embedding(pos, q_of(want, Device::cpu), k_of(want, Device::cpu), cs, c.head_size, neox);
  OwnedTensor dpos = pos.to(Storage::device), dcs = cs.to(Storage::device);
  Stream s;
  rotary_embedding(dpos, q_of(got, Device::cuda), k_of(got, Device::cuda), dcs, c.head_size, neox,
                   /*check_positions=*/true, s);
  s.synchronize();
  ASSERT_TRUE(lab03::wrote_something({{"query and key", got, before, want}}));
  LAB_EXPECT_CLOSE(got.view(), want.view(), default_tolerance(dt));
  // Not rotated: [rot_dim, head_size) of every head, and the value columns of a qkv buffer.
  OwnedTensor g = to_host(got);
  const size_t esz = dtype_size(dt);
  int64_t bad = 0;
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t h = 0; h < c.heads + c.kv_heads; ++h) {
      const int64_t off = (t * width + h * c.head_size + c.rot_dim) * int64_t(esz);
      bad +=
          std::memcmp(static_cast<char*>(g.data()) + off, static_cast<char*>(before.data()) + off,
                      (c.head_size - c.rot_dim) * esz) != 0;
    }
    if (c.qkv) {
      const int64_t off = (t * width + qd + kd) * int64_t(esz);
      bad += std::memcmp(static_cast<char*>(g.data()) + off,
                         static_cast<char*>(before.data()) + off, kd * esz) != 0;
    }
  }
  EXPECT_EQ(bad, 0) << "rows changed outside the rotated dimensions (the tail of a head past "
                       "rot_dim, or the value columns of the qkv buffer)";
}

TEST(Lab03_Task4_RotaryKernel, MatchesYourCpuTaskOnRandomShapesBothStylesEveryDtype) {
  DAY18_REQUIRE_GPU();
  Rng shapes(41);
  uint64_t seed = 4100;
  for (DType dt : kDtypes)
    for (bool neox : {true, false})
      for (int rep = 0; rep < 3; ++rep) {
        const int64_t kv = shapes.randint(1, 4), group = shapes.randint(1, 4);
        const int64_t head = std::vector<int64_t>{64, 128, 256}[shapes.randint(0, 2)];
        check_against_cpu({shapes.randint(1, 200), kv * group, kv, head, head, rep == 2}, dt, neox,
                          ++seed);
      }
}

TEST(Lab03_Task4_RotaryKernel, PartialRotaryGqaOneTokenAndHeadsNoMultipleOf8) {
  DAY18_REQUIRE_GPU();
  uint64_t seed = 4200;
  for (DType dt : kDtypes)
    for (bool neox : {true, false}) {
      check_against_cpu({33, 8, 2, 128, 64, false}, dt, neox, ++seed);  // partial, GQA 4:1
      check_against_cpu({1, 32, 8, 128, 128, true}, dt, neox, ++seed);  // one token, qkv views
      check_against_cpu({17, 4, 4, 80, 80, false}, dt, neox, ++seed);   // head 80
      check_against_cpu({9, 2, 1, 36, 20, false}, dt, neox, ++seed);    // head 36, rot_dim 20
      check_against_cpu({5, 3, 3, 18, 18, false}, dt, neox, ++seed);    // odd rot_dim / 2
    }
}

TEST(Lab03_Task4_RotaryKernel, BadPositionIsCountedAndLeavesItsTokenUntouched) {
  DAY18_REQUIRE_GPU();
  // Token 1 sits at position 64 of a 64-row table: the kernel must leave it alone, count it with
  // record_bad_index, and rotate the other tokens; in checked mode the op then throws naming it.
  Rng rng(43);
  OwnedTensor cs = make_cos_sin_cache(64, 128, 10000, DType::f16);
  OwnedTensor q = rng.normal_tensor({3, 4, 128}, DType::f16, 0, 1);
  OwnedTensor k = rng.normal_tensor({3, 2, 128}, DType::f16, 0, 1);
  OwnedTensor q0 = copy_of(q, Storage::host), k0 = copy_of(k, Storage::host);
  OwnedTensor want_q = copy_of(q, Storage::host), want_k = copy_of(k, Storage::host);
  // Expected: tokens 0 and 2 rotated (by your task 3), token 1 as it was.
  rotary_embedding(i64_tensor({3, 0, 7}), want_q, want_k, cs, 128, true);
  const size_t qrow = 4 * 128 * 2, krow = 2 * 128 * 2;
  std::memcpy(static_cast<char*>(want_q.data()) + qrow, static_cast<char*>(q0.data()) + qrow, qrow);
  std::memcpy(static_cast<char*>(want_k.data()) + krow, static_cast<char*>(k0.data()) + krow, krow);
  OwnedTensor dq = q.to(Storage::device), dk = k.to(Storage::device);
  OwnedTensor dpos = i64_tensor({3, 64, 7}).to(Storage::device), dcs = cs.to(Storage::device);
  std::string message;
  Stream s;
  try {
    rotary_embedding(dpos, dq, dk, dcs, 128, true, /*check_positions=*/true, s);
  } catch (const InvalidArgument& e) {
    message = e.what();
  }
  s.synchronize();
  ASSERT_TRUE(lab03::wrote_something({{"query", dq, q0, want_q}, {"key", dk, k0, want_k}}));
  EXPECT_NE(message.find("positions[1] = 64"), std::string::npos)
      << "the op should have thrown naming positions[1] (your kernel did not count the bad "
         "position with record_bad_index?); got: '"
      << message << "'";
  LAB_EXPECT_CLOSE(dq.view(), want_q.view(), default_tolerance(DType::f16));
  LAB_EXPECT_CLOSE(dk.view(), want_k.view(), default_tolerance(DType::f16));
  OwnedTensor got_q = to_host(dq);
  EXPECT_EQ(std::memcmp(static_cast<char*>(got_q.data()) + qrow,
                        static_cast<char*>(q0.data()) + qrow, qrow),
            0)
      << "token 1 (position 64, outside the table) was modified";
}

// Timing, under scripts/lab check on a GPU: Llama-3-8B's attention heads (32 query + 8 kv heads
// x 128, neox, fp16) as views into the fused qkv output, 256 and 4096 tokens. Bytes: query and
// key read and written once, positions, and each distinct cos/sin row read once.
void time_rotary(int64_t tokens) {
  Rng rng(44);
  const int64_t heads = 32, kv = 8, head = 128, max_position = 8192;
  const int64_t width = (heads + 2 * kv) * head;
  OwnedTensor qkv = rng.normal_tensor({tokens, width}, DType::f16, 0, 1, Storage::device);
  const Tensor q(qkv.data(), DType::f16, {tokens, heads, head}, {width, head, 1}, Device::cuda);
  const Tensor k(static_cast<char*>(qkv.data()) + heads * head * 2, DType::f16, {tokens, kv, head},
                 {width, head, 1}, Device::cuda);
  std::vector<int64_t> p(tokens);
  for (auto& x : p) x = rng.randint(0, max_position - 1);
  const std::set<int64_t> rows(p.begin(), p.end());
  OwnedTensor pos = i64_tensor(p).to(Storage::device);
  OwnedTensor cs = make_cos_sin_cache(max_position, head, 500000.0, DType::f16, Storage::device);
  const double qk_bytes = double(tokens * (heads + kv) * head * 2);
  const double bytes = 2.0 * qk_bytes + double(pos.nbytes()) + double(rows.size() * head * 2);
  Stream s;
  lab::time_and_record(
      detail::concat("rotary_neox_t", tokens, "_q32_kv8_d128_f16"), bytes,
      [&](cudaStream_t st) { rotary_embedding(pos, q, k, cs, head, true, false, st); }, s);
}

TEST(Lab03_Task4_RotaryKernel, TimingFor256And4096TokensOfLlama8bHeads) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  time_rotary(256);
  time_rotary(4096);
}

}  // namespace
}  // namespace day18
