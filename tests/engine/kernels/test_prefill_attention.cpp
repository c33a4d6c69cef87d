// Prefill attention (engine/kernels/prefill_attention.h, ops/attention.h): the tensor-core kernel
// against the CPU oracle over prompt lengths, chunked prefill, GQA ratios, head and block sizes
// and both half types; the varlen op that splits a step between the prefill and the decode
// kernels; bad metadata; the model's prefill logits against the decode-kernel path; bad inputs.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/core/device.h"
#include "engine/kernels/paged_attention.h"
#include "engine/kernels/prefill_attention.h"
#include "engine/ops/attention.h"
#include "engine/runtime/contiguous_batch.h"
#include "engine/runtime/input_batch.h"
#include "engine/runtime/llama_model.h"
#include "tests/support/paged_attention_problem.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

using testing::label;
using testing::make_problem;
using testing::oracle;
using testing::Problem;
using testing::Shape;

// One sequence of a varlen step: `prefix` tokens already in the cache, then `len` query tokens
// (their own keys are in the cache too, as the model writes them before attention). Token i of the
// chunk attends positions 0 .. prefix + i (context_len prefix + i + 1). A decode is {ctx - 1, 1}.
struct Seg {
  int32_t prefix = 0, len = 1;
};

struct Varlen {
  Problem p;                 // cache, block tables, per-token metadata, host
  std::vector<int32_t> qsl;  // query_start_loc: one segment per Seg
  std::string what;          // for messages
};

Varlen make_varlen(Rng& rng, DType dt, const Shape& s, const std::vector<Seg>& segs,
                   int32_t padding_rows = 0) {
  std::vector<int32_t> lens;
  for (const Seg& g : segs) lens.push_back(g.prefix + g.len);
  Varlen v;
  v.p = make_problem(rng, dt, s, lens);  // the paged cache of every sequence's whole length
  std::vector<int32_t> si, cl;
  v.qsl.push_back(0);
  for (size_t q = 0; q < segs.size(); ++q) {
    for (int32_t i = 0; i < segs[q].len; ++i) {
      si.push_back(static_cast<int32_t>(q));
      cl.push_back(segs[q].prefix + i + 1);
    }
    v.qsl.push_back(static_cast<int32_t>(si.size()));
    v.what += detail::concat(q ? ", " : "", "{prefix ", segs[q].prefix, ", len ", segs[q].len, "}");
  }
  // Rows after the last segment (a CUDA graph's padding): seq 0, context 0, in no segment.
  for (int32_t i = 0; i < padding_rows; ++i) {
    si.push_back(0);
    cl.push_back(0);
  }
  const int64_t T = static_cast<int64_t>(si.size());
  v.p.seq_idx = OwnedTensor({T}, DType::i32, Storage::host);
  v.p.context_lens = OwnedTensor({T}, DType::i32, Storage::host);
  std::copy(si.begin(), si.end(), v.p.seq_idx.ptr<int32_t>());
  std::copy(cl.begin(), cl.end(), v.p.context_lens.ptr<int32_t>());
  v.p.query = rng.normal_tensor({T, s.num_heads, s.head_size}, dt, 0, 1);
  return v;
}

enum class Call { prefill, varlen };

struct DeviceCopies {
  OwnedTensor q, kc, vc, bt, si, cl, out, ws;
};

DeviceCopies to_device(const Problem& p) {
  DeviceCopies d{p.query.to(Storage::device),
                 p.key_cache.to(Storage::device),
                 p.value_cache.to(Storage::device),
                 p.block_tables.to(Storage::device),
                 p.seq_idx.to(Storage::device),
                 p.context_lens.to(Storage::device),
                 OwnedTensor(p.query.sizes(), p.query.dtype(), Storage::device),
                 OwnedTensor()};
  // Enough for the automatic plan and for a forced v2 (the tests run both on one copy).
  PagedAttentionOptions v2;
  v2.version = PagedAttentionVersion::v2;
  size_t ws = 0;
  for (const PagedAttentionOptions& o : {PagedAttentionOptions{}, v2})
    ws = std::max(ws, paged_attention_workspace_bound(p.query.sizes()[0], p.query.sizes()[1],
                                                      p.key_cache.sizes()[1], p.query.sizes()[2],
                                                      p.max_context_len, o));
  d.ws = OwnedTensor({static_cast<int64_t>(std::max<size_t>(ws, 1))}, DType::u8, Storage::device);
  poison(d.out);  // NaN bytes: a row nobody writes shows up
  poison(d.ws);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());  // before any work on a non-blocking stream
  return d;
}

