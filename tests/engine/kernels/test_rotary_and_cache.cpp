// rotary_and_cache (RoPE + KV-cache write + query packing, one launch): the CPU oracle by hand;
// fused == unfused (rotary_embedding on a copy, copy_rows, reshape_and_cache) BIT FOR BIT on the
// CPU and on the GPU, every dtype; the CUDA kernel vs the CPU oracle over random shapes (GQA,
// heads 64/128 and odd sizes, partial rotary, neox/gptj, T = 1 and ragged T, padding slots,
// q/k/v as column blocks of a fused qkv buffer exactly as the model slices it); bad positions and
// slots (checked and unchecked); bad arguments naming the argument.
//
// query_out is poisoned (NaN) before every run, so an element the op forgets shows up. The caches
// start from random contents: every slot the step does not write must keep its bytes, checked
// bitwise. The inputs are read only: checked bitwise after each run.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "engine/cpu/rotary.h"
#include "engine/ops/cache.h"
#include "engine/ops/rotary.h"
#include "engine/runtime/model_kernels.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

using testing::bitwise_equal;
using testing::copy_of;
using testing::to_host;

constexpr auto& kDtypes = testing::kAllFloatDtypes;

OwnedTensor i64_tensor(const std::vector<int64_t>& v, Storage storage = Storage::host) {
  OwnedTensor h({int64_t(v.size())}, DType::i64, Storage::host);
  std::copy(v.begin(), v.end(), h.ptr<int64_t>());
  return storage == Storage::host ? std::move(h) : h.to(storage);
}

OwnedTensor f32_tensor(const std::vector<float>& v, std::vector<int64_t> shape) {
  OwnedTensor t(shape, DType::f32, Storage::host);
  std::copy(v.begin(), v.end(), t.ptr<float>());
  return t;
}

// ============================================================ a case and its tensors
struct RacShape {
  int64_t tokens, heads, kv_heads, head_size, rot_dim;
  bool fused_qkv;      // q/k/v: column blocks of one [tokens, (heads + 2 kv_heads) * head_size]
  int64_t pad_every;   // every pad_every-th token has slot -1 (0: none)
  int64_t block_size;  // cache blocks: enough for 1.5 x the tokens
  std::string describe() const {
    return detail::concat("tokens ", tokens, " heads ", heads, "/", kv_heads, " head_size ",
                          head_size, " rot_dim ", rot_dim, fused_qkv ? " fused qkv" : " separate",
                          " pad_every ", pad_every, " block_size ", block_size);
  }
};

// Every tensor of one case, on one backend. `qkv` holds the inputs: the fused [T, width] buffer,
// or q | k | v as three contiguous tensors one after the other.
struct RacTensors {
  RacShape sh;
  DType dt;
  OwnedTensor qkv{}, key_cache{}, value_cache{}, slot_mapping{}, positions{}, cos_sin_cache{},
      query_out{};

  Device device() const { return device_of(qkv.storage()); }
  int64_t num_blocks() const { return key_cache.sizes()[0]; }
  Tensor part(int64_t offset, int64_t heads) const {
    char* base = static_cast<char*>(qkv.data()) + offset * int64_t(dtype_size(dt));
    if (sh.fused_qkv) {
      const int64_t width = (sh.heads + 2 * sh.kv_heads) * sh.head_size;
      return Tensor(base, dt, {sh.tokens, heads, sh.head_size}, {width, sh.head_size, 1}, device());
    }
    return Tensor(base, dt, {sh.tokens, heads, sh.head_size}, device());
  }
  // Column offsets as the model's column_block takes them (fused), or tensor offsets.
  Tensor q() const { return part(0, sh.heads); }
  Tensor k() const {
    return part((sh.fused_qkv ? 1 : sh.tokens) * sh.heads * sh.head_size, sh.kv_heads);
  }
  Tensor v() const {
    return part((sh.fused_qkv ? 1 : sh.tokens) * (sh.heads + sh.kv_heads) * sh.head_size,
                sh.kv_heads);
  }
  RacTensors to(Storage s) const {
    return {sh,
            dt,
            copy_of(qkv, s),
            copy_of(key_cache, s),
            copy_of(value_cache, s),
            copy_of(slot_mapping, s),
            copy_of(positions, s),
            copy_of(cos_sin_cache, s),
            copy_of(query_out, s)};
  }
};

