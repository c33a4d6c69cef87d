// KV-cache benchmarks.
//
//   BM_reshape_and_cache/<dtype>/tokens:4096/kv_heads:8/head:128
//       bytes = K and V read + written for the tokens written, + slot_mapping; pct_of_P.
//   BM_reshape_and_cache/memcpy_ceiling/<dtype>/tokens:<n>/...
//       the honest ceiling: ONE cudaMemcpyAsync (device to device) of the same K+V bytes, timed
//       the same way. A ~34 MB move lasts ~11 us at P, so the fixed launch + ramp + tail cost
//       caps any kernel of this size well below 100% of P. H100, fp16, 4096 tokens: the kernel
//       16.7 us (67.5-67.8% of P), the memcpy 16.3-16.5 us (68.5-69.2%); ncu: kernel body
//       12.3-13.0 us with a clean L2, 15.2-15.9 us after the flush's dirty lines (17 MB of
//       write-backs). Loading K/V evict-first (__ldcs) changed nothing measurable (+-0.1%).
//   BM_copy_blocks/<dtype>/layers:32/pairs:64        (32 KiB blocks, every layer, one launch)
//   BM_swap_blocks/<out|in>/<layout>/<automatic|zero_copy|copy_engine>
//   BM_swap_blocks_naive/<out|in>/<random|contiguous>  THE TRAP: one synchronous copy per block
//       256 blocks x 32 KiB (8 KV heads x block 16 x head 128, fp16), between a 1024-block GPU
//       cache and a 1024-block pinned CPU cache; layout = random (256 runs of 1 block),
//       runs:<n> (runs of n = 4, 8, 16, 64 consecutive blocks at random places: 128 KiB-2 MiB),
//       contiguous (one run of 256). Every benchmark uses the same two caches, so strategies
//       compare on the same pinned allocation. bytes = 8 MiB across the host link;
//       pct_of_pinned = share of the pinned D2H (out) / H2D (in) copy bandwidth measured by the
//       probe in this process (one 256 MiB cudaMemcpyAsync).
#include <numeric>
#include <string>

#include "engine/benchmarks/bench_support.h"
#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/ops/cache.h"

namespace day18 {
namespace {

std::vector<int64_t> distinct_ids(Rng& rng, int64_t n, int64_t count) {
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = 0; i < count; ++i) std::swap(ids[i], ids[rng.randint(i, n - 1)]);
  ids.resize(count);
  return ids;
}

OwnedTensor i64_tensor(const std::vector<int64_t>& v, std::vector<int64_t> shape, Storage s) {
  OwnedTensor h(shape, DType::i64, Storage::host);
  std::copy(v.begin(), v.end(), h.ptr<int64_t>());
  return s == Storage::host ? std::move(h) : h.to(s);
}

const char* tag(DType dt) {
  return dt == DType::f32 ? "fp32" : dt == DType::f16 ? "fp16" : "bf16";
}

void bm_reshape_and_cache(benchmark::State& st, DType dt, int64_t tokens) {
  if (!bench::require_gpu(st)) return;
  const int64_t heads = 8, head = 128, block_size = 16;
  const int64_t blocks = 2 * tokens / block_size;  // cache twice the step's tokens
  Rng rng(1);
  OwnedTensor key = rng.normal_tensor({tokens, heads, head}, dt, 0, 1, Storage::device);
  OwnedTensor value = rng.normal_tensor({tokens, heads, head}, dt, 0, 1, Storage::device);
  OwnedTensor kc({blocks, heads, block_size, head}, dt, Storage::device);
  OwnedTensor vc({blocks, heads, block_size, head}, dt, Storage::device);
  // Scattered slots, as a batch of many sequences produces.
  OwnedTensor slots =
      i64_tensor(distinct_ids(rng, blocks * block_size, tokens), {tokens}, Storage::device);
  const double bytes = 2.0 * double(key.nbytes() + value.nbytes()) + double(slots.nbytes());
  bench::run_timed(st, bytes, 0, [&](cudaStream_t s) {
    reshape_and_cache(key, value, kc, vc, slots, /*check_slots=*/false, s);
  });
}

// The same K + V bytes moved by one device-to-device cudaMemcpyAsync: what the DMA path reaches
// for a move of this size, launch and tail included (slot_mapping's bytes counted too, as above).
void bm_reshape_and_cache_memcpy(benchmark::State& st, DType dt, int64_t tokens) {
  if (!bench::require_gpu(st)) return;
  const int64_t heads = 8, head = 128;
  OwnedTensor src({2 * tokens, heads, head}, dt, Storage::device);
  OwnedTensor dst({2 * tokens, heads, head}, dt, Storage::device);
  const double bytes = 2.0 * double(src.nbytes()) + double(tokens * sizeof(int64_t));
  bench::run_timed(st, bytes, 0, [&](cudaStream_t s) {
    DAY18_CUDA_CHECK(
        cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(), cudaMemcpyDeviceToDevice, s));
  });
}

void bm_copy_blocks(benchmark::State& st, DType dt) {
  if (!bench::require_gpu(st)) return;
  const int64_t layers = 32, blocks = 256, heads = 8, block_size = 16, head = 128, pairs = 64;
  Rng rng(2);
  std::vector<OwnedTensor> k, v;
  std::vector<Tensor> kv, vv;
  for (int64_t l = 0; l < layers; ++l) {
    k.emplace_back(std::vector<int64_t>{blocks, heads, block_size, head}, dt, Storage::device);
    v.emplace_back(std::vector<int64_t>{blocks, heads, block_size, head}, dt, Storage::device);
    kv.push_back(k.back().view());
    vv.push_back(v.back().view());
  }
  const std::vector<int64_t> ids = distinct_ids(rng, blocks, 2 * pairs);
  std::vector<int64_t> m;
  for (int64_t p = 0; p < pairs; ++p) m.insert(m.end(), {ids[p], ids[pairs + p]});
  OwnedTensor map = i64_tensor(m, {pairs, 2}, Storage::device);
  const double block_bytes = double(k[0].nbytes()) / double(blocks);
  const double bytes = 2.0 * 2.0 * block_bytes * double(pairs * layers) + double(map.nbytes());
  bench::run_timed(st, bytes, 0, [&](cudaStream_t s) { copy_blocks(kv, vv, map, false, s); });
}