// The CUDA backend on device copies, out poisoned first.
OwnedTensor run_gpu(const Varlen& v, Call call, const PagedAttentionOptions& o = {}) {
  DeviceCopies d = to_device(v.p);
  if (call == Call::prefill)
    prefill_attention(d.out, d.q, d.kc, d.vc, d.bt, d.si, d.cl, v.p.scale, v.p.max_context_len,
                      v.qsl);
  else
    paged_attention(d.out, d.q, d.kc, d.vc, d.bt, d.si, d.cl, v.p.scale, v.p.max_context_len, d.ws,
                    v.qsl, o);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  return testing::to_host(d.out);
}

void expect_matches_oracle(Rng& rng, DType dt, const Shape& s, const std::vector<Seg>& segs,
                           Call call = Call::prefill) {
  const Varlen v = make_varlen(rng, dt, s, segs);
  SCOPED_TRACE(label(dt, s, v.what.c_str()));
  EXPECT_CLOSE(run_gpu(v, call), oracle(v.p), default_tolerance(dt));
}

constexpr DType kHalfTypes[] = {DType::f16, DType::bf16};

// ---------------------------------------------------------------- no GPU needed

TEST(PrefillAttentionOp, AvailableForHalfTypesAndTheCompiledHeadSizesOnly) {
  // Every head size of the decode kernels, 32 and 192 included: a prefill segment never has to
  // fall back to them for want of a kernel.
  for (int h : cuda::kPagedAttentionHeadSizes) {
    EXPECT_TRUE(prefill_attention_available(DType::f16, h)) << h;
    EXPECT_TRUE(prefill_attention_available(DType::bf16, h)) << h;
    EXPECT_FALSE(prefill_attention_available(DType::f32, h)) << "fp32 has no f16 MMA: " << h;
  }
  EXPECT_TRUE(prefill_attention_available(DType::f16, 32));
  EXPECT_TRUE(prefill_attention_available(DType::bf16, 192));
  for (int h : {16, 48, 72, 120}) EXPECT_FALSE(prefill_attention_available(DType::f16, h)) << h;
}

TEST(PrefillAttentionOp, SharedMemoryOfEveryHeadSizeFitsAnSm90Block) {
  // Q tile + 2 K + 2 V tiles of 64 rows, each row head_size + 8 elements of 2 bytes.
  EXPECT_EQ(cuda::prefill_attention_shared_bytes(64), size_t{5 * 64 * 72 * 2});
  EXPECT_EQ(cuda::prefill_attention_shared_bytes(256), size_t{5 * 64 * 264 * 2});
  EXPECT_EQ(cuda::prefill_attention_shared_bytes(32), size_t{5 * 64 * 40 * 2});
  EXPECT_EQ(cuda::prefill_attention_shared_bytes(192), size_t{5 * 64 * 200 * 2});
  const size_t limit = device_limits_or_nominal().max_dynamic_shared_bytes();
  for (int h : cuda::kPagedAttentionHeadSizes)
    EXPECT_LE(cuda::prefill_attention_shared_bytes(h), limit) << "head_size " << h;
}

TEST(PrefillAttentionOp, TilesAreCeilOfEachSegmentOver64) {
  const cuda::PrefillSegment segs[] = {{0, 1}, {1, 64}, {65, 65}, {130, 0}, {130, 2048}};
  EXPECT_EQ(cuda::prefill_attention_num_tiles(segs), 1 + 1 + 2 + 0 + 32);
}