RacTensors make_case(const RacShape& sh, DType dt, uint64_t seed, int64_t max_position = 300) {
  Rng rng(seed);
  RacTensors c{sh, dt};
  const int64_t qkv_values = sh.tokens * (sh.heads + 2 * sh.kv_heads) * sh.head_size;
  c.qkv = rng.normal_tensor({qkv_values}, dt, 0, 1);
  const int64_t blocks = (sh.tokens * 3 / 2 + sh.block_size - 1) / sh.block_size + 1;
  c.key_cache = rng.normal_tensor({blocks, sh.kv_heads, sh.block_size, sh.head_size}, dt, 0, 1);
  c.value_cache = rng.normal_tensor({blocks, sh.kv_heads, sh.block_size, sh.head_size}, dt, 0, 1);
  // Distinct slots (the kernel writes them in parallel), the very last slot of the cache among
  // them, padding tokens at -1.
  std::vector<int64_t> ids(blocks * sh.block_size);
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = 0; i < sh.tokens; ++i)
    std::swap(ids[i], ids[rng.randint(i, int64_t(ids.size()) - 1)]);
  ids.resize(sh.tokens);
  const int64_t last = blocks * sh.block_size - 1;
  auto it = std::find(ids.begin(), ids.end(), last);
  if (it != ids.end())
    std::swap(*it, ids[0]);
  else
    ids[0] = last;
  if (sh.pad_every > 0)
    for (int64_t t = sh.pad_every - 1; t < sh.tokens; t += sh.pad_every) ids[t] = -1;
  c.slot_mapping = i64_tensor(ids);
  std::vector<int64_t> pos(sh.tokens);
  for (auto& p : pos) p = rng.randint(0, max_position - 1);
  pos.back() = max_position - 1;  // the table's last row
  c.positions = i64_tensor(pos);
  c.cos_sin_cache = make_cos_sin_cache(max_position, sh.rot_dim, 10000, dt);
  c.query_out = OwnedTensor({sh.tokens, sh.heads, sh.head_size}, dt, Storage::host);
  return c;
}

void run_fused(RacTensors& c, bool neox, bool check, cudaStream_t s = nullptr) {
  poison(c.query_out, s);
  rotary_and_cache(c.query_out, c.q(), c.k(), c.v(), c.key_cache, c.value_cache, c.slot_mapping,
                   c.positions, c.cos_sin_cache, c.sh.head_size, neox, check, check, s);
}

// The three ops the fused one replaces, as LlamaModel::attention calls them (they rotate q and k
// in place: run on a copy of the inputs).
void run_unfused(RacTensors& c, bool neox, cudaStream_t s = nullptr) {
  const RacShape& sh = c.sh;
  poison(c.query_out, s);
  rotary_embedding(c.positions, c.q(), c.k(), c.cos_sin_cache, sh.head_size, neox,
                   /*check_positions=*/false, s);
  const int64_t q_size = sh.heads * sh.head_size;
  copy_rows(c.query_out.view().view({sh.tokens, q_size}),
            Tensor(c.q().data(), c.dt, {sh.tokens, q_size}, {c.q().stride(0), 1}, c.device()), s);
  reshape_and_cache(c.k(), c.v(), c.key_cache, c.value_cache, c.slot_mapping,
                    /*check_slots=*/false, s);
}

// Slots [block, :, offset, :] of `cache` that slot_mapping does not name: bitwise as in `before`.
int64_t untouched_slots_changed(const Tensor& cache_any, const Tensor& before_any,
                                const Tensor& slot_mapping_any) {
  OwnedTensor cache = to_host(cache_any), before = to_host(before_any);
  OwnedTensor slots = to_host(slot_mapping_any);
  const std::vector<int64_t> sz = cache.sizes();
  const int64_t blocks = sz[0], heads = sz[1], bs = sz[2], D = sz[3];
  std::vector<bool> written(blocks * bs, false);
  for (int64_t t = 0; t < slots.numel(); ++t) {
    const int64_t s = slots.ptr<int64_t>()[t];
    if (s >= 0 && s < blocks * bs) written[s] = true;
  }
  const size_t row = size_t(D) * dtype_size(cache.dtype());
  int64_t changed = 0;
  for (int64_t s = 0; s < blocks * bs; ++s) {
    if (written[s]) continue;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t off = ((s / bs * heads + h) * bs + s % bs) * int64_t(row);
      changed += std::memcmp(static_cast<const char*>(cache.data()) + off,
                             static_cast<const char*>(before.data()) + off, row) != 0;
    }
  }
  return changed;
}

