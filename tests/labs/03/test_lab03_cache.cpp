// Lab 03, tasks 1-2: reshape_and_cache, the write of this step's K and V into the paged cache.
//
// A copy: every comparison is bit-exact over the WHOLE cache (slots nobody writes must keep
// their bytes). The caches live inside guard zones (lab03::Guarded): a token sent to the wrong
// block lands in a guard and is reported, instead of corrupting the test's memory.
//   Task 1 (CPU): a hand-made case, the PyTorch goldens (block sizes 8/16/32, head 36), padding
//                 slots, strided key/value views, one token into the last slot.
//   Task 2 (GPU): the goldens again, then your kernel against your task 1 on random shapes (every
//                 dtype, block sizes 8/16/32, odd heads, qkv views, many tokens, wide rows), a bad
//                 slot, and the timing.
#include <numeric>

#include "engine/ops/cache.h"
#include "tests/labs/03/lab03.h"

namespace day18 {
namespace {

using lab03::Guarded;
using lab03::i64_tensor;
using testing::bitwise_equal;
using testing::to_host;

constexpr auto& kDtypes = testing::kAllFloatDtypes;

// Guard zones for a cache [blocks, heads, block_size, head_size]: one block in front; behind it,
// as far as a slot could be sent with block and offset swapped (block_size^2 rows per head).
int64_t guard_after(int64_t heads, int64_t block_size, int64_t head_size) {
  return (block_size + 1) * block_size * heads * head_size;
}
Guarded guarded_cache(const std::vector<int64_t>& shape, DType dt, Storage s, uint64_t seed) {
  const int64_t block = shape[1] * shape[2] * shape[3];
  return Guarded(shape, dt, s, block, guard_after(shape[1], shape[2], shape[3]), seed);
}

// Both caches' guard zones bit for bit as they were (EXPECTs); returns whether they are.
bool guards_intact(const Guarded& kc, const Guarded& vc) {
  const ::testing::AssertionResult k = kc.guards_intact(), v = vc.guards_intact();
  if (!k) ADD_FAILURE() << "key_cache: " << k.message();
  if (!v) ADD_FAILURE() << "value_cache: " << v.message();
  return k && v;
}

// Distinct ids from [0, n), in random order.
std::vector<int64_t> distinct(Rng& rng, int64_t n, int64_t count) {
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = 0; i < count; ++i) std::swap(ids[i], ids[rng.randint(i, n - 1)]);
  ids.resize(count);
  return ids;
}

// The cache layout spelled out once, for the expected results of the hand-built cases: token t's
// row of head h (key[t, h, :], any token stride) goes to cache[slot / bs, h, slot % bs, :].
void write_expected(const Tensor& cache, const Tensor& rows, const std::vector<int64_t>& slots) {
  const int64_t heads = cache.size(1), bs = cache.size(2), d = cache.size(3);
  const size_t esz = dtype_size(cache.dtype());
  for (size_t t = 0; t < slots.size(); ++t) {
    if (slots[t] == -1) continue;
    for (int64_t h = 0; h < heads; ++h)
      std::memcpy(static_cast<char*>(cache.data()) +
                      (((slots[t] / bs) * heads + h) * bs + slots[t] % bs) * d * esz,
                  static_cast<const char*>(rows.data()) +
                      (int64_t(t) * rows.stride(0) + h * rows.stride(1)) * esz,
                  d * esz);
  }
}

// ============================================================ Task 1: the CPU oracle

TEST(Lab03_Task1_CacheCpu, WritesEachTokenIntoItsSlotHandCase) {
  // 3 tokens, 2 kv heads of 4 values, block_size 2, 3 blocks (6 slots). key[t][h][d] =
  // 100t + 10h + d + 1, value = -key. Slots {5, -1, 0}: token 0 -> block 2 offset 1, token 1 is
  // padding, token 2 -> block 0 offset 0. Everything else stays 0.
  OwnedTensor key({3, 2, 4}, DType::f32, Storage::host),
      value({3, 2, 4}, DType::f32, Storage::host);
  for (int t = 0; t < 3; ++t)
    for (int h = 0; h < 2; ++h)
      for (int d = 0; d < 4; ++d) {
        key.ptr<float>()[(t * 2 + h) * 4 + d] = float(100 * t + 10 * h + d + 1);
        value.ptr<float>()[(t * 2 + h) * 4 + d] = -float(100 * t + 10 * h + d + 1);
      }
  OwnedTensor zeros({3, 2, 2, 4}, DType::f32, Storage::host);
  std::memset(zeros.data(), 0, zeros.nbytes());
  Guarded kc = guarded_cache({3, 2, 2, 4}, DType::f32, Storage::host, 1);
  Guarded vc = guarded_cache({3, 2, 2, 4}, DType::f32, Storage::host, 2);
  kc.set(zeros);
  vc.set(zeros);
  reshape_and_cache(key, value, kc, vc, i64_tensor({5, -1, 0}));

  // key_cache[b][h][o][d] sits at ((b * 2 + h) * 2 + o) * 4 + d.
  OwnedTensor want_k({3, 2, 2, 4}, DType::f32, Storage::host);
  OwnedTensor want_v({3, 2, 2, 4}, DType::f32, Storage::host);
  std::memset(want_k.data(), 0, want_k.nbytes());
  std::memset(want_v.data(), 0, want_v.nbytes());
  for (int h = 0; h < 2; ++h)
    for (int d = 0; d < 4; ++d) {
      want_k.ptr<float>()[((2 * 2 + h) * 2 + 1) * 4 + d] = float(10 * h + d + 1);        // token 0
      want_k.ptr<float>()[((0 * 2 + h) * 2 + 0) * 4 + d] = float(200 + 10 * h + d + 1);  // token 2
      want_v.ptr<float>()[((2 * 2 + h) * 2 + 1) * 4 + d] = -float(10 * h + d + 1);
      want_v.ptr<float>()[((0 * 2 + h) * 2 + 0) * 4 + d] = -float(200 + 10 * h + d + 1);
    }
  // e.g. key_cache[2][1][1][3] (flat 47) = key[0][1][3] = 14; key_cache[0][1][0][0] (flat 8) = 211.
  EXPECT_EQ(host_get(kc.view(), 47), 14.0);
  EXPECT_EQ(host_get(kc.view(), 8), 211.0);
  LAB_EXPECT_CLOSE(kc.view(), want_k.view(), Tolerance{});
  LAB_EXPECT_CLOSE(vc.view(), want_v.view(), Tolerance{});
  guards_intact(kc, vc);
}

// The goldens: 13 tokens (3 of them padding) of 2 heads x 16 into 3 blocks of 8, 16 or 32 slots,
// and 5 tokens of 3 heads x 36 (a head size that is no multiple of 8) into block size 8.
constexpr const char* kCacheGoldens[] = {"reshape_and_cache_bs8", "reshape_and_cache_bs16",
                                         "reshape_and_cache_bs32", "reshape_and_cache_oddhead"};

void check_cache_golden(const std::string& name, DType dt, Storage storage) {
  const lab03::Golden g = lab03::load_golden(name, dt);
  SCOPED_TRACE(g.name);
  const Tensor& kc0 = g.in("key_cache");
  Guarded kc = guarded_cache(kc0.sizes(), dt, storage, 3);
  Guarded vc = guarded_cache(kc0.sizes(), dt, storage, 4);
  kc.set(kc0);
  vc.set(g.in("value_cache"));
  OwnedTensor key = g.in("key").to(storage), value = g.in("value").to(storage);
  OwnedTensor slots = g.in("slot_mapping").to(storage);
  lab03::StreamIfGpu s(storage);
  reshape_and_cache(key, value, kc, vc, slots, /*check_slots=*/true, s);
  s.synchronize();
  // Guards first: a kernel whose writes all went outside the caches did write something.
  if (guards_intact(kc, vc))
    ASSERT_TRUE(
        lab03::wrote_something({{"key_cache", kc, kc0, g.out("key_cache")},
                                {"value_cache", vc, g.in("value_cache"), g.out("value_cache")}}));
  LAB_EXPECT_CLOSE(kc.view(), g.out("key_cache").view(), Tolerance{});
  LAB_EXPECT_CLOSE(vc.view(), g.out("value_cache").view(), Tolerance{});
}

TEST(Lab03_Task1_CacheCpu, MatchesPyTorchForBlockSizes8_16_32AndHead36) {
  for (DType dt : kDtypes)
    for (const char* name : kCacheGoldens) check_cache_golden(name, dt, Storage::host);
}

TEST(Lab03_Task1_CacheCpu, PaddingSlotMinusOneLeavesTheCacheBitwiseUntouched) {
  // Six tokens, five of them padding: only slot 3's rows may change, every other byte of both
  // caches must keep its random value.
  Rng rng(11);
  OwnedTensor key = rng.normal_tensor({6, 2, 8}, DType::f16, 0, 1);
  OwnedTensor value = rng.normal_tensor({6, 2, 8}, DType::f16, 0, 1);
  const std::vector<int64_t> slots = {-1, -1, 3, -1, -1, -1};
  Guarded kc = guarded_cache({2, 2, 4, 8}, DType::f16, Storage::host, 5);
  Guarded vc = guarded_cache({2, 2, 4, 8}, DType::f16, Storage::host, 6);
  OwnedTensor want_k = to_host(kc), want_v = to_host(vc);
  write_expected(want_k, key, slots);
  write_expected(want_v, value, slots);
  reshape_and_cache(key, value, kc, vc, i64_tensor(slots));
  EXPECT_TRUE(bitwise_equal(kc, want_k)) << "key_cache";
  EXPECT_TRUE(bitwise_equal(vc, want_v)) << "value_cache";
  guards_intact(kc, vc);
}

TEST(Lab03_Task1_CacheCpu, ReadsKeyAndValueThroughTheirTokenStride) {
  // The model passes key and value as column blocks of the fused qkv output: token t's K row
  // starts at t * (4 + 2 + 2) heads * 16 values, not at t * 2 * 16.
  Rng rng(12);
  const int64_t tokens = 5, q_heads = 4, kv = 2, d = 16, width = (q_heads + 2 * kv) * d;
  OwnedTensor qkv = rng.normal_tensor({tokens, width}, DType::bf16, 0, 1);
  auto block = [&](int64_t first_head) {
    return Tensor(static_cast<char*>(qkv.data()) + first_head * d * 2, DType::bf16, {tokens, kv, d},
                  {width, d, 1}, Device::cpu);
  };
  const Tensor key = block(q_heads), value = block(q_heads + kv);
  const std::vector<int64_t> slots = {9, 2, -1, 14, 0};
  Guarded kc = guarded_cache({4, kv, 4, d}, DType::bf16, Storage::host, 7);
  Guarded vc = guarded_cache({4, kv, 4, d}, DType::bf16, Storage::host, 8);
  OwnedTensor want_k = to_host(kc), want_v = to_host(vc);
  write_expected(want_k, key, slots);
  write_expected(want_v, value, slots);
  reshape_and_cache(key, value, kc, vc, i64_tensor(slots));
  EXPECT_TRUE(bitwise_equal(kc, want_k)) << "key_cache";
  EXPECT_TRUE(bitwise_equal(vc, want_v)) << "value_cache";
  guards_intact(kc, vc);
}

TEST(Lab03_Task1_CacheCpu, OneTokenOfEightHeadsGoesToTheLastSlotOfTheCache) {
  // Slot 63 of 4 blocks x 16: block 3, offset 15, the very last row of every head's block.
  Rng rng(13);
  OwnedTensor key = rng.normal_tensor({1, 8, 128}, DType::bf16, 0, 1);
  OwnedTensor value = rng.normal_tensor({1, 8, 128}, DType::bf16, 0, 1);
  Guarded kc = guarded_cache({4, 8, 16, 128}, DType::bf16, Storage::host, 9);
  Guarded vc = guarded_cache({4, 8, 16, 128}, DType::bf16, Storage::host, 10);
  OwnedTensor want_k = to_host(kc), want_v = to_host(vc);
  write_expected(want_k, key, {63});
  write_expected(want_v, value, {63});
  reshape_and_cache(key, value, kc, vc, i64_tensor({63}));
  EXPECT_TRUE(bitwise_equal(kc, want_k)) << "key_cache";
  EXPECT_TRUE(bitwise_equal(vc, want_v)) << "value_cache";
  guards_intact(kc, vc);
}

// ============================================================ Task 2: the kernel

TEST(Lab03_Task2_CacheKernel, MatchesPyTorchForBlockSizes8_16_32AndHead36EveryDtype) {
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes)
    for (const char* name : kCacheGoldens) check_cache_golden(name, dt, Storage::device);
}

