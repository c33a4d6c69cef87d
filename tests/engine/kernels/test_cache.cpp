// KV-cache ops: reshape_and_cache, copy_blocks, swap_blocks (batched and the naive trap).
//
// These ops only move bytes, so results are compared BIT-EXACTLY over the WHOLE cache: the CUDA
// cache and the oracle's cache start from the same contents (random, or poisoned with NaN so an
// untouched slot must still hold the poison bits afterwards), and every byte must agree.
#include <cstring>
#include <numeric>

#include "engine/cpu/cache.h"
#include "engine/ops/cache.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

using testing::bitwise_equal;
using testing::copy_of;
using testing::to_host;

constexpr auto& kDtypes = testing::kAllFloatDtypes;

OwnedTensor i64_tensor(const std::vector<int64_t>& v, std::vector<int64_t> shape,
                       Storage storage = Storage::host) {
  OwnedTensor h(shape, DType::i64, Storage::host);
  std::copy(v.begin(), v.end(), h.ptr<int64_t>());
  return storage == Storage::host ? std::move(h) : h.to(storage);
}

std::vector<int64_t> distinct(Rng& rng, int64_t n, int64_t count) {
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = 0; i < count; ++i) std::swap(ids[i], ids[rng.randint(i, n - 1)]);
  ids.resize(count);
  return ids;
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

// ============================================================ reshape_and_cache, CPU
TEST(ReshapeAndCache, CpuOracleWritesEachTokenIntoItsSlotHandCase) {
  // 2 blocks x 1 head x block_size 2 x head_size 2: slots 0..3. Tokens -> slots 3, skip, 0.
  OwnedTensor key({3, 1, 2}, DType::f32, Storage::host),
      value({3, 1, 2}, DType::f32, Storage::host);
  const float k[] = {1, 2, 3, 4, 5, 6}, v[] = {-1, -2, -3, -4, -5, -6};
  std::memcpy(key.data(), k, sizeof(k));
  std::memcpy(value.data(), v, sizeof(v));
  OwnedTensor kc({2, 1, 2, 2}, DType::f32, Storage::host),
      vc({2, 1, 2, 2}, DType::f32, Storage::host);
  for (int i = 0; i < 8; ++i) kc.ptr<float>()[i] = vc.ptr<float>()[i] = 100 + i;
  OwnedTensor slots = i64_tensor({3, -1, 0}, {3});
  reshape_and_cache(key, value, kc, vc, slots);
  const float want_k[] = {5, 6, 102, 103, 104, 105, 1, 2};
  const float want_v[] = {-5, -6, 102, 103, 104, 105, -1, -2};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(kc.ptr<float>()[i], want_k[i]) << "key_cache[" << i << "]";
    EXPECT_EQ(vc.ptr<float>()[i], want_v[i]) << "value_cache[" << i << "]";
  }
}

TEST(ReshapeAndCache, CpuOracleLayoutIsBlocksHeadsSlotsHeadSize) {
  // Independent element-wise check of the layout on 2 heads, block_size 4.
  Rng rng(3);
  const int64_t T = 5, H = 2, D = 3, bs = 4, nb = 3;
  OwnedTensor key = rng.normal_tensor({T, H, D}, DType::f32, 0, 1);
  OwnedTensor value = rng.normal_tensor({T, H, D}, DType::f32, 0, 1);
  OwnedTensor kc = rng.normal_tensor({nb, H, bs, D}, DType::f32, 0, 1);
  OwnedTensor vc = rng.normal_tensor({nb, H, bs, D}, DType::f32, 0, 1);
  const std::vector<int64_t> s = {11, 0, -1, 5, 6};
  OwnedTensor slots = i64_tensor(s, {T});
  reshape_and_cache(key, value, kc, vc, slots);
  for (int64_t t = 0; t < T; ++t) {
    if (s[t] < 0) continue;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t ci = ((s[t] / bs * H + h) * bs + s[t] % bs) * D + d;
        EXPECT_EQ(host_get(kc, ci), host_get(key, (t * H + h) * D + d));
        EXPECT_EQ(host_get(vc, ci), host_get(value, (t * H + h) * D + d));
      }
  }
}