TEST(PrefillAttentionOp, CpuBackendWritesOnlyTheSegmentsRows) {
  Rng rng(1);
  const Shape s{4, 2, 64, 16};
  Varlen v = make_varlen(rng, DType::f32, s, {{0, 10}, {5, 20}, {0, 7}});
  const OwnedTensor want = oracle(v.p);
  OwnedTensor out(v.p.query.sizes(), DType::f32, Storage::host);
  poison(out);
  const std::vector<int32_t> qsl = {10, 30};  // the middle sequence only
  prefill_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables, v.p.seq_idx,
                    v.p.context_lens, v.p.scale, v.p.max_context_len, qsl);
  const int64_t row = s.num_heads * s.head_size;
  for (int64_t t = 0; t < 37; ++t)
    for (int64_t i = 0; i < row; ++i) {
      const float got = out.ptr<float>()[t * row + i];
      if (t >= 10 && t < 30)
        ASSERT_NEAR(got, want.ptr<float>()[t * row + i], 1e-5) << "token " << t << " elem " << i;
      else
        ASSERT_TRUE(std::isnan(got)) << "token " << t << " outside the segment was written";
    }
}

TEST(PrefillAttentionOp, VarlenCallOnTheCpuMatchesTheOracle) {
  Rng rng(2);
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    const Shape s{4, 1, 64, 8};
    Varlen v = make_varlen(rng, dt, s, {{100, 37}, {49, 1}, {0, 20}, {3, 1}}, /*padding_rows=*/2);
    OwnedTensor out(v.p.query.sizes(), dt, Storage::host);
    poison(out);
    paged_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables, v.p.seq_idx,
                    v.p.context_lens, v.p.scale, v.p.max_context_len, Tensor(), v.qsl);
    EXPECT_CLOSE(out, oracle(v.p), default_tolerance(dt)) << dtype_name(dt);
  }
}

TEST(PrefillAttentionOp, RejectsQueryStartLocPastTheTokens) {
  Rng rng(3);
  Varlen v = make_varlen(rng, DType::f32, Shape{4, 2, 64, 16}, {{0, 10}});
  OwnedTensor out(v.p.query.sizes(), DType::f32, Storage::host);
  const std::vector<int32_t> qsl = {0, 11};
  EXPECT_INVALID_NAMING(
      prefill_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables,
                        v.p.seq_idx, v.p.context_lens, v.p.scale, v.p.max_context_len, qsl),
      "query_start_loc[1] = 11 outside [0, num_tokens = 10]");
  EXPECT_INVALID_NAMING(
      paged_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables, v.p.seq_idx,
                      v.p.context_lens, v.p.scale, v.p.max_context_len, Tensor(), qsl),
      "query_start_loc[1] = 11");
  const std::vector<int32_t> neg = {-1, 10};
  EXPECT_INVALID_NAMING(
      prefill_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables,
                        v.p.seq_idx, v.p.context_lens, v.p.scale, v.p.max_context_len, neg),
      "query_start_loc[0] = -1");
}

TEST(PrefillAttentionOp, RejectsQueryStartLocOutOfOrder) {
  Rng rng(4);
  Varlen v = make_varlen(rng, DType::f32, Shape{4, 2, 64, 16}, {{0, 10}, {0, 10}});
  OwnedTensor out(v.p.query.sizes(), DType::f32, Storage::host);
  const std::vector<int32_t> qsl = {0, 12, 10, 20};
  EXPECT_INVALID_NAMING(
      prefill_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables,
                        v.p.seq_idx, v.p.context_lens, v.p.scale, v.p.max_context_len, qsl),
      "query_start_loc[2] = 10 is smaller than query_start_loc[1] = 12");
}

TEST(PrefillAttentionOp, RejectsASegmentThatSpansTwoSequences) {
  Rng rng(5);
  Varlen v = make_varlen(rng, DType::f32, Shape{4, 2, 64, 16}, {{0, 10}, {0, 10}});
  OwnedTensor out(v.p.query.sizes(), DType::f32, Storage::host);
  const std::vector<int32_t> qsl = {0, 12, 20};  // rows 10, 11 are sequence 1's
  EXPECT_INVALID_NAMING(
      prefill_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables,
                        v.p.seq_idx, v.p.context_lens, v.p.scale, v.p.max_context_len, qsl),
      "seq_idx[10] = 1 differs from seq_idx[0] = 0: segment 0 of query_start_loc");
}