// The rows the tail [rot_dim, head_size) of every query head must be: the input's bytes.
int64_t query_tails_changed(const RacTensors& c) {
  OwnedTensor out = to_host(c.query_out), q = to_host(c.qkv);
  RacTensors h{c.sh, c.dt};
  h.qkv = std::move(q);
  const Tensor qv = h.q();
  const size_t esz = dtype_size(c.dt);
  const int64_t D = c.sh.head_size, tail = D - c.sh.rot_dim;
  int64_t changed = 0;
  for (int64_t t = 0; t < c.sh.tokens; ++t)
    for (int64_t hd = 0; hd < c.sh.heads; ++hd)
      changed += std::memcmp(static_cast<const char*>(out.data()) +
                                 ((t * c.sh.heads + hd) * D + c.sh.rot_dim) * esz,
                             static_cast<const char*>(qv.data()) +
                                 (t * qv.stride(0) + hd * D + c.sh.rot_dim) * esz,
                             tail * esz) != 0;
  return changed;
}

const RacShape kShapes[] = {
    {1, 32, 8, 64, 64, true, 0, 16},    // llama-1b decode, one token
    {1, 32, 8, 128, 128, true, 0, 16},  // llama-8b decode, one token
    {37, 8, 2, 128, 128, true, 5, 16},  // ragged T, GQA 4:1, padding
    {64, 4, 4, 64, 32, false, 0, 8},    // partial rotary, no GQA, separate tensors
    {23, 6, 2, 128, 64, true, 3, 32},   // partial rotary in fused qkv
    {9, 2, 1, 36, 20, true, 4, 8},      // odd head: the scalar path on the GPU
    {17, 4, 1, 80, 80, false, 0, 16},   // head 80
};

// ============================================================ CPU oracle by hand
TEST(RotaryAndCache, CpuRotatesQueryAndKeyCachesKeyAndValueAtTheSlotAndSkipsPadding) {
  // rot_dim 2 of head 4: one pair rotated by `position` radians, dims 2..3 copied through.
  OwnedTensor cs = make_cos_sin_cache(4, 2, 10000, DType::f32);
  OwnedTensor q = f32_tensor({1, 0, 7, 8, 3, 4, 9, 10}, {2, 1, 4});
  OwnedTensor k = f32_tensor({0, 2, 5, 6, 1, 1, 1, 1}, {2, 1, 4});
  OwnedTensor v = f32_tensor({11, 12, 13, 14, 15, 16, 17, 18}, {2, 1, 4});
  OwnedTensor pos = i64_tensor({1, 2});
  OwnedTensor slots = i64_tensor({3, -1});  // token 0 -> block 1, offset 1; token 1 padding
  for (bool neox : {true, false}) {         // one pair: both styles agree
    std::vector<float> init(2 * 1 * 2 * 4);
    std::iota(init.begin(), init.end(), -100.0f);
    OwnedTensor kc = f32_tensor(init, {2, 1, 2, 4}), vc = f32_tensor(init, {2, 1, 2, 4});
    OwnedTensor out({2, 1, 4}, DType::f32, Storage::host);
    poison(out);
    rotary_and_cache(out, q, k, v, kc, vc, slots, pos, cs, 4, neox);
    const float* o = out.ptr<float>();
    EXPECT_NEAR(o[0], std::cos(1.0), 1e-6);  // (1, 0) by 1 rad
    EXPECT_NEAR(o[1], std::sin(1.0), 1e-6);
    EXPECT_EQ(o[2], 7);
    EXPECT_EQ(o[3], 8);
    EXPECT_NEAR(o[4], 3 * std::cos(2.0) - 4 * std::sin(2.0), 1e-5);  // (3, 4) by 2 rad
    EXPECT_NEAR(o[5], 4 * std::cos(2.0) + 3 * std::sin(2.0), 1e-5);
    EXPECT_EQ(o[6], 9);
    EXPECT_EQ(o[7], 10);
    const int64_t at = ((1 * 1 + 0) * 2 + 1) * 4;  // block 1, head 0, offset 1
    for (int64_t i = 0; i < 16; ++i) {
      if (i >= at && i < at + 4) continue;
      EXPECT_EQ(kc.ptr<float>()[i], init[i]) << "key_cache[" << i << "] was touched";
      EXPECT_EQ(vc.ptr<float>()[i], init[i]) << "value_cache[" << i << "] was touched";
    }
    EXPECT_NEAR(kc.ptr<float>()[at], -2 * std::sin(1.0), 1e-6);  // (0, 2) by 1 rad
    EXPECT_NEAR(kc.ptr<float>()[at + 1], 2 * std::cos(1.0), 1e-6);
    EXPECT_EQ(kc.ptr<float>()[at + 2], 5);
    EXPECT_EQ(kc.ptr<float>()[at + 3], 6);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(vc.ptr<float>()[at + i], 11 + i);
  }
}