TEST(ReshapeAndCache, CpuOutOfRangeSlotThrowsNamingTokenAndValueAndWritesNothing) {
  Rng rng(4);
  OwnedTensor key = rng.normal_tensor({3, 2, 8}, DType::f16, 0, 1);
  OwnedTensor value = rng.normal_tensor({3, 2, 8}, DType::f16, 0, 1);
  OwnedTensor kc = rng.normal_tensor({2, 2, 4, 8}, DType::f16, 0, 1);
  OwnedTensor vc = rng.normal_tensor({2, 2, 4, 8}, DType::f16, 0, 1);
  OwnedTensor before = copy_of(kc, Storage::host);
  OwnedTensor slots = i64_tensor({1, 8, 2}, {3});  // 8 slots: [0, 8)
  expect_invalid([&] { reshape_and_cache(key, value, kc, vc, slots); },
                 {"slot_mapping[1]", "= 8", "out of range"});
  EXPECT_TRUE(bitwise_equal(kc, before));
  OwnedTensor negative = i64_tensor({1, -2, 2}, {3});
  expect_invalid([&] { reshape_and_cache(key, value, kc, vc, negative); },
                 {"slot_mapping[1]", "= -2"});
}

TEST(ReshapeAndCache, RejectsBadArguments) {
  Rng rng(5);
  OwnedTensor key = rng.normal_tensor({4, 2, 8}, DType::f16, 0, 1);
  OwnedTensor value = rng.normal_tensor({4, 2, 8}, DType::f16, 0, 1);
  OwnedTensor kc = rng.normal_tensor({2, 2, 4, 8}, DType::f16, 0, 1);
  OwnedTensor vc = rng.normal_tensor({2, 2, 4, 8}, DType::f16, 0, 1);
  OwnedTensor slots = i64_tensor({0, 1, 2, 3}, {4});
  OwnedTensor slots32({4}, DType::i32, Storage::host);
  OwnedTensor short_slots = i64_tensor({0, 1, 2}, {3});
  OwnedTensor value32 = rng.normal_tensor({4, 2, 8}, DType::f32, 0, 1);
  OwnedTensor value_bad = rng.normal_tensor({4, 2, 4}, DType::f16, 0, 1);
  OwnedTensor kc_heads = rng.normal_tensor({2, 3, 4, 8}, DType::f16, 0, 1);
  OwnedTensor vc_blocks = rng.normal_tensor({3, 2, 4, 8}, DType::f16, 0, 1);
  OwnedTensor kc_i32({2, 2, 4, 8}, DType::i32, Storage::host);
  expect_invalid([&] { reshape_and_cache(key, value, kc, vc, slots32); }, {"slot_mapping"});
  expect_invalid([&] { reshape_and_cache(key, value, kc, vc, short_slots); }, {"slot_mapping"});
  expect_invalid([&] { reshape_and_cache(key, value32, kc, vc, slots); }, {"value"});
  expect_invalid([&] { reshape_and_cache(key, value_bad, kc, vc, slots); }, {"value"});
  expect_invalid([&] { reshape_and_cache(key, value, kc_heads, vc, slots); }, {"key_cache"});
  expect_invalid([&] { reshape_and_cache(key, value, kc, vc_blocks, slots); }, {"value_cache"});
  expect_invalid([&] { reshape_and_cache(key, value, kc_i32, vc, slots); }, {"key_cache"});
  // A key view whose heads are not contiguous (every other head of a wider tensor).
  OwnedTensor wide = rng.normal_tensor({4, 4, 8}, DType::f16, 0, 1);
  Tensor strided(wide.data(), DType::f16, {4, 2, 8}, {32, 16, 1}, Device::cpu);
  expect_invalid([&] { reshape_and_cache(strided, value, kc, vc, slots); }, {"key", "contiguous"});
}

// ============================================================ reshape_and_cache, GPU
struct RacShape {
  int64_t tokens, heads, head_size, block_size, blocks;
  int64_t
      key_stride_extra;  // >0: key/value are views into a wider [tokens, ...] tensor (fused qkv)
};

