// BM_paged_attention: decode attention over a paged fp16 (or bf16) KV cache, Llama-3-8B-like heads
// (32 query heads, 8 KV heads, head_size 128), 16-token blocks at shuffled physical ids.
//
// (head_size 128 unless the name says head:64.)
//   BM_paged_attention/target_b64_ctx4096        B=64, ctx 4096 (target: >= 90% of P)
//   BM_paged_attention/target_b1_ctx4096         B=1,  ctx 4096 (target: <= 20 us)
//   BM_paged_attention/batch:B/ctx:C/version:V/threads:T   the sweep (V: 0 auto = mma, 1 v1, 2 v2,
//                                                          3 readable)
//   BM_paged_attention/batch:B/ctx:C/version:2/partition:P v2 partition sizes
//   BM_paged_attention/batch:B/ctx:C/version:4/partition:P mma partition sizes
//   BM_paged_attention/head:64/batch:B/ctx:C/max_ctx:M/version:V  llama-1b decode shapes
//   BM_paged_attention/bf16/<name>               bf16 at the target shapes and B=256, ctx 8192
//                                                (the names above are fp16)
//   BM_paged_attention/head:D/batch:B/ctx:4096/version:0   the head sizes with the extreme
//                                     thread mappings (32; 192, a quarter of each warp idle)
//                                     beside 256, same heads: compare their % of P
//
// bytes = K and V of every sequence read once + query + out (GQA heads share their KV head).
//
// BM_prefill_attention: causal prefill of S prompts of L tokens each in ONE step, llama-1b heads
// (32 query, 8 KV), head_size 64 (or 128 where named), 16-token blocks at shuffled ids:
//   BM_prefill_attention/dtype:T/head:D/seqs:S/len:L/kernel:prefill  the tensor-core kernel
//   BM_prefill_attention/dtype:T/head:D/seqs:S/len:L/kernel:decode   the same step through the
//                                                                    decode kernels (old path)
// FLOPs counted causally: row p of a prompt attends p + 1 keys, 4 * head_size FLOPs per (row,
// key, head) (q.k and p.v), so a prompt of L tokens is 4 H D L (L + 1) / 2. Counters: TFLOP/s,
// gemm_TFLOP/s (a cuBLAS GEMM 8192 x 8192 x 8192 of the same dtype on random data, measured once
// per process in the same run: the tensor-core rate the kernel is compared with) and pct_of_gemm.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "engine/benchmarks/bench_support.h"
#include "engine/core/rng.h"
#include "engine/kernels/paged_attention.h"
#include "engine/kernels/paged_attention_mma.h"
#include "engine/kernels/paged_attention_readable.h"
#include "engine/kernels/prefill_attention.h"
#include "engine/ops/attention.h"
#include "engine/ops/linear.h"
#include "engine/profiling/timing.h"
#include "engine/profiling/cost_model.h"

