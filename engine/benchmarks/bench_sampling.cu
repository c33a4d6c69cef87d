// Sampling benchmarks on the decode step's target shape: batch 256 x vocab 128256 (Llama-3), fp32
// logits = 131 MB, so every pass over the logits costs ~45 us of HBM time on an H100.
//
//   BM_sample/<mix>   the combined sampler; mixes: greedy, top_k50_top_p0.9, top_p0.95, plain
//   BM_sample_small_batch/batch:B/mix:M/blocks:N  decode batches 1, 4, 16: one block per row
//                     (N 1) vs a cluster of 8 blocks per row (N 8; the launcher's up to batch 4)
//   BM_softmax        softmax(logits / T) (read logits, write fp32 probs)
//   BM_argmax         greedy decoding alone
//
// Counters: bytes = the fewest bytes the op must move (logits read once, outputs written);
// passes_per_row = full passes each block made over its row (device counter, see sampling.cu);
// bytes_actual = the logits bytes those passes read. Target: BM_sample <= 1 ms per call.
#include <benchmark/benchmark.h>

#include <memory>

#include "engine/benchmarks/bench_support.h"
#include "engine/core/rng.h"
#include "engine/kernels/sampling.h"
#include "engine/ops/sampling.h"

namespace day18 {
namespace {

constexpr int64_t kBatch = 256;
constexpr int64_t kVocab = 128256;

struct Inputs {
  OwnedTensor logits, temperature, top_k, top_p, seeds, offsets, tokens, probs;
};

enum Mix { kGreedy = 0, kTopK50TopP09 = 1, kTopP095 = 2, kPlain = 3 };
const char* kMixNames[] = {"greedy", "top_k50_top_p0.9", "top_p0.95", "plain"};

// LM-head-like logits: normal with std 2 (fixed seed), made once and kept for every benchmark.
const OwnedTensor& device_logits() {
  static std::unique_ptr<OwnedTensor> t;
  if (!t) {
    Rng rng(18);
    t = std::make_unique<OwnedTensor>(
        rng.normal_tensor({kBatch, kVocab}, DType::f32, 0.0, 2.0, Storage::device));
  }
  return *t;
}

OwnedTensor param(DType dt, double v) {
  OwnedTensor h({kBatch}, dt, Storage::host);
  for (int64_t i = 0; i < kBatch; ++i) host_set(h.view(), i, dt == DType::i64 ? v + i : v);
  return h.to(Storage::device);
}

void BM_sample(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  const Mix mix = static_cast<Mix>(state.range(0));
  state.SetLabel(kMixNames[mix]);
  const Tensor& logits = device_logits().view();
  OwnedTensor t = param(DType::f32, mix == kGreedy ? 0.0 : 1.0);
  OwnedTensor k = param(DType::i32, mix == kTopK50TopP09 ? 50 : 0);
  OwnedTensor p = param(DType::f32, mix == kTopK50TopP09 ? 0.9 : mix == kTopP095 ? 0.95 : 1.0);
  OwnedTensor seeds = param(DType::i64, 1234), offsets = param(DType::i64, 7);
  OwnedTensor tokens({kBatch}, DType::i32, Storage::device);
  int64_t launches = 0;
  cuda::sampling_row_passes_read_and_reset();
  const double bytes = static_cast<double>(logits.nbytes()) + kBatch * (4 + 4 + 4 + 8 + 8 + 4);
  bench::run_timed(state, bytes, 0, [&](cudaStream_t s) {
    sample(tokens, logits, t, k, p, seeds, offsets, s);
    ++launches;
  });
  const double passes =
      static_cast<double>(cuda::sampling_row_passes_read_and_reset()) / (launches * kBatch);
  state.counters["passes_per_row"] = passes;
  state.counters["bytes_actual"] = passes * static_cast<double>(logits.nbytes());
}
BENCHMARK(BM_sample)->ArgName("mix")->DenseRange(0, 3)->UseManualTime()->Unit(
    benchmark::kMicrosecond);

// Decode at small batch: the first `batch` rows, one block per row (blocks 1) or a cluster of 8
// blocks per row (blocks 8, what the launcher picks up to batch 4 on 132 SMs). Same tokens.
void BM_sample_small_batch(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  const int64_t batch = state.range(0);
  const Mix mix = static_cast<Mix>(state.range(1));
  const int blocks = static_cast<int>(state.range(2));
  state.SetLabel(kMixNames[mix]);
  const Tensor logits = device_logits().view().slice0(0, batch);
  const OwnedTensor t = param(DType::f32, mix == kGreedy ? 0.0 : 1.0);
  const OwnedTensor k = param(DType::i32, mix == kTopK50TopP09 ? 50 : 0);
  const OwnedTensor p =
      param(DType::f32, mix == kTopK50TopP09 ? 0.9 : mix == kTopP095 ? 0.95 : 1.0);
  const OwnedTensor seeds = param(DType::i64, 1234), offsets = param(DType::i64, 7);
  auto first = [&](const OwnedTensor& x) { return x.view().slice0(0, batch); };
  OwnedTensor tokens({batch}, DType::i32, Storage::device);
  const double bytes = static_cast<double>(logits.nbytes()) + batch * (4 + 4 + 4 + 8 + 8 + 4);
  bench::run_timed(state, bytes, 0, [&](cudaStream_t s) {
    cuda::sample(tokens, logits, first(t), first(k), first(p), first(seeds), first(offsets), s,
                 blocks);
  });
}
BENCHMARK(BM_sample_small_batch)
    ->ArgNames({"batch", "mix", "blocks"})
    ->ArgsProduct({{1, 4, 16}, {kGreedy, kPlain, kTopK50TopP09}, {1, 8}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_softmax(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  const Tensor& logits = device_logits().view();
  OwnedTensor t = param(DType::f32, 1.0);
  OwnedTensor probs({kBatch, kVocab}, DType::f32, Storage::device);
  const double bytes = 2.0 * static_cast<double>(logits.nbytes());
  bench::run_timed(state, bytes, 0, [&](cudaStream_t s) { softmax(probs, logits, t, s); });
}
BENCHMARK(BM_softmax)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_argmax(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  const Tensor& logits = device_logits().view();
  OwnedTensor tokens({kBatch}, DType::i32, Storage::device);
  bench::run_timed(state, static_cast<double>(logits.nbytes()) + kBatch * 4, 0,
                   [&](cudaStream_t s) { argmax(tokens, logits, s); });
}
BENCHMARK(BM_argmax)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace day18