void run_reshape_and_cache_case(const RacShape& sh, DType dt, bool poisoned_cache, uint64_t seed) {
  SCOPED_TRACE(detail::concat("tokens ", sh.tokens, " heads ", sh.heads, " head_size ",
                              sh.head_size, " block_size ", sh.block_size, " blocks ", sh.blocks,
                              " stride+ ", sh.key_stride_extra, " ", dtype_name(dt),
                              poisoned_cache ? " poisoned" : " random"));
  Rng rng(seed);
  const int64_t row = sh.heads * sh.head_size, stride = row + sh.key_stride_extra;
  // Wide host tensors holding key and value rows at a token stride of `stride`.
  OwnedTensor kw = rng.normal_tensor({sh.tokens, stride}, dt, 0, 1);
  OwnedTensor vw = rng.normal_tensor({sh.tokens, stride}, dt, 0, 1);
  OwnedTensor kw_d = kw.to(Storage::device), vw_d = vw.to(Storage::device);
  auto view = [&](const OwnedTensor& w, Device d) {
    return Tensor(w.data(), dt, {sh.tokens, sh.heads, sh.head_size}, {stride, sh.head_size, 1}, d);
  };
  const std::vector<int64_t> cshape = {sh.blocks, sh.heads, sh.block_size, sh.head_size};
  OwnedTensor kc = rng.normal_tensor(cshape, dt, 0, 1), vc = rng.normal_tensor(cshape, dt, 0, 1);
  if (poisoned_cache) {
    poison(kc);
    poison(vc);
  }
  OwnedTensor kc_d = kc.to(Storage::device), vc_d = vc.to(Storage::device);
  // Slots: distinct, every 5th token padding, token 0 in the last slot of the last block.
  const int64_t num_slots = sh.blocks * sh.block_size;
  std::vector<int64_t> s = distinct(rng, num_slots - 1, sh.tokens);  // never num_slots - 1 here
  for (int64_t t = 4; t < sh.tokens; t += 5) s[t] = -1;
  s[0] = num_slots - 1;
  OwnedTensor slots = i64_tensor(s, {sh.tokens}), slots_d = slots.to(Storage::device);

  reshape_and_cache(view(kw, Device::cpu), view(vw, Device::cpu), kc, vc, slots);
  Stream stream;
  reshape_and_cache(view(kw_d, Device::cuda), view(vw_d, Device::cuda), kc_d, vc_d, slots_d,
                    /*check_slots=*/true, stream);
  stream.synchronize();
  EXPECT_TRUE(bitwise_equal(kc_d, kc)) << "key_cache";
  EXPECT_TRUE(bitwise_equal(vc_d, vc)) << "value_cache";
}

TEST(ReshapeAndCache, GpuMatchesOracleBitExactOverWholeCacheEveryDtypeAndBlockSize) {
  DAY18_REQUIRE_GPU();
  Rng shapes(7);
  uint64_t seed = 100;
  for (DType dt : kDtypes)
    for (int64_t bs : {8, 16, 32})
      for (bool poisoned : {false, true}) {
        const int64_t heads = shapes.randint(1, 8);
        const int64_t head = std::vector<int64_t>{64, 80, 128, 256}[shapes.randint(0, 3)];
        const int64_t tokens = shapes.randint(2, 300);
        const int64_t blocks = (tokens + bs - 1) / bs + shapes.randint(1, 6);
        run_reshape_and_cache_case({tokens, heads, head, bs, blocks, 0}, dt, poisoned, ++seed);
      }
}

TEST(ReshapeAndCache, GpuHandlesFusedQkvViewsOddRowsAndSingleToken) {
  DAY18_REQUIRE_GPU();
  uint64_t seed = 200;
  for (DType dt : kDtypes) {
    run_reshape_and_cache_case({37, 4, 128, 16, 8, 3 * 4 * 128}, dt, true, ++seed);  // qkv view
    run_reshape_and_cache_case({19, 3, 36, 8, 6, 0}, dt, true, ++seed);    // 2-byte-unit path
    run_reshape_and_cache_case({21, 2, 64, 16, 4, 6}, dt, false, ++seed);  // stride not 16 B
    run_reshape_and_cache_case({1, 8, 128, 16, 1, 0}, dt, false, ++seed);  // one token
    // Rows wider than 512 threads: each thread loops over several chunks (16 B and 2 B paths).
    run_reshape_and_cache_case({40, 16, 256, 16, 4, 0}, dt, true, ++seed);
    run_reshape_and_cache_case({30, 8, 36, 8, 5, 0}, dt, true, ++seed);
  }
}