namespace day18 {
namespace {

constexpr int64_t kHeads = 32, kKvHeads = 8, kBlock = 16;

// Fills a device fp16 / bf16 buffer with hash-derived values in [-1, 1) (gigabytes: too slow on
// the host).
template <typename T>
__global__ void fill_random_values(T* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    p[i] = from_float<T>(static_cast<float>(x & 0xffff) / 32768.f - 1.f);
  }
}

void fill_any(const OwnedTensor& t, uint32_t seed) {
  if (t.dtype() == DType::f16)
    fill_random_values<<<1024, 256>>>(t.ptr<__half>(), t.numel(), seed);
  else
    fill_random_values<<<1024, 256>>>(t.ptr<__nv_bfloat16>(), t.numel(), seed);
  DAY18_CHECK_LAUNCH();
}

// max_ctx: the max_context_len the launch is planned for (0 = ctx). A CUDA graph captured for a
// context bucket plans for the bucket (e.g. 256) and replays with shorter real contexts.
void BM_paged_attention(benchmark::State& st, int64_t batch, int ctx, PagedAttentionVersion version,
                        int threads, int partition = 0, int64_t head_size = 128, int max_ctx = 0,
                        DType dt = DType::f16) {
  if (!bench::require_gpu(st)) return;
  if (max_ctx == 0) max_ctx = ctx;
  const int64_t blocks_per_seq = (std::max(ctx, max_ctx) + kBlock - 1) / kBlock;
  const int64_t num_blocks = batch * blocks_per_seq;
  OwnedTensor query({batch, kHeads, head_size}, dt, Storage::device);
  OwnedTensor out({batch, kHeads, head_size}, dt, Storage::device);
  OwnedTensor key_cache({num_blocks, kKvHeads, kBlock, head_size}, dt, Storage::device);
  OwnedTensor value_cache({num_blocks, kKvHeads, kBlock, head_size}, dt, Storage::device);
  fill_any(query, 1);
  fill_any(key_cache, 2);
  fill_any(value_cache, 3);
  // Shuffled physical blocks: a real cache after some allocate/free churn.
  OwnedTensor bt_h({batch, blocks_per_seq}, DType::i32, Storage::host);
  OwnedTensor si_h({batch}, DType::i32, Storage::host), cl_h({batch}, DType::i32, Storage::host);
  std::iota(bt_h.ptr<int32_t>(), bt_h.ptr<int32_t>() + num_blocks, 0);
  Rng rng(18);
  for (int64_t i = num_blocks - 1; i > 0; --i)
    std::swap(bt_h.ptr<int32_t>()[i], bt_h.ptr<int32_t>()[rng.randint(0, i)]);
  for (int64_t b = 0; b < batch; ++b) {
    si_h.ptr<int32_t>()[b] = static_cast<int32_t>(b);
    cl_h.ptr<int32_t>()[b] = ctx;
  }
  const OwnedTensor bt = bt_h.to(Storage::device), si = si_h.to(Storage::device),
                    cl = cl_h.to(Storage::device);
  DAY18_CUDA_CHECK(
      cudaDeviceSynchronize());  // fills ran on the legacy stream; run_timed uses its own

  PagedAttentionOptions o;
  o.version = version;
  o.num_threads = threads;
  o.partition_size = partition;
  const PagedAttentionPlan plan =
      plan_paged_attention(batch, kHeads, kKvHeads, head_size, max_ctx, o);
  OwnedTensor ws({static_cast<int64_t>(std::max<size_t>(plan.workspace_bytes, 1))}, DType::u8,
                 Storage::device);
  const PagedAttentionWorkspace w = split_paged_attention_workspace(plan, ws);
  const float scale = 1.f / std::sqrt(static_cast<float>(head_size));
  // One validated call first (errors such as a v1 context too long surface here).
  try {
    paged_attention(out, query, key_cache, value_cache, bt, si, cl, scale, max_ctx, ws, o);
  } catch (const InvalidArgument& e) {
    st.SkipWithError(e.what());
    return;
  }
  // K and V of every cached token once, q read, out written; q.k and p.v (the cost model's count).
  const OpCost c =
      cost::paged_attention(batch, kHeads, kKvHeads, head_size, batch * ctx, dt);
  const double bytes = c.bytes, flops = c.flops;
  st.SetLabel(detail::concat(paged_attention_version_name(plan.version),
                             plan.version == PagedAttentionVersion::v2 ||
                                     plan.version == PagedAttentionVersion::mma
                                 ? detail::concat(" partition ", plan.partition_size)
                                 : detail::concat(" threads ", plan.num_threads)));
  bench::run_timed(st, bytes, flops, [&](cudaStream_t s) {
    if (plan.version == PagedAttentionVersion::v1)
      cuda::paged_attention_v1(out, query, key_cache, value_cache, bt, si, cl, scale, max_ctx,
                               plan.num_threads, s);
    else if (plan.version == PagedAttentionVersion::mma)
      cuda::paged_attention_mma(out, w.exp_sums, w.max_logits, w.tmp_out, query, key_cache,
                                value_cache, bt, si, cl, scale, max_ctx, plan.partition_size,
                                plan.max_num_partitions, s);
    else if (plan.version == PagedAttentionVersion::readable)
      cuda::paged_attention_readable(out, query, key_cache, value_cache, bt, si, cl, scale, max_ctx,
                                     s);
    else
      cuda::paged_attention_v2(out, w.exp_sums, w.max_logits, w.tmp_out, query, key_cache,
                               value_cache, bt, si, cl, scale, max_ctx, plan.partition_size, s);
  });
}

void reg(const std::string& name, int64_t batch, int ctx, PagedAttentionVersion v, int threads,
         int partition = 0, int64_t head_size = 128, int max_ctx = 0, DType dt = DType::f16) {
  benchmark::RegisterBenchmark(("BM_paged_attention/" + name).c_str(),
                               [=](benchmark::State& st) {
                                 BM_paged_attention(st, batch, ctx, v, threads, partition,
                                                    head_size, max_ctx, dt);
                               })
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  using V = PagedAttentionVersion;
  reg("target_b64_ctx4096", 64, 4096, V::automatic, 128);
  reg("target_b1_ctx4096", 1, 4096, V::automatic, 128);
  // bf16 at the shapes issue 12 judges (the same targets as fp16: same bytes, same kernels).
  reg("bf16/target_b64_ctx4096", 64, 4096, V::automatic, 128, 0, 128, 0, DType::bf16);
  reg("bf16/target_b1_ctx4096", 1, 4096, V::automatic, 128, 0, 128, 0, DType::bf16);
  reg("bf16/batch:256/ctx:8192/version:0/threads:128", 256, 8192, V::automatic, 128, 0, 128, 0,
      DType::bf16);
  // llama-1b decode (head 64): short real contexts, planned for themselves or for a graph's
  // context bucket (max 256 / 1024).
  for (int64_t b : {1, 64})
    for (auto [ctx, max_ctx] : {std::pair{48, 48}, {48, 256}, {200, 256}, {1000, 1024}})
      for (auto [v, name] : {std::pair{V::automatic, 0}, {V::v1, 1}, {V::v2, 2}, {V::readable, 3}})
        reg(detail::concat("head:64/batch:", b, "/ctx:", ctx, "/max_ctx:", max_ctx,
                           "/version:", name),
            b, ctx, v, 128, 0, 64, max_ctx);
  // Head 192 maps a warp to a key with 8 lanes idle (paged_attention.cu): its bytes per second
  // against head 256's (every lane busy, same instructions per key) and head 32's.
  for (int64_t d : {32, 192, 256})
    for (int64_t b : {1, 64})
      reg(detail::concat("head:", d, "/batch:", b, "/ctx:4096/version:0"), b, 4096, V::automatic,
          128, 0, d);
  for (int64_t b : {1, 16, 64, 256})
    for (int ctx : {512, 2048, 8192})
      for (auto [v, name] : {std::pair{V::automatic, 0}, {V::v1, 1}, {V::v2, 2}, {V::readable, 3}})
        reg(detail::concat("batch:", b, "/ctx:", ctx, "/version:", name, "/threads:128"), b, ctx, v,
            128);
  for (auto [b, ctx] : {std::pair<int64_t, int>{64, 4096}, {256, 2048}, {16, 4096}})
    for (int t : {64, 128, 256, 512})
      reg(detail::concat("batch:", b, "/ctx:", ctx, "/version:1/threads:", t), b, ctx, V::v1, t);
  // mma partition sizes (auto picks one; these show the trade-off: more partitions fill the GPU
  // and shorten the last wave, fewer amortize each block's start-up and the reduce).
  for (auto [b, ctx, parts] :
       {std::tuple<int64_t, int, std::vector<int>>{1, 4096, {64, 128, 256}},
        {64, 2048, {256, 512, 1024}},
        {64, 4096, {256, 512, 1024, 2048}},
        {256, 8192, {512, 1024, 2048}}})
    for (int ps : parts)
      reg(detail::concat("batch:", b, "/ctx:", ctx, "/version:4/partition:", ps), b, ctx, V::mma,
          128, ps);
  // v2 partition sizes (auto picks one; these show the trade-off).
  for (auto [b, ctx, parts] :
       {std::tuple<int64_t, int, std::vector<int>>{1, 4096, {32, 64, 128, 256}},
        {16, 4096, {64, 128, 256, 512}},
        {64, 4096, {128, 256, 512, 1024, 2048}},
        {256, 8192, {512, 1024, 2048}}})
    for (int ps : parts)
      reg(detail::concat("batch:", b, "/ctx:", ctx, "/version:2/partition:", ps), b, ctx, V::v2,
          128, ps);
  return true;
}();

// ---------------------------------------------------------------- prefill

// TFLOP/s of a cuBLAS GEMM [8192, 8192] x [8192, 8192]^T of dtype dt on random data: median of 10
// after 3 warm-ups, measured once per dtype and process.
double gemm_tflops(DType dt) {
  static double cached[2] = {0, 0};
  double& r = cached[dt == DType::f16 ? 0 : 1];
  if (r > 0) return r;
  constexpr int64_t n = 8192;
  OwnedTensor a({n, n}, dt, Storage::device), w({n, n}, dt, Storage::device),
      c({n, n}, dt, Storage::device);
  fill_any(a, 7);
  fill_any(w, 8);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  Stream stream;
  TimingOptions o;
  o.warmup = 3;
  o.repeats = 10;
  o.flush_l2 = false;  // 384 MB of operands: the L2 cannot hold them anyway
  o.stream = stream;
  const Stats t = time_gpu([&](cudaStream_t s) { linear(c, a, w, LinearAlgo::cublas, s); }, o);
  r = 2.0 * n * n * n / (t.median * 1e-3) / 1e12;
  return r;
}

void BM_prefill_attention(benchmark::State& st, DType dt, int64_t head_size, int64_t seqs,
                          int64_t len, bool prefill_kernel) {
  if (!bench::require_gpu(st)) return;
  const int64_t T = seqs * len, per_seq = (len + kBlock - 1) / kBlock, num_blocks = seqs * per_seq;
  OwnedTensor query({T, kHeads, head_size}, dt, Storage::device);
  OwnedTensor out({T, kHeads, head_size}, dt, Storage::device);
  OwnedTensor key_cache({num_blocks, kKvHeads, kBlock, head_size}, dt, Storage::device);
  OwnedTensor value_cache({num_blocks, kKvHeads, kBlock, head_size}, dt, Storage::device);
  fill_any(query, 1);
  fill_any(key_cache, 2);
  fill_any(value_cache, 3);
  OwnedTensor bt_h({seqs, per_seq}, DType::i32, Storage::host);
  OwnedTensor si_h({T}, DType::i32, Storage::host), cl_h({T}, DType::i32, Storage::host);
  std::iota(bt_h.ptr<int32_t>(), bt_h.ptr<int32_t>() + num_blocks, 0);
  Rng rng(19);
  for (int64_t i = num_blocks - 1; i > 0; --i)
    std::swap(bt_h.ptr<int32_t>()[i], bt_h.ptr<int32_t>()[rng.randint(0, i)]);
  std::vector<int32_t> qsl = {0};
  for (int64_t s = 0; s < seqs; ++s) {
    for (int64_t p = 0; p < len; ++p) {
      si_h.ptr<int32_t>()[s * len + p] = static_cast<int32_t>(s);
      cl_h.ptr<int32_t>()[s * len + p] = static_cast<int32_t>(p + 1);
    }
    qsl.push_back(static_cast<int32_t>((s + 1) * len));
  }
  const OwnedTensor bt = bt_h.to(Storage::device), si = si_h.to(Storage::device),
                    cl = cl_h.to(Storage::device);
  const int max_ctx = static_cast<int>(len);
  const size_t ws_bytes =
      paged_attention_workspace_bound(T, kHeads, kKvHeads, head_size, max_ctx);
  OwnedTensor ws({static_cast<int64_t>(std::max<size_t>(ws_bytes, 1))}, DType::u8,
                 Storage::device);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_size));
  const double gemm = gemm_tflops(dt);
  auto launch = [&](cudaStream_t s) {
    if (prefill_kernel)
      prefill_attention(out, query, key_cache, value_cache, bt, si, cl, scale, max_ctx, qsl, s);
    else
      paged_attention(out, query, key_cache, value_cache, bt, si, cl, scale, max_ctx, ws, {}, s);
  };
  try {
    launch(nullptr);  // one validated call first
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  } catch (const InvalidArgument& e) {
    st.SkipWithError(e.what());
    return;
  }
  const double keys = static_cast<double>(seqs) * len * (len + 1) / 2.0;  // causal (row, key)s
  const double flops = 4.0 * kHeads * head_size * keys;
  const double bytes =
      2.0 * T * kHeads * head_size * 2 + 2.0 * seqs * len * kKvHeads * head_size * 2;
  st.SetLabel(prefill_kernel ? "prefill (tensor cores)" : "decode kernels (v1/v2)");
  bench::run_timed(st, bytes, flops, launch);
  if (st.counters.count("TFLOP/s")) {
    st.counters["gemm_TFLOP/s"] = gemm;
    st.counters["pct_of_gemm"] = 100.0 * st.counters["TFLOP/s"].value / gemm;
  }
}