// ============================================================ fused == unfused, CPU
TEST(RotaryAndCache, CpuEqualsUnfusedSequenceBitForBitEveryDtypeAndShape) {
  uint64_t seed = 600;
  for (DType dt : kDtypes)
    for (bool neox : {true, false})
      for (const RacShape& sh : kShapes) {
        SCOPED_TRACE(sh.describe() + " " + std::string(dtype_name(dt)) +
                     (neox ? " neox" : " gptj"));
        RacTensors fused = make_case(sh, dt, ++seed);
        RacTensors unfused = fused.to(Storage::host);
        OwnedTensor inputs = copy_of(fused.qkv, Storage::host);
        run_fused(fused, neox, /*check=*/true);
        run_unfused(unfused, neox);
        EXPECT_TRUE(bitwise_equal(fused.query_out, unfused.query_out));
        EXPECT_TRUE(bitwise_equal(fused.key_cache, unfused.key_cache));
        EXPECT_TRUE(bitwise_equal(fused.value_cache, unfused.value_cache));
        EXPECT_TRUE(bitwise_equal(fused.qkv, inputs)) << "the inputs are read only";
      }
}

TEST(RotaryAndCache, CpuKeepsUntouchedSlotsAndQueryTails) {
  RacTensors c = make_case({40, 4, 2, 64, 32, true, 3, 16}, DType::bf16, 650);
  const RacTensors before = c.to(Storage::host);
  run_fused(c, /*neox=*/true, /*check=*/true);
  EXPECT_EQ(untouched_slots_changed(c.key_cache, before.key_cache, c.slot_mapping), 0);
  EXPECT_EQ(untouched_slots_changed(c.value_cache, before.value_cache, c.slot_mapping), 0);
  EXPECT_EQ(query_tails_changed(c), 0);
}

TEST(RotaryAndCache, CpuOutOfRangePositionOrSlotThrowsNamingItAndWritesNothing) {
  RacTensors c = make_case({5, 4, 2, 64, 64, true, 0, 8}, DType::f16, 660, /*max_position=*/32);
  const RacTensors before = c.to(Storage::host);
  auto expect_untouched = [&] {
    EXPECT_TRUE(bitwise_equal(c.key_cache, before.key_cache));
    EXPECT_TRUE(bitwise_equal(c.value_cache, before.value_cache));
    OwnedTensor nan({4}, DType::f16, Storage::host);
    poison(nan);  // query_out still holds the poison run_fused put there
    EXPECT_EQ(std::memcmp(c.query_out.data(), nan.data(), 4 * 2), 0);
  };
  c.positions.ptr<int64_t>()[3] = 32;
  EXPECT_THROW_WITH(run_fused(c, true, false), InvalidArgument, "positions[3]", "= 32",
                    "out of range");
  expect_untouched();
  c.positions.ptr<int64_t>()[3] = 0;
  const int64_t num_slots = c.num_blocks() * 8;
  c.slot_mapping.ptr<int64_t>()[4] = num_slots;
  EXPECT_THROW_WITH(run_fused(c, true, false), InvalidArgument, "slot_mapping[4]",
                    detail::concat("= ", num_slots).c_str(), "out of range");
  expect_untouched();
  c.slot_mapping.ptr<int64_t>()[4] = -7;
  EXPECT_THROW_WITH(run_fused(c, true, false), InvalidArgument, "slot_mapping[4]", "= -7");
  expect_untouched();
}