TEST(ReshapeAndCache, GpuManyTokensTakeSeveralGridStridePasses) {
  DAY18_REQUIRE_GPU();
  // Narrow rows (one warp per CUDA block) and more tokens than a resident wave carries in one
  // pass (132 SMs x 32 blocks x 4 tokens = 16896 on an H100): blocks loop over tokens.
  uint64_t seed = 300;
  for (DType dt : kDtypes)
    run_reshape_and_cache_case({40000, 1, 16, 16, 2600, 0}, dt, true, ++seed);
}

TEST(ReshapeAndCache, GpuCheckedModeThrowsNamingFirstBadTokenAndNeverWritesOutOfBounds) {
  DAY18_REQUIRE_GPU();
  Rng rng(8);
  const int64_t T = 64, H = 2, D = 64, bs = 16, nb = 4;  // 64 slots
  OwnedTensor key = rng.normal_tensor({T, H, D}, DType::f16, 0, 1, Storage::device);
  OwnedTensor value = rng.normal_tensor({T, H, D}, DType::f16, 0, 1, Storage::device);
  // The caches are the first 4 blocks of an 8-block allocation: a write past slot 63 would land
  // in blocks 4..7, which must keep their contents.
  OwnedTensor kbig = rng.normal_tensor({2 * nb, H, bs, D}, DType::f16, 0, 1, Storage::device);
  OwnedTensor vbig = rng.normal_tensor({2 * nb, H, bs, D}, DType::f16, 0, 1, Storage::device);
  OwnedTensor kbig0 = copy_of(kbig, Storage::host);
  Tensor kc = kbig.view().slice0(0, nb), vc = vbig.view().slice0(0, nb);
  std::vector<int64_t> s(T);
  std::iota(s.begin(), s.end(), 0);
  s[40] = 64;  // first bad
  s[50] = 100;
  s[60] = -7;
  OwnedTensor slots = i64_tensor(s, {T}, Storage::device);
  Stream stream;
  expect_invalid([&] { reshape_and_cache(key, value, kc, vc, slots, true, stream); },
                 {"slot_mapping[40]", "= 64", "out of range", "3 bad"});
  // Unchecked: no throw, same skipping; the process-wide record counts the bad slots.
  (void)take_index_errors("slot_mapping", stream);
  reshape_and_cache(key, value, kc, vc, slots, false, stream);
  const IndexErrors e = take_index_errors("slot_mapping", stream);
  EXPECT_EQ(e.count, 3);
  EXPECT_EQ(e.first_row, 40);
  OwnedTensor after = copy_of(kbig, Storage::host);
  const size_t half = after.nbytes() / 2;
  EXPECT_EQ(std::memcmp(static_cast<char*>(after.data()) + half,
                        static_cast<char*>(kbig0.data()) + half, half),
            0)
      << "blocks past the cache were written";
}

// ============================================================ copy_blocks
TEST(CopyBlocks, CpuOracleCopiesEveryLayerHandCase) {
  // 2 layers x 3 blocks x (1 head, block_size 1, head_size 2); block 0 -> block 2 in both.
  OwnedTensor kc({2, 3, 1, 1, 2}, DType::f32, Storage::host),
      vc({2, 3, 1, 1, 2}, DType::f32, Storage::host);
  for (int i = 0; i < 12; ++i) {
    kc.ptr<float>()[i] = float(i);
    vc.ptr<float>()[i] = float(-i);
  }
  OwnedTensor m = i64_tensor({0, 2}, {1, 2});
  copy_blocks(kc.view(), vc.view(), m.view());
  const float want[] = {0, 1, 2, 3, 0, 1, 6, 7, 8, 9, 6, 7};
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(kc.ptr<float>()[i], want[i]) << i;
    EXPECT_EQ(vc.ptr<float>()[i], -want[i]) << i;
  }
}