struct CacheCase {
  int64_t tokens, heads, head_size, block_size, blocks;
  int64_t extra_stride;  // > 0: key and value are views into a wider qkv-like buffer
};

// Your kernel vs your task 1 on the same random inputs. Both caches start poisoned (NaN): a slot
// nobody writes must still hold the poison bits, and a kernel that writes nothing is reported as
// not implemented. Every 5th token is padding; token 0 takes the last slot of the cache.
void check_against_cpu(const CacheCase& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(detail::concat(dtype_name(dt), " tokens ", c.tokens, " heads ", c.heads,
                              " head_size ", c.head_size, " block_size ", c.block_size, " blocks ",
                              c.blocks, c.extra_stride ? " (strided views)" : ""));
  Rng rng(seed);
  const int64_t row = c.heads * c.head_size, stride = row + c.extra_stride;
  OwnedTensor kw = rng.normal_tensor({c.tokens, stride}, dt, 0, 1);
  OwnedTensor vw = rng.normal_tensor({c.tokens, stride}, dt, 0, 1);
  OwnedTensor kw_d = kw.to(Storage::device), vw_d = vw.to(Storage::device);
  auto rows = [&](const OwnedTensor& w, Device d) {
    return Tensor(w.data(), dt, {c.tokens, c.heads, c.head_size}, {stride, c.head_size, 1}, d);
  };
  const int64_t num_slots = c.blocks * c.block_size;
  std::vector<int64_t> s = distinct(rng, num_slots, c.tokens);
  for (int64_t t = 4; t < c.tokens; t += 5) s[t] = -1;
  s[0] = num_slots - 1;
  for (int64_t t = 1; t < c.tokens; ++t)
    if (s[t] == num_slots - 1) s[t] = -1;  // keep the slots distinct
  OwnedTensor slots = i64_tensor(s), slots_d = slots.to(Storage::device);

  const std::vector<int64_t> shape = {c.blocks, c.heads, c.block_size, c.head_size};
  OwnedTensor want_k(shape, dt, Storage::host), want_v(shape, dt, Storage::host);
  poison(want_k);
  poison(want_v);
  reshape_and_cache(rows(kw, Device::cpu), rows(vw, Device::cpu), want_k, want_v, slots);

  Guarded kc = guarded_cache(shape, dt, Storage::device, seed + 1);
  Guarded vc = guarded_cache(shape, dt, Storage::device, seed + 2);
  Stream stream;
  poison(kc, stream);  // on the op's stream: a non-blocking stream does not wait for stream 0
  poison(vc, stream);
  reshape_and_cache(rows(kw_d, Device::cuda), rows(vw_d, Device::cuda), kc, vc, slots_d,
                    /*check_slots=*/true, stream);
  stream.synchronize();
  if (!guards_intact(kc, vc)) return;  // (a cache written only outside would read as unwritten)
  LAB_EXPECT_CLOSE(kc.view(), want_k.view(), Tolerance{});
  LAB_EXPECT_CLOSE(vc.view(), want_v.view(), Tolerance{});
}