// ============================================================ bad arguments
TEST(RotaryAndCache, RejectsBadArgumentsNamingThem) {
  Rng rng(670);
  const DType dt = DType::f16;
  const int64_t T = 3, H = 4, KV = 2, D = 8;
  OwnedTensor out({T, H, D}, dt, Storage::host);
  OwnedTensor q = rng.normal_tensor({T, H, D}, dt, 0, 1);
  OwnedTensor k = rng.normal_tensor({T, KV, D}, dt, 0, 1);
  OwnedTensor v = rng.normal_tensor({T, KV, D}, dt, 0, 1);
  OwnedTensor kc = rng.normal_tensor({4, KV, 2, D}, dt, 0, 1);
  OwnedTensor vc = rng.normal_tensor({4, KV, 2, D}, dt, 0, 1);
  OwnedTensor slots = i64_tensor({0, 5, -1});
  OwnedTensor pos = i64_tensor({0, 1, 2});
  OwnedTensor cs = make_cos_sin_cache(16, D, 10000, dt);
  auto call = [&](const Tensor& o, const Tensor& qq, const Tensor& kk, const Tensor& vv,
                  const Tensor& kcc, const Tensor& vcc, const Tensor& sm, const Tensor& p,
                  const Tensor& c, int64_t head_size = 8 /* D */) {
    rotary_and_cache(o, qq, kk, vv, kcc, vcc, sm, p, c, head_size, true);
  };
  call(out, q, k, v, kc, vc, slots, pos, cs);  // the good call works

  // head_size and rot_dim
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos, cs, 16), InvalidArgument, "query",
                    "head_size");
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos, cs, 0), InvalidArgument, "head_size");
  OwnedTensor cs_wide = make_cos_sin_cache(16, 16, 10000, dt);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos, cs_wide), InvalidArgument,
                    "cos_sin_cache", "rot_dim");
  OwnedTensor cs_odd = rng.normal_tensor({16, 7}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos, cs_odd), InvalidArgument,
                    "cos_sin_cache", "even");
  OwnedTensor cs32 = make_cos_sin_cache(16, D, 10000, DType::f32);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos, cs32), InvalidArgument, "cos_sin_cache");

  // shapes and dtypes of the activations
  OwnedTensor k_head = rng.normal_tensor({T, KV, 16}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k_head, v, kc, vc, slots, pos, cs), InvalidArgument, "key",
                    "head_size");
  OwnedTensor v_head = rng.normal_tensor({T, KV, 16}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v_head, kc, vc, slots, pos, cs), InvalidArgument, "value",
                    "head_size");
  OwnedTensor k3 = rng.normal_tensor({T, 3, D}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k3, v, kc, vc, slots, pos, cs), InvalidArgument, "key",
                    "num_kv_heads");
  OwnedTensor v1 = rng.normal_tensor({T, 1, D}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v1, kc, vc, slots, pos, cs), InvalidArgument, "value");
  OwnedTensor k_tokens = rng.normal_tensor({2, KV, D}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k_tokens, v, kc, vc, slots, pos, cs), InvalidArgument, "key",
                    "num_tokens");
  OwnedTensor v_bf16 = rng.normal_tensor({T, KV, D}, DType::bf16, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v_bf16, kc, vc, slots, pos, cs), InvalidArgument, "value");
  OwnedTensor q_i32({T, H, D}, DType::i32, Storage::host);
  EXPECT_THROW_WITH(call(out, q_i32, k, v, kc, vc, slots, pos, cs), InvalidArgument, "query");

  // strides: a token's heads must be contiguous rows of head_size
  OwnedTensor wide = rng.normal_tensor({T, 2 * H * D}, dt, 0, 1);
  const Tensor q_head_gap(wide.data(), dt, {T, H, D}, {2 * H * D, 2 * D, 1}, Device::cpu);
  EXPECT_THROW_WITH(call(out, q_head_gap, k, v, kc, vc, slots, pos, cs), InvalidArgument, "query",
                    "contiguous");
  const Tensor q_overlap(wide.data(), dt, {T, H, D}, {H * D / 2, D, 1}, Device::cpu);
  EXPECT_THROW_WITH(call(out, q_overlap, k, v, kc, vc, slots, pos, cs), InvalidArgument, "query",
                    "token stride");
  const Tensor k_cols(wide.data(), dt, {T, KV, D}, {2 * H * D, D, 2}, Device::cpu);
  EXPECT_THROW_WITH(call(out, q, k_cols, v, kc, vc, slots, pos, cs), InvalidArgument, "key",
                    "contiguous");
  const Tensor v_cols(wide.data(), dt, {T, KV, D}, {2 * H * D, 1, KV}, Device::cpu);
  EXPECT_THROW_WITH(call(out, q, k, v_cols, kc, vc, slots, pos, cs), InvalidArgument, "value",
                    "contiguous");

  // query_out
  OwnedTensor out_small({T, H, D / 2}, dt, Storage::host);
  EXPECT_THROW_WITH(call(out_small, q, k, v, kc, vc, slots, pos, cs), InvalidArgument, "query_out");
  OwnedTensor out_bf16({T, H, D}, DType::bf16, Storage::host);
  EXPECT_THROW_WITH(call(out_bf16, q, k, v, kc, vc, slots, pos, cs), InvalidArgument, "query_out");
  const Tensor out_strided(wide.data(), dt, {T, H, D}, {2 * H * D, D, 1}, Device::cpu);
  EXPECT_THROW_WITH(call(out_strided, q, k, v, kc, vc, slots, pos, cs), InvalidArgument,
                    "query_out", "contiguous");
  EXPECT_THROW_WITH(call(q, q, k, v, kc, vc, slots, pos, cs), InvalidArgument, "query_out",
                    "overlaps query");

  // caches
  OwnedTensor kc_heads = rng.normal_tensor({4, 1, 2, D}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v, kc_heads, vc, slots, pos, cs), InvalidArgument, "key_cache");
  OwnedTensor kc_head = rng.normal_tensor({4, KV, 2, 16}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v, kc_head, vc, slots, pos, cs), InvalidArgument, "key_cache");
  OwnedTensor vc_blocks = rng.normal_tensor({5, KV, 2, D}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc_blocks, slots, pos, cs), InvalidArgument,
                    "value_cache");
  OwnedTensor vc_f32 = rng.normal_tensor({4, KV, 2, D}, DType::f32, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc_f32, slots, pos, cs), InvalidArgument, "value_cache");
  OwnedTensor kc3 = rng.normal_tensor({4 * KV * 2 * D}, dt, 0, 1);
  EXPECT_THROW_WITH(call(out, q, k, v, kc3, vc, slots, pos, cs), InvalidArgument, "key_cache");
  EXPECT_THROW_WITH(call(out, q, k, v, kc, kc, slots, pos, cs), InvalidArgument, "value_cache",
                    "overlaps key_cache");

  // index tensors
  OwnedTensor slots_short = i64_tensor({0, 1});
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots_short, pos, cs), InvalidArgument,
                    "slot_mapping");
  OwnedTensor slots_i32({T}, DType::i32, Storage::host);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots_i32, pos, cs), InvalidArgument,
                    "slot_mapping");
  OwnedTensor pos_short = i64_tensor({0, 1});
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos_short, cs), InvalidArgument, "positions");
  OwnedTensor pos_i32({T}, DType::i32, Storage::host);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos_i32, cs), InvalidArgument, "positions");

  // devices: a tensor that claims to be on cuda (rejected before anything is read)
  const Tensor kc_cuda(kc.data(), dt, {4, KV, 2, D}, Device::cuda);
  EXPECT_THROW_WITH(call(out, q, k, v, kc_cuda, vc, slots, pos, cs), InvalidArgument, "key_cache",
                    "cuda");
  const Tensor pos_cuda(pos.data(), DType::i64, {T}, Device::cuda);
  EXPECT_THROW_WITH(call(out, q, k, v, kc, vc, slots, pos_cuda, cs), InvalidArgument, "positions",
                    "cuda");
}