TEST(CopyBlocks, GpuMatchesOracleOverSeveralLayersRandomPairsEveryDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(9);
  for (DType dt : kDtypes) {
    for (auto [layers, heads, bs, head] :
         std::vector<std::array<int64_t, 4>>{{3, 2, 16, 64}, {5, 1, 8, 36}, {1, 4, 32, 128}}) {
      SCOPED_TRACE(detail::concat(dtype_name(dt), " layers ", layers, " head ", head));
      const int64_t blocks = 24, pairs = rng.randint(1, 10);
      OwnedTensor kc = rng.normal_tensor({layers, blocks, heads, bs, head}, dt, 0, 1);
      OwnedTensor vc = rng.normal_tensor({layers, blocks, heads, bs, head}, dt, 0, 1);
      OwnedTensor kc_d = kc.to(Storage::device), vc_d = vc.to(Storage::device);
      const std::vector<int64_t> ids = distinct(rng, blocks, 2 * pairs);
      std::vector<int64_t> m;
      for (int64_t p = 0; p < pairs; ++p) m.insert(m.end(), {ids[p], ids[pairs + p]});
      OwnedTensor map = i64_tensor(m, {pairs, 2}), map_d = map.to(Storage::device);
      copy_blocks(kc.view(), vc.view(), map.view());
      // The per-layer list form on the GPU (what the runtime uses).
      std::vector<Tensor> kl, vl;
      for (int64_t l = 0; l < layers; ++l) {
        kl.push_back(kc_d.view().slice0(l, l + 1).view({blocks, heads, bs, head}));
        vl.push_back(vc_d.view().slice0(l, l + 1).view({blocks, heads, bs, head}));
      }
      Stream s;
      copy_blocks(kl, vl, map_d.view(), /*check_blocks=*/true, s);
      s.synchronize();
      EXPECT_TRUE(bitwise_equal(kc_d, kc));
      EXPECT_TRUE(bitwise_equal(vc_d, vc));
    }
  }
}

TEST(CopyBlocks, OutOfRangeBlockIdThrowsOnBothBackends) {
  Rng rng(10);
  OwnedTensor kc = rng.normal_tensor({2, 4, 1, 8, 8}, DType::f16, 0, 1);
  OwnedTensor vc = rng.normal_tensor({2, 4, 1, 8, 8}, DType::f16, 0, 1);
  OwnedTensor before = copy_of(kc, Storage::host);
  OwnedTensor m = i64_tensor({0, 1, 2, 4}, {2, 2});
  expect_invalid([&] { copy_blocks(kc.view(), vc.view(), m.view()); },
                 {"block_mapping[1]", "4", "out of range"});
  EXPECT_TRUE(bitwise_equal(kc, before)) << "CPU copied before checking";
  if (!cuda_available()) return;
  OwnedTensor kc_d = kc.to(Storage::device), vc_d = vc.to(Storage::device);
  OwnedTensor m_d = m.to(Storage::device);
  expect_invalid([&] { copy_blocks(kc_d.view(), vc_d.view(), m_d.view(), true); },
                 {"block_mapping[1]", "(2, 4)", "out of range"});
}

TEST(CopyBlocks, RejectsBadArguments) {
  Rng rng(11);
  OwnedTensor kc = rng.normal_tensor({2, 4, 1, 8, 8}, DType::f16, 0, 1);
  OwnedTensor vc = rng.normal_tensor({2, 4, 1, 8, 8}, DType::f16, 0, 1);
  OwnedTensor vc_layers = rng.normal_tensor({3, 4, 1, 8, 8}, DType::f16, 0, 1);
  OwnedTensor vc_f32 = rng.normal_tensor({2, 4, 1, 8, 8}, DType::f32, 0, 1);
  OwnedTensor m = i64_tensor({0, 1}, {1, 2});
  OwnedTensor m3 = i64_tensor({0, 1, 2}, {1, 3});
  OwnedTensor m32({1, 2}, DType::i32, Storage::host);
  expect_invalid([&] { copy_blocks(kc.view(), vc_layers.view(), m.view()); }, {"value_caches"});
  expect_invalid([&] { copy_blocks(kc.view(), vc_f32.view(), m.view()); }, {"value_caches"});
  expect_invalid([&] { copy_blocks(kc.view(), vc.view(), m3.view()); }, {"block_mapping"});
  expect_invalid([&] { copy_blocks(kc.view(), vc.view(), m32.view()); }, {"block_mapping"});
  expect_invalid([&] { copy_blocks(std::vector<Tensor>{}, std::vector<Tensor>{}, m.view()); },
                 {"key_caches"});
}

