// KV-cache benchmarks.
//
//   BM_reshape_and_cache/<dtype>/tokens:4096/kv_heads:8/head:128
//       bytes = K and V read + written for the tokens written, + slot_mapping; pct_of_P.
//   BM_copy_blocks/<dtype>/layers:32/pairs:64        (32 KiB blocks, every layer, one launch)
//   BM_swap_blocks/<out|in>/<random|contiguous>/<automatic|zero_copy|copy_engine>
//   BM_swap_blocks_naive/<out|in>/<random|contiguous>  THE TRAP: one synchronous copy per block
//       256 blocks x 32 KiB (8 KV heads x block 16 x head 128, fp16), between a 1024-block GPU
//       cache and a 1024-block pinned CPU cache. bytes = 8 MiB across the host link;
//       pct_of_pinned = share of the pinned D2H (out) / H2D (in) copy bandwidth measured by the
//       probe in this process (one 256 MiB cudaMemcpyAsync).
#include <numeric>
#include <string>

#include "engine/benchmarks/bench_support.h"
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

void bm_reshape_and_cache(benchmark::State& st, DType dt) {
  if (!bench::require_gpu(st)) return;
  const int64_t tokens = 4096, heads = 8, head = 128, block_size = 16;
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

struct SwapSetup {
  OwnedTensor gpu, cpu, map;
  double bytes = 0;
};

SwapSetup make_swap(bool out, bool contiguous) {
  const int64_t blocks = 1024, heads = 8, block_size = 16, head = 128, pairs = 256;
  Rng rng(3);
  SwapSetup s;
  s.gpu = rng.normal_tensor({blocks, heads, block_size, head}, DType::f16, 0, 1, Storage::device);
  s.cpu = OwnedTensor({blocks, heads, block_size, head}, DType::f16, Storage::pinned);
  std::vector<int64_t> g = distinct_ids(rng, blocks, pairs), c = distinct_ids(rng, blocks, pairs);
  if (contiguous)
    for (int64_t p = 0; p < pairs; ++p) g[p] = 100 + p, c[p] = 500 + p;
  std::vector<int64_t> m;
  for (int64_t p = 0; p < pairs; ++p) {
    if (out)
      m.insert(m.end(), {g[p], c[p]});
    else
      m.insert(m.end(), {c[p], g[p]});
  }
  s.map = i64_tensor(m, {pairs, 2}, Storage::host);
  s.bytes = double(s.gpu.nbytes()) / double(blocks) * double(pairs);
  return s;
}

void bm_swap(benchmark::State& st, bool out, bool contiguous, SwapStrategy strategy) {
  if (!bench::require_gpu(st)) return;
  SwapSetup s = make_swap(out, contiguous);
  const Tensor& src = out ? s.gpu.view() : s.cpu.view();
  const Tensor& dst = out ? s.cpu.view() : s.gpu.view();
  const double ref = out ? bench::pinned_d2h_bandwidth() : bench::pinned_h2d_bandwidth();
  bench::run_timed(
      st, s.bytes, 0, [&](cudaStream_t stream) { swap_blocks(src, dst, s.map, strategy, stream); },
      ref, "pct_of_pinned");
}

void bm_swap_naive(benchmark::State& st, bool out, bool contiguous) {
  if (!bench::require_gpu(st)) return;
  SwapSetup s = make_swap(out, contiguous);
  const Tensor& src = out ? s.gpu.view() : s.cpu.view();
  const Tensor& dst = out ? s.cpu.view() : s.gpu.view();
  const double ref = out ? bench::pinned_d2h_bandwidth() : bench::pinned_h2d_bandwidth();
  bench::run_timed(
      st, s.bytes, 0, [&](cudaStream_t stream) { swap_blocks_naive(src, dst, s.map, stream); }, ref,
      "pct_of_pinned");
}

const bool registered = [] {
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  for (DType dt : {DType::f16, DType::bf16, DType::f32}) {
    reg(std::string("BM_reshape_and_cache/") + tag(dt) + "/tokens:4096/kv_heads:8/head:128",
        [dt](benchmark::State& st) { bm_reshape_and_cache(st, dt); });
  }
  reg("BM_copy_blocks/fp16/layers:32/pairs:64",
      [](benchmark::State& st) { bm_copy_blocks(st, DType::f16); });
  for (bool out : {true, false})
    for (bool contiguous : {false, true}) {
      const std::string base =
          std::string(out ? "out" : "in") + "/" + (contiguous ? "contiguous" : "random");
      for (SwapStrategy strat :
           {SwapStrategy::automatic, SwapStrategy::zero_copy, SwapStrategy::copy_engine})
        reg("BM_swap_blocks/" + base + "/" + swap_strategy_name(strat),
            [=](benchmark::State& st) { bm_swap(st, out, contiguous, strat); });
      reg("BM_swap_blocks_naive/" + base,
          [=](benchmark::State& st) { bm_swap_naive(st, out, contiguous); });
    }
  return true;
}();

}  // namespace
}  // namespace day18