constexpr int64_t kSwapBlocks = 1024, kSwapPairs = 256;

// The two caches every swap benchmark shares (allocated once: pinned allocations differ in
// speed, which would blur a comparison of strategies made on different ones).
struct SwapCaches {
  OwnedTensor gpu, cpu;
};
SwapCaches& swap_caches() {
  static SwapCaches* c = [] {
    Rng rng(3);
    const int64_t heads = 8, block_size = 16, head = 128;
    auto* s = new SwapCaches;  // never destroyed: outlives static CUDA teardown
    s->gpu = rng.normal_tensor({kSwapBlocks, heads, block_size, head}, DType::f16, 0, 1,
                               Storage::device);
    s->cpu = OwnedTensor({kSwapBlocks, heads, block_size, head}, DType::f16, Storage::pinned);
    return s;
  }();
  return *c;
}

struct SwapSetup {
  Tensor gpu, cpu;
  OwnedTensor map;
  double bytes = 0;
};

// kSwapPairs pairs in runs of `run` consecutive blocks, each run at a random run-aligned place
// of either cache (run = 1: scattered blocks; run = kSwapPairs: one contiguous range).
SwapSetup make_swap(bool out, int64_t run) {
  Rng rng(3 + uint64_t(run));
  SwapSetup s;
  s.gpu = swap_caches().gpu.view();
  s.cpu = swap_caches().cpu.view();
  const int64_t runs = kSwapPairs / run, places = kSwapBlocks / run;
  const std::vector<int64_t> g = distinct_ids(rng, places, runs),
                             c = distinct_ids(rng, places, runs);
  std::vector<int64_t> m;
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < run; ++i) {
      const int64_t gi = g[r] * run + i, ci = c[r] * run + i;
      if (out)
        m.insert(m.end(), {gi, ci});
      else
        m.insert(m.end(), {ci, gi});
    }
  s.map = i64_tensor(m, {kSwapPairs, 2}, Storage::host);
  s.bytes = double(s.gpu.nbytes()) / double(kSwapBlocks) * double(kSwapPairs);
  return s;
}

void bm_swap(benchmark::State& st, bool out, int64_t run, SwapStrategy strategy) {
  if (!bench::require_gpu(st)) return;
  SwapSetup s = make_swap(out, run);
  const Tensor& src = out ? s.gpu : s.cpu;
  const Tensor& dst = out ? s.cpu : s.gpu;
  const double ref = out ? bench::pinned_d2h_bandwidth() : bench::pinned_h2d_bandwidth();
  bench::run_timed(
      st, s.bytes, 0, [&](cudaStream_t stream) { swap_blocks(src, dst, s.map, strategy, stream); },
      ref, "pct_of_pinned");
}

void bm_swap_naive(benchmark::State& st, bool out, int64_t run) {
  if (!bench::require_gpu(st)) return;
  SwapSetup s = make_swap(out, run);
  const Tensor& src = out ? s.gpu : s.cpu;
  const Tensor& dst = out ? s.cpu : s.gpu;
  const double ref = out ? bench::pinned_d2h_bandwidth() : bench::pinned_h2d_bandwidth();
  bench::run_timed(
      st, s.bytes, 0, [&](cudaStream_t stream) { swap_blocks_naive(src, dst, s.map, stream); }, ref,
      "pct_of_pinned");
}

const bool registered = [] {
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  for (DType dt : {DType::f16, DType::bf16, DType::f32})
    for (int64_t tokens : {4096, 2048}) {
      if (tokens != 4096 && dt != DType::f16) continue;  // the tour's size, fp16 only
      const std::string shape =
          std::string(tag(dt)) + "/tokens:" + std::to_string(tokens) + "/kv_heads:8/head:128";
      reg("BM_reshape_and_cache/" + shape,
          [dt, tokens](benchmark::State& st) { bm_reshape_and_cache(st, dt, tokens); });
      reg("BM_reshape_and_cache/memcpy_ceiling/" + shape,
          [dt, tokens](benchmark::State& st) { bm_reshape_and_cache_memcpy(st, dt, tokens); });
    }
  reg("BM_copy_blocks/fp16/layers:32/pairs:64",
      [](benchmark::State& st) { bm_copy_blocks(st, DType::f16); });
  for (bool out : {true, false})
    for (int64_t run : {int64_t(1), int64_t(4), int64_t(8), int64_t(16), int64_t(64), kSwapPairs}) {
      const std::string layout = run == 1            ? "random"
                                 : run == kSwapPairs ? "contiguous"
                                                     : "runs:" + std::to_string(run);
      const std::string base = std::string(out ? "out" : "in") + "/" + layout;
      for (SwapStrategy strat :
           {SwapStrategy::automatic, SwapStrategy::zero_copy, SwapStrategy::copy_engine})
        reg("BM_swap_blocks/" + base + "/" + swap_strategy_name(strat),
            [=](benchmark::State& st) { bm_swap(st, out, run, strat); });
      if (run == 1 || run == kSwapPairs)
        reg("BM_swap_blocks_naive/" + base,
            [=](benchmark::State& st) { bm_swap_naive(st, out, run); });
    }
  return true;
}();

}  // namespace
}  // namespace day18