TEST(PrefillAttentionOp, RejectsAnEmptyQueryStartLoc) {
  Rng rng(6);
  Varlen v = make_varlen(rng, DType::f32, Shape{4, 2, 64, 16}, {{0, 10}});
  OwnedTensor out(v.p.query.sizes(), DType::f32, Storage::host);
  EXPECT_INVALID_NAMING(
      prefill_attention(out, v.p.query, v.p.key_cache, v.p.value_cache, v.p.block_tables,
                        v.p.seq_idx, v.p.context_lens, v.p.scale, v.p.max_context_len, {}),
      "query_start_loc: empty");
}

TEST(PrefillAttentionOp, ContiguousBatchMakesOneSegmentPerChunkPaddingIncluded) {
  const ContiguousBatch b = make_contiguous_batch(
      {{{1, 2, 3, 4, 5}, 0, 0, false}, {{0, 0, 0}, 0, 0, true}, {{7, 8}, 4, 1, false}}, 16, 4,
      Device::cpu);
  EXPECT_EQ(b.batch.query_start_loc, (std::vector<int32_t>{0, 5, 8, 10}));
}

TEST(PrefillAttentionOp, InputBatchRecordsWhereEachScheduledSequenceLies) {
  // A prefill of 6 tokens, then a decode: query_start_loc {0, 6, 7}; a decode-only step padded
  // to a graph bucket of 4 covers only its real token (the padding takes the decode kernel).
  RuntimeLimits lim;
  lim.max_num_tokens = 32;
  lim.max_num_seqs = 4;
  lim.max_model_len = 64;
  lim.kv.block_size = 4;
  lim.kv.num_blocks = 32;
  BlockManager bm(32, 0, 4, lim.max_blocks_per_seq());
  Sequence a, b;
  a.id = 0;
  a.prompt = {5, 6, 7, 8, 9, 10};
  a.status = SeqStatus::running;
  b.id = 1;
  b.prompt = {1, 2, 3};
  b.output = {4};
  b.num_computed_tokens = 3;
  b.status = SeqStatus::running;
  bm.allocate(b, 1);
  bm.allocate(a, 6);
  SchedulerOutput out;
  out.seqs = {{&a, 6, true, true}, {&b, 1, false, true}};
  out.num_prefills = 1;
  out.num_batched_tokens = 7;
  InputBatch ib(lim, Device::cpu);
  EXPECT_EQ(ib.prepare(out, bm, 1, false, nullptr).query_start_loc,
            (std::vector<int32_t>{0, 6, 7}));
  SchedulerOutput dec;
  dec.seqs = {{&b, 1, false, true}};
  EXPECT_EQ(ib.prepare(dec, bm, 0, false, nullptr, /*pad_to=*/4, /*ctx=*/32).query_start_loc,
            (std::vector<int32_t>{0, 1}));
}

// ---------------------------------------------------------------- the kernel (GPU)

TEST(PrefillAttentionKernel, PromptLengthsAroundTheTileMatchTheOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(11);
  for (DType dt : kHalfTypes)
    for (const Shape& s : {Shape{8, 2, 64, 16}, Shape{4, 4, 128, 32}}) {
      for (int32_t len : {1, 15, 16, 17, 63, 64, 65, 100})
        expect_matches_oracle(rng, dt, s, {{0, len}});
      // All of them in one launch (a varlen batch: tiles of different sequences side by side).
      expect_matches_oracle(rng, dt, s, {{0, 1}, {0, 15}, {0, 16}, {0, 17}, {0, 64}, {0, 100}});
    }
}

TEST(PrefillAttentionKernel, Prompt2048MatchesTheOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(12);
  expect_matches_oracle(rng, DType::f16, Shape{8, 2, 64, 16}, {{0, 2048}});
  expect_matches_oracle(rng, DType::bf16, Shape{4, 1, 128, 32}, {{0, 2048}});
}

TEST(PrefillAttentionKernel, ChunkedPrefillAttendsToTheCachedPrefixAndItself) {
  DAY18_REQUIRE_GPU();
  Rng rng(13);
  // Chunk boundaries that are not multiples of the block size nor of the 64-key tile.
  for (DType dt : kHalfTypes)
    for (int64_t bs : {8, 16, 32})
      expect_matches_oracle(rng, dt, Shape{8, 2, 64, bs},
                            {{100, 37}, {45, 19}, {7, 70}, {130, 1}, {1, 64}});
}