// ============================================================ swap_blocks
TEST(SwapBlocks, CpuCopiesTheMappedBlocksAndNaiveAgrees) {
  Rng rng(12);
  OwnedTensor src = rng.normal_tensor({6, 2, 4, 8}, DType::bf16, 0, 1);
  OwnedTensor dst = rng.normal_tensor({9, 2, 4, 8}, DType::bf16, 0, 1);
  OwnedTensor dst2 = copy_of(dst, Storage::host);
  OwnedTensor m = i64_tensor({5, 0, 1, 8, 2, 3}, {3, 2});
  OwnedTensor expected = copy_of(dst, Storage::host);
  const size_t b = src.nbytes() / 6;
  for (auto [s, d] : {std::pair{5, 0}, {1, 8}, {2, 3}})
    std::memcpy(static_cast<char*>(expected.data()) + d * b, static_cast<char*>(src.data()) + s * b,
                b);
  swap_blocks(src, dst, m);
  swap_blocks_naive(src, dst2, m);
  EXPECT_TRUE(bitwise_equal(dst, expected));
  EXPECT_TRUE(bitwise_equal(dst2, expected));
}

TEST(SwapBlocks, RejectsBadArguments) {
  Rng rng(13);
  OwnedTensor src = rng.normal_tensor({6, 2, 4, 8}, DType::f16, 0, 1);
  OwnedTensor dst = rng.normal_tensor({9, 2, 4, 8}, DType::f16, 0, 1);
  OwnedTensor dst_f32 = rng.normal_tensor({9, 2, 4, 8}, DType::f32, 0, 1);
  OwnedTensor dst_shape = rng.normal_tensor({9, 2, 8, 8}, DType::f16, 0, 1);
  OwnedTensor m = i64_tensor({0, 1, 5, 8}, {2, 2});
  OwnedTensor m_src = i64_tensor({0, 1, 6, 8}, {2, 2});
  OwnedTensor m_dst = i64_tensor({0, 9}, {1, 2});
  OwnedTensor m32({2, 2}, DType::i32, Storage::host);
  expect_invalid([&] { swap_blocks(src, dst_f32, m); }, {"dst"});
  expect_invalid([&] { swap_blocks(src, dst_shape, m); }, {"dst"});
  expect_invalid([&] { swap_blocks(src, dst, m_src); }, {"block_mapping[1][0]", "= 6"});
  expect_invalid([&] { swap_blocks(src, dst, m_dst); }, {"block_mapping[0][1]", "= 9"});
  expect_invalid([&] { swap_blocks(src, dst, m32); }, {"block_mapping"});
  expect_invalid([&] { swap_blocks_naive(src, dst, m_src); }, {"block_mapping[1][0]"});
}

TEST(SwapBlocks, GpuRejectsPageableHostMemoryDeviceMappingAndTwoDeviceCaches) {
  DAY18_REQUIRE_GPU();
  Rng rng(14);
  OwnedTensor gpu = rng.normal_tensor({8, 2, 16, 64}, DType::f16, 0, 1, Storage::device);
  OwnedTensor pageable = rng.normal_tensor({8, 2, 16, 64}, DType::f16, 0, 1, Storage::host);
  OwnedTensor pinned = rng.normal_tensor({8, 2, 16, 64}, DType::f16, 0, 1, Storage::pinned);
  OwnedTensor gpu2 = rng.normal_tensor({8, 2, 16, 64}, DType::f16, 0, 1, Storage::device);
  OwnedTensor m = i64_tensor({0, 1}, {1, 2});
  OwnedTensor m_d = m.to(Storage::device);
  OwnedTensor m_bad = i64_tensor({0, 8}, {1, 2});
  expect_invalid([&] { swap_blocks(gpu, pageable, m); }, {"dst", "pinned", "pageable"});
  expect_invalid([&] { swap_blocks(pageable, gpu, m); }, {"src", "pinned", "pageable"});
  expect_invalid([&] { swap_blocks(gpu, pinned, m_d); }, {"block_mapping", "host"});
  expect_invalid([&] { swap_blocks(gpu, gpu2, m); }, {"both on cuda"});
  expect_invalid([&] { swap_blocks(gpu, pinned, m_bad); }, {"block_mapping[0][1]", "= 8"});
}