TEST(Lab03_Task2_CacheKernel, MatchesYourCpuTaskOnRandomShapesEveryDtypeAndBlockSize) {
  DAY18_REQUIRE_GPU();
  Rng shapes(21);
  uint64_t seed = 2100;
  for (DType dt : kDtypes)
    for (int64_t bs : {8, 16, 32})
      for (int rep = 0; rep < 2; ++rep) {
        const int64_t heads = shapes.randint(1, 8);
        const int64_t head = std::vector<int64_t>{36, 64, 80, 128, 256}[shapes.randint(0, 4)];
        const int64_t tokens = shapes.randint(2, 300);
        const int64_t blocks = (tokens + bs - 1) / bs + shapes.randint(1, 6);
        check_against_cpu({tokens, heads, head, bs, blocks, rep == 1 ? 3 * heads * head : 0}, dt,
                          ++seed);
      }
}

TEST(Lab03_Task2_CacheKernel, OneTokenAndHeadSize36AndStridedViews) {
  DAY18_REQUIRE_GPU();
  uint64_t seed = 2200;
  for (DType dt : kDtypes) {
    check_against_cpu({1, 8, 128, 16, 1, 0}, dt, ++seed);             // one decode token
    check_against_cpu({19, 3, 36, 8, 6, 0}, dt, ++seed);              // rows of 72 bytes (fp16)
    check_against_cpu({37, 4, 128, 16, 8, 3 * 4 * 128}, dt, ++seed);  // qkv column views
    check_against_cpu({21, 2, 64, 16, 4, 6}, dt, ++seed);             // token stride not 16 B
  }
}