// ============================================================ GPU
// The CUDA kernel vs the CPU oracle for one case and style: query_out and key_cache within the
// dtype's tolerance, value_cache and every untouched slot bitwise, the inputs unchanged; and the
// fused kernel vs the unfused sequence on the GPU, bitwise.
void run_gpu_case(const RacShape& sh, DType dt, bool neox, uint64_t seed) {
  SCOPED_TRACE(sh.describe() + " " + std::string(dtype_name(dt)) + (neox ? " neox" : " gptj"));
  RacTensors cpu = make_case(sh, dt, seed);
  RacTensors gpu = cpu.to(Storage::device), unfused = cpu.to(Storage::device);
  const RacTensors before = cpu.to(Storage::host);
  run_fused(cpu, neox, true);
  Stream s;
  run_fused(gpu, neox, /*check=*/true, s);
  run_unfused(unfused, neox, s);
  s.synchronize();
  EXPECT_CLOSE(gpu.query_out, cpu.query_out, default_tolerance(dt));
  EXPECT_CLOSE(gpu.key_cache, cpu.key_cache, default_tolerance(dt));
  EXPECT_TRUE(bitwise_equal(gpu.value_cache, cpu.value_cache));
  EXPECT_EQ(untouched_slots_changed(gpu.key_cache, before.key_cache, gpu.slot_mapping), 0);
  EXPECT_EQ(untouched_slots_changed(gpu.value_cache, before.value_cache, gpu.slot_mapping), 0);
  EXPECT_EQ(query_tails_changed(gpu), 0);
  EXPECT_TRUE(bitwise_equal(gpu.qkv, before.qkv)) << "the inputs are read only";
  EXPECT_TRUE(bitwise_equal(gpu.query_out, unfused.query_out)) << "fused != unfused (query)";
  EXPECT_TRUE(bitwise_equal(gpu.key_cache, unfused.key_cache)) << "fused != unfused (key)";
  EXPECT_TRUE(bitwise_equal(gpu.value_cache, unfused.value_cache)) << "fused != unfused (value)";
}