void check_swap_round_trip(DType dt, int64_t heads, int64_t bs, int64_t head, bool runs,
                           SwapStrategy strategy, uint64_t seed) {
  SCOPED_TRACE(detail::concat(dtype_name(dt), " block [", heads, ", ", bs, ", ", head, "] ",
                              runs ? "consecutive runs " : "random ids ",
                              swap_strategy_name(strategy)));
  Rng rng(seed);
  const int64_t gpu_blocks = 40, cpu_blocks = 64, pairs = 24;
  OwnedTensor gpu = rng.normal_tensor({gpu_blocks, heads, bs, head}, dt, 0, 1, Storage::device);
  OwnedTensor gpu0 = copy_of(gpu, Storage::host);
  OwnedTensor cpu = rng.normal_tensor({cpu_blocks, heads, bs, head}, dt, 0, 1, Storage::pinned);
  poison(cpu);
  OwnedTensor cpu_naive = copy_of(cpu, Storage::pinned);
  std::vector<int64_t> g = distinct(rng, gpu_blocks, pairs), c = distinct(rng, cpu_blocks, pairs);
  if (runs) {  // two runs of consecutive ids on both sides
    for (int64_t p = 0; p < pairs; ++p) {
      g[p] = p < 12 ? 3 + p : 14 + p;
      c[p] = p < 12 ? 40 + p : p - 12;
    }
  }
  std::vector<int64_t> out, in;
  for (int64_t p = 0; p < pairs; ++p) {
    out.insert(out.end(), {g[p], c[p]});
    in.insert(in.end(), {c[p], g[p]});
  }
  OwnedTensor map_out = i64_tensor(out, {pairs, 2}), map_in = i64_tensor(in, {pairs, 2});

  // Expected host cache: the oracle on host copies.
  OwnedTensor expected_cpu = copy_of(cpu, Storage::host);
  cpu::swap_blocks(gpu0, expected_cpu, map_out);

  Stream s;
  swap_blocks(gpu, cpu, map_out, strategy, s);
  swap_blocks_naive(gpu, cpu_naive, map_out, s);
  s.synchronize();
  EXPECT_TRUE(bitwise_equal(cpu, expected_cpu)) << "swap out";
  EXPECT_TRUE(bitwise_equal(cpu_naive, expected_cpu)) << "naive swap out";

  // Overwrite the swapped-out GPU blocks, swap them back in: the GPU cache must be as before.
  poison(gpu);
  OwnedTensor expected_gpu = copy_of(gpu, Storage::host);
  cpu::swap_blocks(expected_cpu, expected_gpu, map_in);
  swap_blocks(cpu, gpu, map_in, strategy, s);
  s.synchronize();
  EXPECT_TRUE(bitwise_equal(gpu, expected_gpu)) << "swap in";
  // Round trip: every swapped block is back bit-identical.
  OwnedTensor gpu_now = copy_of(gpu, Storage::host);
  const size_t b = gpu0.nbytes() / size_t(gpu_blocks);
  for (int64_t p = 0; p < pairs; ++p)
    EXPECT_EQ(std::memcmp(static_cast<char*>(gpu_now.data()) + g[p] * b,
                          static_cast<char*>(gpu0.data()) + g[p] * b, b),
              0)
        << "block " << g[p] << " lost in the round trip";
}

TEST(SwapBlocks, GpuOutThenInRoundTripsEveryStrategyDtypeAndMappingKind) {
  DAY18_REQUIRE_GPU();
  uint64_t seed = 300;
  for (SwapStrategy st :
       {SwapStrategy::automatic, SwapStrategy::zero_copy, SwapStrategy::copy_engine})
    for (DType dt : kDtypes)
      for (bool runs : {false, true}) {
        check_swap_round_trip(dt, 8, 16, 128, runs, st, ++seed);
        check_swap_round_trip(dt, 1, 8, 36, runs, st, ++seed);  // 2-byte-unit kernel path
      }
}

TEST(SwapBlocks, GpuNaiveTrapAndBatchedGiveTheSameCacheOnTheDefaultStream) {
  DAY18_REQUIRE_GPU();
  Rng rng(15);
  OwnedTensor gpu = rng.normal_tensor({16, 8, 16, 128}, DType::f16, 0, 1, Storage::device);
  OwnedTensor a = rng.normal_tensor({16, 8, 16, 128}, DType::f16, 0, 1, Storage::pinned);
  OwnedTensor b = copy_of(a, Storage::pinned);
  const std::vector<int64_t> g = distinct(rng, 16, 10), c = distinct(rng, 16, 10);
  std::vector<int64_t> m;
  for (int i = 0; i < 10; ++i) m.insert(m.end(), {g[i], c[i]});
  OwnedTensor map = i64_tensor(m, {10, 2});
  swap_blocks(gpu, a, map);  // on the legacy default stream
  swap_blocks_naive(gpu, b, map);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(bitwise_equal(a, b));
}

}  // namespace
}  // namespace day18