TEST(Lab03_Task2_CacheKernel, ManyTokensNeedSeveralGridStridePasses) {
  DAY18_REQUIRE_GPU();
  // One head of 16 values: a warp per CUDA block, and the launcher's grid (one resident wave,
  // 4 tokens per block per pass) covers ~17k tokens per pass on an H100/H200: 40000 need three.
  uint64_t seed = 2300;
  for (DType dt : kDtypes) check_against_cpu({40000, 1, 16, 16, 2600, 0}, dt, ++seed);
}

TEST(Lab03_Task2_CacheKernel, RowsWiderThanTheBlockLoopOverChunks) {
  DAY18_REQUIRE_GPU();
  // 16 heads x 256 fp32 = 1024 chunks of 16 bytes per token, the launcher gives 512 threads;
  // 30 heads x 36 fp16 = 1080 chunks of 2 bytes. Each thread must take several chunks.
  check_against_cpu({40, 16, 256, 16, 4, 0}, DType::f32, 2401);
  check_against_cpu({30, 30, 36, 8, 5, 0}, DType::f16, 2402);
}

TEST(Lab03_Task2_CacheKernel, PaddingSlotsLeaveTheCacheBitwiseUntouched) {
  DAY18_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    Rng rng(25);
    OwnedTensor key = rng.normal_tensor({64, 4, 64}, dt, 0, 1);
    OwnedTensor value = rng.normal_tensor({64, 4, 64}, dt, 0, 1);
    std::vector<int64_t> slots(64, -1);
    for (int64_t t = 0; t < 64; t += 3) slots[t] = 2 * t + 1;  // odd slots, most tokens padding
    Guarded kc = guarded_cache({16, 4, 16, 64}, dt, Storage::device, 26);
    Guarded vc = guarded_cache({16, 4, 16, 64}, dt, Storage::device, 27);
    OwnedTensor k0 = to_host(kc), v0 = to_host(vc);
    OwnedTensor want_k = to_host(kc), want_v = to_host(vc);
    write_expected(want_k, key, slots);
    write_expected(want_v, value, slots);
    OwnedTensor dkey = key.to(Storage::device), dvalue = value.to(Storage::device);
    OwnedTensor dslots = i64_tensor(slots).to(Storage::device);
    Stream s;
    reshape_and_cache(dkey, dvalue, kc, vc, dslots, /*check_slots=*/true, s);
    s.synchronize();
    if (guards_intact(kc, vc))  // first: writes outside the caches are writes too
      ASSERT_TRUE(
          lab03::wrote_something({{"key_cache", kc, k0, want_k}, {"value_cache", vc, v0, want_v}}));
    EXPECT_TRUE(bitwise_equal(kc, want_k)) << "key_cache";
    EXPECT_TRUE(bitwise_equal(vc, want_v)) << "value_cache";
  }
}