TEST(PrefillAttentionKernel, GqaRatios1And4And8MatchTheOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(14);
  for (DType dt : kHalfTypes)
    for (int64_t kvh : {8, 2, 1})
      expect_matches_oracle(rng, dt, Shape{8, kvh, 64, 16}, {{0, 90}, {33, 40}});
}

TEST(PrefillAttentionKernel, EveryHeadSizeAndBlockSizeMatchesTheOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(15);
  for (DType dt : kHalfTypes)
    for (int64_t hs : cuda::kPagedAttentionHeadSizes)
      for (int64_t bs : {8, 16, 32})
        expect_matches_oracle(rng, dt, Shape{4, 2, hs, bs}, {{0, 70}, {30, 33}});
}

TEST(PrefillAttentionKernel, HeadSizes32And192GqaAndMhaMatchTheOracle) {
  // The smallest head (4 16-byte chunks a row, K = 2 k-steps, Q in registers) and 192 (Q read
  // from shared memory, 24 O n-blocks, 125 KB of shared memory): GQA 4 and MHA, every block
  // size, prompts of 1 and 17 keys (a 16-token block + 1), around the 64-row tile, and chunks
  // after a cached prefix, all in one launch.
  DAY18_REQUIRE_GPU();
  Rng rng(20);
  for (DType dt : kHalfTypes)
    for (int64_t hs : {32, 192})
      for (auto [h, kvh] : {std::pair<int64_t, int64_t>{8, 2}, {4, 4}})
        for (int64_t bs : {8, 16, 32}) {
          const Shape s{h, kvh, hs, bs};
          expect_matches_oracle(rng, dt, s, {{0, 1}});
          expect_matches_oracle(rng, dt, s, {{0, 17}});
          expect_matches_oracle(rng, dt, s,
                                {{0, 1}, {0, 17}, {0, 64}, {0, 65}, {100, 37}, {16, 1}, {3, 130}});
        }
}

TEST(PrefillAttentionKernel, RowsOutsideTheSegmentsAreNotWritten) {
  DAY18_REQUIRE_GPU();
  Rng rng(16);
  const Shape s{4, 2, 64, 16};
  Varlen v = make_varlen(rng, DType::f16, s, {{0, 5}, {10, 80}, {0, 9}});
  const OwnedTensor want = oracle(v.p);
  v.qsl = {5, 85};  // the middle sequence only
  const OwnedTensor got = run_gpu(v, Call::prefill);
  const int64_t row = s.num_heads * s.head_size;
  const Tensor mid_got = got.view().slice0(5, 85), mid_want = want.view().slice0(5, 85);
  EXPECT_CLOSE(mid_got, mid_want, default_tolerance(DType::f16));
  OwnedTensor poisoned(v.p.query.sizes(), DType::f16, Storage::host);
  poison(poisoned);
  for (auto [a, b] : {std::pair<int64_t, int64_t>{0, 5}, {85, 94}})
    EXPECT_EQ(std::memcmp(got.view().slice0(a, b).data(), poisoned.view().slice0(a, b).data(),
                          static_cast<size_t>((b - a) * row * 2)),
              0)
        << "rows [" << a << ", " << b << ") lie outside every segment and must keep the poison";
}

TEST(PrefillAttentionKernel, BadDeviceMetadataGivesNanRowsAndPaddingGivesZeros) {
  DAY18_REQUIRE_GPU();
  Rng rng(17);
  const Shape s{4, 2, 64, 16};
  const Varlen v = make_varlen(rng, DType::f16, s, {{0, 40}, {0, 8}});
  const OwnedTensor want = oracle(v.p);
  // Corrupt the metadata where the host cannot see it (device copies): row 3 claims sequence 1,
  // row 5 a context past the block table's capacity, row 7 is padding (context 0).
  OwnedTensor si = testing::copy_of(v.p.seq_idx, Storage::host),
              cl = testing::copy_of(v.p.context_lens, Storage::host);
  si.ptr<int32_t>()[3] = 1;
  cl.ptr<int32_t>()[5] = static_cast<int32_t>(v.p.block_tables.sizes()[1] * s.block_size + 1);
  cl.ptr<int32_t>()[7] = 0;
  DeviceCopies d = to_device(v.p);
  copy_tensor(d.si.view(), si.view());
  copy_tensor(d.cl.view(), cl.view());
  prefill_attention(d.out, d.q, d.kc, d.vc, d.bt, d.si, d.cl, v.p.scale, v.p.max_context_len,
                    v.qsl);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  const OwnedTensor got = testing::to_host(d.out);
  const int64_t row = s.num_heads * s.head_size;
  auto at = [&](int64_t t, int64_t i) { return to_float(got.ptr<__half>()[t * row + i]); };
  for (int64_t i = 0; i < row; ++i) {
    ASSERT_TRUE(std::isnan(at(3, i))) << "row 3 (seq_idx differs from its segment's) elem " << i;
    ASSERT_TRUE(std::isnan(at(5, i))) << "row 5 (context past capacity) elem " << i;
    ASSERT_EQ(at(7, i), 0.f) << "row 7 (context 0) elem " << i;
  }
  for (int64_t t : {0, 1, 2, 4, 6, 8, 39, 40, 47}) {
    SCOPED_TRACE(detail::concat("row ", t, " (metadata intact)"));
    EXPECT_CLOSE(got.view().slice0(t, t + 1), want.view().slice0(t, t + 1),
                 default_tolerance(DType::f16));
  }
}