TEST(RotaryAndCache, GpuMatchesOracleAndUnfusedOnEngineAndEdgeShapes) {
  DAY18_REQUIRE_GPU();
  uint64_t seed = 700;
  for (DType dt : kDtypes)
    for (bool neox : {true, false})
      for (const RacShape& sh : kShapes) run_gpu_case(sh, dt, neox, ++seed);
}

TEST(RotaryAndCache, GpuMatchesOracleAndUnfusedOnRandomShapes) {
  DAY18_REQUIRE_GPU();
  Rng shapes(710);
  uint64_t seed = 720;
  for (DType dt : kDtypes)
    for (bool neox : {true, false})
      for (int rep = 0; rep < 4; ++rep) {
        const int64_t kv = shapes.randint(1, 4), group = shapes.randint(1, 4);
        const int64_t head = shapes.randint(0, 1) ? 128 : 64;
        const int64_t rot = shapes.randint(0, 2) == 0 ? head / 2 : head;
        const int64_t bs = std::vector<int64_t>{8, 16, 32}[shapes.randint(0, 2)];
        run_gpu_case({shapes.randint(1, 300), kv * group, kv, head, rot, shapes.randint(0, 3) != 0,
                      shapes.randint(0, 6), bs},
                     dt, neox, ++seed);
      }
}

TEST(RotaryAndCache, GpuPrefillSizedStepMatchesOracle) {
  DAY18_REQUIRE_GPU();
  run_gpu_case({1000, 32, 8, 128, 128, true, 0, 16}, DType::bf16, true, 730);
}