TEST(Lab03_Task2_CacheKernel, BadSlotIsCountedAndWritesNothing) {
  DAY18_REQUIRE_GPU();
  // A kernel cannot throw: it must skip slot 999999 (outside the 32 slots), count it with
  // record_bad_index, and write the other tokens. In checked mode the op then throws naming it.
  Rng rng(28);
  OwnedTensor key = rng.normal_tensor({4, 2, 32}, DType::f16, 0, 1);
  OwnedTensor value = rng.normal_tensor({4, 2, 32}, DType::f16, 0, 1);
  const std::vector<int64_t> slots = {3, 999999, -1, 5};
  Guarded kc = guarded_cache({2, 2, 16, 32}, DType::f16, Storage::device, 29);
  Guarded vc = guarded_cache({2, 2, 16, 32}, DType::f16, Storage::device, 30);
  OwnedTensor k0 = to_host(kc), v0 = to_host(vc);
  OwnedTensor want_k = to_host(kc), want_v = to_host(vc);
  write_expected(want_k, key, {3, -1, -1, 5});
  write_expected(want_v, value, {3, -1, -1, 5});
  OwnedTensor dkey = key.to(Storage::device), dvalue = value.to(Storage::device);
  OwnedTensor dslots = i64_tensor(slots).to(Storage::device);
  std::string message;
  Stream s;
  try {
    reshape_and_cache(dkey, dvalue, kc, vc, dslots, /*check_slots=*/true, s);
  } catch (const InvalidArgument& e) {
    message = e.what();
  }
  s.synchronize();
  if (guards_intact(kc, vc))  // first: writes outside the caches are writes too
    ASSERT_TRUE(
        lab03::wrote_something({{"key_cache", kc, k0, want_k}, {"value_cache", vc, v0, want_v}}));
  EXPECT_NE(message.find("slot_mapping[1] = 999999"), std::string::npos)
      << "the op should have thrown naming slot_mapping[1] (your kernel did not count the bad "
         "slot with record_bad_index?); got: '"
      << message << "'";
  EXPECT_TRUE(bitwise_equal(kc, want_k)) << "key_cache";
  EXPECT_TRUE(bitwise_equal(vc, want_v)) << "value_cache";
}