TEST(PrefillAttentionKernel, CapturedInACudaGraphMatchesTheOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(18);
  const Varlen v = make_varlen(rng, DType::bf16, Shape{8, 2, 64, 16}, {{20, 50}, {0, 130}});
  DeviceCopies d = to_device(v.p);
  Stream stream;
  testing::capture_and_replay(
      stream,
      [&] {
        prefill_attention(d.out, d.q, d.kc, d.vc, d.bt, d.si, d.cl, v.p.scale, v.p.max_context_len,
                          v.qsl, stream);
      },
      [&] { poison(d.out, stream); });
  EXPECT_CLOSE(d.out, oracle(v.p), default_tolerance(DType::bf16));
}

TEST(PrefillAttentionKernel, Float32IsRejectedNamingTheDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(19);
  const Varlen v = make_varlen(rng, DType::f32, Shape{4, 2, 64, 16}, {{0, 20}});
  DeviceCopies d = to_device(v.p);
  EXPECT_INVALID_NAMING(prefill_attention(d.out, d.q, d.kc, d.vc, d.bt, d.si, d.cl, v.p.scale,
                                          v.p.max_context_len, v.qsl),
                        "query: float32 has no tensor-core prefill kernel");
}

// ---------------------------------------------------------------- the varlen op (GPU)

TEST(PagedAttentionVarlen, MixedStepOfPrefillsAndDecodesMatchesTheOracle) {
  DAY18_REQUIRE_GPU();
  Rng rng(21);
  // prefill (chunk after a cached prefix) | decode | prefill | decode | decode | a short
  // chunk of 8 (decode kernel: not more than kPrefillMinQueryTokens) | 3 padding rows.
  for (DType dt : testing::kAllFloatDtypes) {
    const Varlen v = make_varlen(rng, dt, Shape{8, 2, 64, 16},
                                 {{100, 37}, {49, 1}, {0, 64}, {299, 1}, {0, 1}, {20, 8}}, 3);
    SCOPED_TRACE(label(dt, Shape{8, 2, 64, 16}, v.what.c_str()));
    EXPECT_CLOSE(run_gpu(v, Call::varlen), oracle(v.p), default_tolerance(dt));
  }
}

TEST(PagedAttentionVarlen, HeadSizes32And192MixedStepMatchesTheOracle) {
  // The varlen op at the new head sizes: prefill segments take the tensor-core kernel (fp16,
  // bf16; fp32 stays on the decode kernels), decodes and a short chunk the decode kernel.
  DAY18_REQUIRE_GPU();
  Rng rng(24);
  for (DType dt : testing::kAllFloatDtypes)
    for (int64_t hs : {32, 192})
      for (auto [h, kvh] : {std::pair<int64_t, int64_t>{8, 2}, {4, 4}}) {
        const Shape s{h, kvh, hs, 16};
        const Varlen v = make_varlen(rng, dt, s, {{0, 17}, {16, 1}, {40, 70}, {0, 1}, {5, 8}},
                                     /*padding_rows=*/2);
        SCOPED_TRACE(label(dt, s, v.what.c_str()));
        EXPECT_CLOSE(run_gpu(v, Call::varlen), oracle(v.p), default_tolerance(dt));
      }
}