const bool registered_prefill = [] {
  // The issue's shapes (4 x 2048, 64 x 128) and a few between; head 128 and bf16 for fp16's
  // companions. The decode-kernel rows are the old path the prefill kernel replaces.
  struct Case {
    DType dt;
    int64_t head, seqs, len;
  };
  const Case cases[] = {{DType::f16, 64, 4, 2048}, {DType::f16, 64, 64, 128},
                        {DType::f16, 64, 1, 8192}, {DType::f16, 64, 16, 512},
                        {DType::f16, 128, 4, 2048}, {DType::bf16, 64, 4, 2048},
                        {DType::bf16, 128, 4, 2048}};
  for (const Case& c : cases)
    for (bool pk : {true, false}) {
      if (!pk && c.len > 2048) continue;  // the old path at 8192: seconds per iteration
      const std::string name = detail::concat(
          "BM_prefill_attention/dtype:", dtype_name(c.dt), "/head:", c.head, "/seqs:", c.seqs,
          "/len:", c.len, "/kernel:", pk ? "prefill" : "decode");
      benchmark::RegisterBenchmark(name.c_str(),
                                   [=](benchmark::State& st) {
                                     BM_prefill_attention(st, c.dt, c.head, c.seqs, c.len, pk);
                                   })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  return true;
}();

}  // namespace
}  // namespace day18