// Timing, under scripts/lab check on a GPU: Llama-3-8B's KV shape (8 kv heads x 128, fp16), a
// decode-sized batch of 256 tokens and a 4096-token prefill chunk, block size 16. Bytes: K and V
// read and written once each, plus slot_mapping.
void time_cache(int64_t tokens) {
  Rng rng(31);
  const int64_t heads = 8, head = 128, bs = 16, blocks = (tokens + bs - 1) / bs + 16;
  OwnedTensor key = rng.normal_tensor({tokens, heads, head}, DType::f16, 0, 1, Storage::device);
  OwnedTensor value = rng.normal_tensor({tokens, heads, head}, DType::f16, 0, 1, Storage::device);
  OwnedTensor kc({blocks, heads, bs, head}, DType::f16, Storage::device);
  OwnedTensor vc({blocks, heads, bs, head}, DType::f16, Storage::device);
  OwnedTensor slots = i64_tensor(distinct(rng, blocks * bs, tokens)).to(Storage::device);
  const double bytes = 4.0 * double(key.nbytes()) + double(slots.nbytes());
  Stream s;
  lab::time_and_record(
      detail::concat("reshape_and_cache_t", tokens, "_kv8_d128_f16"), bytes,
      [&](cudaStream_t st) { reshape_and_cache(key, value, kc, vc, slots, false, st); }, s);
}

TEST(Lab03_Task2_CacheKernel, TimingFor256And4096TokensOf8KvHeadsBy128) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  time_cache(256);
  time_cache(4096);
}

}  // namespace
}  // namespace day18