TEST(PagedAttentionVarlen, DecodeOnlyStepLaunchesExactlyTheDecodeCall) {
  DAY18_REQUIRE_GPU();
  Rng rng(22);
  // Every segment one token (a decode step, what CUDA graphs capture), then a forced version
  // with prefill segments: both must be bit-identical to the call without query_start_loc.
  for (DType dt : kHalfTypes) {
    const Varlen dec = make_varlen(rng, dt, Shape{8, 2, 64, 16}, {{10, 1}, {300, 1}, {0, 1}}, 2);
    DeviceCopies d = to_device(dec.p);
    paged_attention(d.out, d.q, d.kc, d.vc, d.bt, d.si, d.cl, dec.p.scale, dec.p.max_context_len,
                    d.ws);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(testing::bitwise_equal(run_gpu(dec, Call::varlen), d.out)) << "decode-only step";

    const Varlen pre = make_varlen(rng, dt, Shape{8, 2, 64, 16}, {{0, 100}, {5, 1}});
    PagedAttentionOptions v2;
    v2.version = PagedAttentionVersion::v2;
    DeviceCopies e = to_device(pre.p);
    paged_attention(e.out, e.q, e.kc, e.vc, e.bt, e.si, e.cl, pre.p.scale, pre.p.max_context_len,
                    e.ws, v2);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(testing::bitwise_equal(run_gpu(pre, Call::varlen, v2), e.out))
        << "a forced version runs every row through it";
  }
}

// ---------------------------------------------------------------- the model (GPU)

RuntimeLimits model_limits() {
  RuntimeLimits l;
  l.max_num_tokens = 512;
  l.max_num_seqs = 8;
  l.max_model_len = 512;
  l.kv.block_size = 16;
  l.kv.num_blocks = 8 * (512 / 16);
  return l;
}

// logits of the batch with its query_start_loc (prefill kernel) and without (decode kernel).
std::pair<OwnedTensor, OwnedTensor> both_paths(LlamaModel& m, const std::vector<SequenceChunk>& c) {
  ContiguousBatch b = make_contiguous_batch(c, m.limits().kv.block_size,
                                            m.limits().max_blocks_per_seq(), Device::cuda);
  OwnedTensor with = testing::to_host(m.forward(b.batch));
  b.batch.query_start_loc.clear();
  OwnedTensor without = testing::to_host(m.forward(b.batch));
  return {std::move(with), std::move(without)};
}

TEST(PrefillModel, PrefillAndChunkedStepLogitsMatchTheDecodeKernelPath) {
  DAY18_REQUIRE_GPU();
  for (DType dt : kHalfTypes) {
    SCOPED_TRACE(dtype_name(dt));
    LlamaModel m = LlamaModel::from_preset("tiny", dt, Device::cuda, 3, model_limits());
    Rng rng(23);
    auto tokens = [&](int n) {
      std::vector<int32_t> t(n);
      for (int32_t& x : t) x = static_cast<int32_t>(rng.randint(0, m.config().vocab_size - 1));
      return t;
    };
    // Step 1: prompts of 200, 9, 3 and 64 tokens. Step 2: a chunk of 37 after the first
    // prompt's 200, a decode of the second, a chunk of 20 after the fourth's 64.
    const std::vector<SequenceChunk> step1 = {{tokens(200), 0, 0, false},
                                              {tokens(9), 0, 1, false},
                                              {tokens(3), 0, 2, false},
                                              {tokens(64), 0, 3, false}};
    const std::vector<SequenceChunk> step2 = {
        {tokens(37), 200, 0, false}, {tokens(1), 9, 1, false}, {tokens(20), 64, 3, false}};
    // fp32 logits of a half-precision model: the two attention kernels round differently
    // (P to half in the prefill kernel); an indexing bug would be off by O(1), not 3e-2.
    const Tolerance tol = dt == DType::f16 ? Tolerance{3e-2, 3e-2} : Tolerance{8e-2, 8e-2};
    for (const auto* step : {&step1, &step2}) {
      auto [with, without] = both_paths(m, *step);
      EXPECT_CLOSE(with, without, tol) << (step == &step1 ? "prefill step" : "chunked step");
    }
  }
}

}  // namespace
}  // namespace day18
