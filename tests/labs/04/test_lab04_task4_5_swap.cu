// Lab 04, tasks 4 and 5: the batched swap_blocks (engine/kernels/swap_copy.cpp).
//   Task 4 (CPU): coalesce_block_runs, a block mapping as runs of consecutive blocks.
//   Task 5 (GPU): swap_runs_copy_engine, every run in one cudaMemcpyBatchAsync; checked through
//                 the public op (swap_blocks with SwapStrategy::copy_engine) against the CPU
//                 swap, bit for bit over the whole destination; it must not wait; and, under
//                 scripts/lab check, timed against the seed's per-block synchronous loop.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "engine/cpu/cache.h"
#include "engine/ops/cache.h"
#include "tests/labs/04/lab04.h"

namespace day18 {
namespace {

using lab04::describe;
using testing::bitwise_equal;

OwnedTensor mapping(const std::vector<std::pair<int64_t, int64_t>>& pairs) {
  OwnedTensor m({int64_t(pairs.size()), 2}, DType::i64, Storage::host);
  for (size_t i = 0; i < pairs.size(); ++i) {
    m.ptr<int64_t>()[2 * i] = pairs[i].first;
    m.ptr<int64_t>()[2 * i + 1] = pairs[i].second;
  }
  return m;
}

void expect_runs(const std::vector<std::pair<int64_t, int64_t>>& pairs,
                 const std::vector<BlockRun>& want) {
  const std::vector<BlockRun> got = coalesce_block_runs(mapping(pairs));
  EXPECT_TRUE(got == want) << "runs of " << pairs.size() << " pairs (src -> dst) x count:\n"
                           << "  expected " << describe(want) << "\n       got " << describe(got);
}

// ============================================================ Task 4: runs (CPU)

TEST(Lab04_Task4_SwapRuns, ConsecutivePairsMergeIntoOneRun) {
  expect_runs({{3, 10}, {4, 11}, {5, 12}}, {{3, 10, 3}});
}

TEST(Lab04_Task4_SwapRuns, ARunBreaksWhenEitherSideJumps) {
  // (1, 5): src follows 0 but dst jumps; (7, 7): both jump; (8, 9): src follows 7, dst jumps.
  expect_runs({{0, 0}, {1, 5}, {2, 6}, {7, 7}, {8, 9}},
              {{0, 0, 1}, {1, 5, 2}, {7, 7, 1}, {8, 9, 1}});
}

TEST(Lab04_Task4_SwapRuns, TheMappingsOrderIsKept) {
  // Descending ids are consecutive blocks too, but copying them as one run would need the run
  // to start at 4: the mapping's order is kept and nothing is merged backwards.
  expect_runs({{5, 5}, {4, 4}}, {{5, 5, 1}, {4, 4, 1}});
}

TEST(Lab04_Task4_SwapRuns, APreemptedSequenceSwapsOutInTwoRuns) {
  // A sequence's blocks 7, 8, 9, 2, 3 (its block table) go to free CPU blocks 0..4.
  expect_runs({{7, 0}, {8, 1}, {9, 2}, {2, 3}, {3, 4}}, {{7, 0, 3}, {2, 3, 2}});
}

TEST(Lab04_Task4_SwapRuns, OnePairAndNoPairs) {
  expect_runs({{42, 0}}, {{42, 0, 1}});
  expect_runs({}, {});
}

TEST(Lab04_Task4_SwapRuns, TheRunsCoverEveryPairOnceInOrder) {
  // 300 pairs, in stretches of 1 to 6 consecutive blocks at random places.
  Rng rng(4);
  std::vector<std::pair<int64_t, int64_t>> pairs;
  int64_t s = 0, d = 1000;
  while (pairs.size() < 300) {
    const int64_t len = rng.randint(1, 6);
    s += rng.randint(2, 50);
    d += rng.randint(2, 50);
    for (int64_t i = 0; i < len && pairs.size() < 300; ++i) pairs.push_back({s + i, d + i});
    s += len;
    d += len;
  }
  const std::vector<BlockRun> runs = coalesce_block_runs(mapping(pairs));
  std::vector<std::pair<int64_t, int64_t>> back;
  for (const BlockRun& r : runs)
    for (int64_t i = 0; i < r.count; ++i) back.push_back({r.src + i, r.dst + i});
  ASSERT_EQ(back.size(), pairs.size()) << "the runs hold " << back.size() << " blocks, not "
                                       << pairs.size() << ": " << describe(runs);
  EXPECT_TRUE(back == pairs) << "expanding the runs does not give the mapping back";
  for (size_t i = 1; i < runs.size(); ++i)
    EXPECT_FALSE(runs[i].src == runs[i - 1].src + runs[i - 1].count &&
                 runs[i].dst == runs[i - 1].dst + runs[i - 1].count)
        << "runs " << i - 1 << " and " << i << " could be one run: " << describe(runs);
}

// ============================================================ Task 5: batched (GPU)

// Llama-3-8B's cache blocks: 8 kv heads x 16 tokens x 128, fp16 = 32 KiB a block.
constexpr int64_t kHeads = 8, kBlockSize = 16, kHead = 128;

OwnedTensor random_cache(int64_t blocks, Storage st, uint64_t seed) {
  Rng rng(seed);
  return rng.normal_tensor({blocks, kHeads, kBlockSize, kHead}, DType::f16, 0, 1).to(st);
}

// A mapping of `n` pairs into distinct blocks, with runs of 1 to 8 consecutive blocks.
std::vector<std::pair<int64_t, int64_t>> runs_mapping(Rng& rng, int64_t n, int64_t src_blocks,
                                                      int64_t dst_blocks) {
  std::vector<int64_t> starts_s(src_blocks / 8), starts_d(dst_blocks / 8);
  std::iota(starts_s.begin(), starts_s.end(), 0);
  std::iota(starts_d.begin(), starts_d.end(), 0);
  for (size_t i = starts_s.size() - 1; i > 0; --i)
    std::swap(starts_s[i], starts_s[rng.randint(0, int64_t(i))]);
  for (size_t i = starts_d.size() - 1; i > 0; --i)
    std::swap(starts_d[i], starts_d[rng.randint(0, int64_t(i))]);
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (size_t g = 0; g < starts_s.size() && g < starts_d.size() && int64_t(pairs.size()) < n; ++g) {
    const int64_t len = rng.randint(1, 8);
    for (int64_t i = 0; i < len && int64_t(pairs.size()) < n; ++i)
      pairs.push_back({starts_s[g] * 8 + i, starts_d[g] * 8 + i});
  }
  return pairs;
}

// swap_blocks(copy_engine) from src to dst vs the CPU swap on host copies, whole dst bitwise.
void check_swap(const OwnedTensor& src, const OwnedTensor& dst,
                const std::vector<std::pair<int64_t, int64_t>>& pairs, cudaStream_t stream,
                const char* what) {
  SCOPED_TRACE(what);
  const OwnedTensor map = mapping(pairs);
  OwnedTensor want = testing::to_host(dst);
  cpu::swap_blocks(testing::to_host(src), want, map);
  swap_blocks(src, dst, map, SwapStrategy::copy_engine, stream);
  DAY18_CUDA_CHECK(stream ? cudaStreamSynchronize(stream) : cudaDeviceSynchronize());
  EXPECT_TRUE(bitwise_equal(dst, want))
      << pairs.size() << " blocks in " << coalesce_block_runs(map).size()
      << " runs: every block of the mapping must land in its dst block, every other dst block "
         "keep its bytes";
}

TEST(Lab04_Task5_SwapBatched, SwapOutAndInMatchTheCpuSwapBitForBit) {
  DAY18_REQUIRE_GPU();
  Rng rng(5);
  OwnedTensor gpu = random_cache(256, Storage::device, 51);
  OwnedTensor cpu_pool = random_cache(128, Storage::pinned, 52);
  Stream s;
  check_swap(gpu, cpu_pool, runs_mapping(rng, 60, 256, 128), s, "swap out (GPU -> pinned)");
  check_swap(cpu_pool, gpu, runs_mapping(rng, 60, 128, 256), s, "swap in (pinned -> GPU)");
}

TEST(Lab04_Task5_SwapBatched, OneRunAndTheLegacyDefaultStream) {
  DAY18_REQUIRE_GPU();
  OwnedTensor gpu = random_cache(64, Storage::device, 53);
  OwnedTensor cpu_pool = random_cache(64, Storage::pinned, 54);
  Stream s;
  check_swap(gpu, cpu_pool, {{10, 20}, {11, 21}, {12, 22}}, s, "one run of 3 blocks");
  // cudaMemcpyBatchAsync refuses the legacy default stream (nullptr): one copy per run there.
  check_swap(cpu_pool, gpu, {{1, 2}, {5, 3}, {6, 4}, {40, 63}}, nullptr,
             "legacy default stream, 3 runs");
}

TEST(Lab04_Task5_SwapBatched, ReturnsWithoutWaitingForTheCopies) {
  DAY18_REQUIRE_GPU();
  // 20 ms of work ahead of the swap on its stream: a batched swap only enqueues, and returns
  // long before that work (and the copies behind it) is done.
  Rng rng(6);
  OwnedTensor gpu = random_cache(512, Storage::device, 55);
  OwnedTensor cpu_pool = random_cache(512, Storage::pinned, 56);
  const auto pairs = runs_mapping(rng, 256, 512, 512);
  const OwnedTensor map = mapping(pairs);
  OwnedTensor want = testing::to_host(cpu_pool);
  cpu::swap_blocks(testing::to_host(gpu), want, map);
  Stream s;
  lab04::spin(s, 20.0);
  const double ms =
      lab04::host_ms([&] { swap_blocks(gpu, cpu_pool, map, SwapStrategy::copy_engine, s); });
  s.synchronize();
  EXPECT_LT(ms, 10.0) << "swap_blocks took " << ms << " ms to return: it waited for the stream "
                      << "(a synchronize, or a synchronous cudaMemcpy)";
  EXPECT_TRUE(bitwise_equal(cpu_pool, want));
}

TEST(Lab04_Task5_SwapBatched, TimingAgainstTheSeedsPerBlockLoop) {
  DAY18_REQUIRE_GPU();
  if (!lab::timing_requested()) GTEST_SKIP() << "timing runs under scripts/lab check on a GPU";
  // A preemption's swap out: 256 blocks of 32 KiB (8 MiB) in runs of 1-8, and a swap in.
  Rng rng(7);
  OwnedTensor gpu = random_cache(1024, Storage::device, 57);
  OwnedTensor cpu_pool = random_cache(1024, Storage::pinned, 58);
  Stream s;
  for (bool out : {true, false}) {
    const OwnedTensor map = mapping(runs_mapping(rng, 256, 1024, 1024));
    const Tensor& src = out ? gpu.view() : cpu_pool.view();
    const Tensor& dst = out ? cpu_pool.view() : gpu.view();
    const double bytes = 256.0 * (32 << 10);
    const std::string key = std::string(out ? "swap_out" : "swap_in") + "_256x32K_f16";
    const Stats batched = lab::time_and_record(
        key, 0, [&](cudaStream_t st) { swap_blocks(src, dst, map, SwapStrategy::copy_engine, st); },
        s, 10);
    TimingOptions o;
    o.repeats = 5;
    o.stream = s;
    // The seed's loop synchronizes inside: the events still bracket it all on this stream.
    const Stats naive = time_gpu([&](cudaStream_t st) { swap_blocks_naive(src, dst, map, st); }, o);
    std::printf(
        "[ timing   ] %s: batched %.3f ms (%.1f GB/s over the host link), the seed's "
        "per-block loop %.3f ms: %.1fx faster\n",
        key.c_str(), batched.median, bytes / (batched.median * 1e-3) / 1e9, naive.median,
        naive.median / batched.median);
  }
}

}  // namespace
}  // namespace day18