TEST(RotaryAndCache, GpuCheckedModeThrowsNamingTheBadPositionOrSlot) {
  DAY18_REQUIRE_GPU();
  RacTensors h = make_case({6, 4, 2, 128, 128, true, 0, 16}, DType::f16, 740, 64);
  h.positions.ptr<int64_t>()[2] = 64;
  h.positions.ptr<int64_t>()[5] = 1000;
  RacTensors g = h.to(Storage::device);
  Stream s;
  EXPECT_THROW_WITH(run_fused(g, true, /*check=*/true, s), InvalidArgument, "positions[2]", "= 64",
                    "out of range", "2 bad");
  h.positions.ptr<int64_t>()[2] = 1;
  h.positions.ptr<int64_t>()[5] = 2;
  const int64_t num_slots = h.num_blocks() * 16;
  h.slot_mapping.ptr<int64_t>()[4] = num_slots + 3;
  g = h.to(Storage::device);
  EXPECT_THROW_WITH(run_fused(g, true, /*check=*/true, s), InvalidArgument, "slot_mapping[4]",
                    detail::concat("= ", num_slots + 3).c_str(), "out of range", "1 bad");
}

TEST(RotaryAndCache, GpuUncheckedBadIndicesAreCountedAndMatchTheUnfusedSequence) {
  DAY18_REQUIRE_GPU();
  // A bad position: that token's query and key go through unrotated (as rotary_embedding leaves
  // them, then the copies); a bad slot: nothing cached for that token. Both counted, no wait.
  RacTensors h = make_case({8, 4, 2, 64, 64, true, 0, 16}, DType::bf16, 750, 64);
  h.positions.ptr<int64_t>()[1] = 64;
  h.positions.ptr<int64_t>()[6] = -3;
  h.slot_mapping.ptr<int64_t>()[3] = h.num_blocks() * 16;
  h.slot_mapping.ptr<int64_t>()[7] = -2;
  RacTensors fused = h.to(Storage::device), unfused = h.to(Storage::device);
  const RacTensors before = h.to(Storage::host);
  Stream s;
  (void)take_index_errors("positions", s);
  (void)take_index_errors("slot_mapping", s);
  run_fused(fused, true, /*check=*/false, s);
  const IndexErrors pe = take_index_errors("positions", s);
  const IndexErrors se = take_index_errors("slot_mapping", s);
  EXPECT_EQ(pe.count, 2);
  EXPECT_EQ(pe.first_row, 1);
  EXPECT_EQ(se.count, 2);
  EXPECT_EQ(se.first_row, 3);
  run_unfused(unfused, true, s);
  (void)take_index_errors("positions", s);
  (void)take_index_errors("slot_mapping", s);
  EXPECT_TRUE(bitwise_equal(fused.query_out, unfused.query_out));
  EXPECT_TRUE(bitwise_equal(fused.key_cache, unfused.key_cache));
  EXPECT_TRUE(bitwise_equal(fused.value_cache, unfused.value_cache));
  EXPECT_EQ(untouched_slots_changed(fused.key_cache, before.key_cache, fused.slot_mapping), 0);
  // Token 1's query row is its input row, bit for bit.
  OwnedTensor out = to_host(fused.query_out);
  const int64_t width = (4 + 2 * 2) * 64, row = 4 * 64 * 2;
  EXPECT_EQ(std::memcmp(static_cast<char*>(out.data()) + row,
                        static_cast<char*>(before.qkv.data()) + width * 2, row),
            0);
}

TEST(RotaryAndCache, GpuCapturesIntoAGraphAndReplays) {
  DAY18_REQUIRE_GPU();
  // The unchecked call waits for nothing: it can be captured, and a replay redoes the step.
  RacTensors h = make_case({5, 32, 8, 64, 64, true, 2, 16}, DType::f16, 760);
  RacTensors expected = h.to(Storage::host);
  run_fused(expected, true, true);
  RacTensors g = h.to(Storage::device);
  Stream s;
  // The process-wide index records are made (with a sync) on first use: before the capture.
  (void)take_index_errors("positions", s);
  (void)take_index_errors("slot_mapping", s);
  testing::capture_and_replay(
      s,
      [&] {
        rotary_and_cache(g.query_out, g.q(), g.k(), g.v(), g.key_cache, g.value_cache,
                         g.slot_mapping, g.positions, g.cos_sin_cache, 64, true, false, false, s);
      },
      [&] { poison(g.query_out, s); });
  EXPECT_CLOSE(g.query_out, expected.query_out, default_tolerance(DType::f16));
  EXPECT_CLOSE(g.key_cache, expected.key_cache, default_tolerance(DType::f16));
  EXPECT_TRUE(bitwise_equal(g.value_cache, expected.value_cache));
}

}  // namespace
}  // namespace day18
