// Rotary family benchmarks.
//
//   BM_rotary_embedding/<neox|gptj>/<dtype>/tokens:4096/heads:32/kv_heads:8/head:128
//       a 4096-token prefill of Llama-3-8B's attention shape.
//       bytes = query and key read + written, positions read, the cos/sin rows touched
//       (4096 distinct positions x rot_dim); pct_of_P.
//   BM_rotary_and_cache/<dtype>/tokens:<1|64|4096>/heads:32/kv_heads:8/head:<128|64>
//       one layer's rotate + cache + pack, neox, q/k/v read as column blocks of the fused qkv
//       output (as LlamaModel::attention does). head 128 = Llama-3-8B, head 64 = Llama-3.2-1B.
//       tokens 1 and 64: decode steps (one token per sequence, scattered positions and slots);
//       4096: a prefill (positions 0..4095). Cache: 2 x the step's tokens, at least 256 blocks
//       of 16. bytes = query read + query_out written, key and value read + written into the
//       cache, positions and slot_mapping read, the cos/sin rows touched; pct_of_P.
//   BM_rotary_and_cache/unfused/<dtype>/tokens:<n>/...
//       what it replaces, timed the same way with the same bytes: rotary_embedding (in place on
//       the qkv views), copy_rows (one cudaMemcpy2DAsync packing q), reshape_and_cache. Three
//       launches back to back on one stream; the gap is what the fusion saves (at decode sizes,
//       mostly the per-kernel fixed cost).
#include <algorithm>
#include <numeric>
#include <string>

#include "engine/benchmarks/bench_support.h"
#include "engine/core/rng.h"
#include "engine/ops/cache.h"
#include "engine/ops/rotary.h"
#include "engine/runtime/model_kernels.h"

namespace day18 {
namespace {

void bm_rotary(benchmark::State& st, bool neox, DType dt) {
  if (!bench::require_gpu(st)) return;
  const int64_t tokens = 4096, heads = 32, kv_heads = 8, head = 128, max_position = 8192;
  Rng rng(4);
  OwnedTensor q = rng.normal_tensor({tokens, heads, head}, dt, 0, 1, Storage::device);
  OwnedTensor k = rng.normal_tensor({tokens, kv_heads, head}, dt, 0, 1, Storage::device);
  OwnedTensor cs = make_cos_sin_cache(max_position, head, 500000.0, dt, Storage::device);
  OwnedTensor pos_h({tokens}, DType::i64, Storage::host);
  for (int64_t t = 0; t < tokens; ++t) pos_h.ptr<int64_t>()[t] = t;  // one prefill
  OwnedTensor pos = pos_h.to(Storage::device);
  const double cs_rows = double(tokens) * double(head) * double(dtype_size(dt));
  const double bytes = 2.0 * double(q.nbytes() + k.nbytes()) + double(pos.nbytes()) + cs_rows;
  bench::run_timed(st, bytes, 0, [&](cudaStream_t s) {
    rotary_embedding(pos, q, k, cs, head, neox, /*check_positions=*/false, s);
  });
}

const char* tag(DType dt) {
  return dt == DType::f32 ? "fp32" : dt == DType::f16 ? "fp16" : "bf16";
}

void bm_rotary_and_cache(benchmark::State& st, DType dt, int64_t tokens, int64_t head, bool fused) {
  if (!bench::require_gpu(st)) return;
  const int64_t heads = 32, kv_heads = 8, block_size = 16, max_position = 8192;
  const int64_t blocks = std::max<int64_t>(2 * tokens / block_size, 256);
  const int64_t width = (heads + 2 * kv_heads) * head;
  Rng rng(5);
  OwnedTensor qkv = rng.normal_tensor({tokens, width}, dt, 0, 1, Storage::device);
  auto column_block = [&](int64_t col, int64_t n) {
    return Tensor(static_cast<char*>(qkv.data()) + col * int64_t(dtype_size(dt)), dt,
                  {tokens, n, head}, {width, head, 1}, Device::cuda);
  };
  const Tensor q = column_block(0, heads), k = column_block(heads * head, kv_heads),
               v = column_block((heads + kv_heads) * head, kv_heads);
  OwnedTensor query_out({tokens, heads, head}, dt, Storage::device);
  OwnedTensor kc({blocks, kv_heads, block_size, head}, dt, Storage::device);
  OwnedTensor vc({blocks, kv_heads, block_size, head}, dt, Storage::device);
  OwnedTensor cs = make_cos_sin_cache(max_position, head, 500000.0, dt, Storage::device);
  const bool prefill = tokens > 256;
  std::vector<int64_t> ids(blocks * block_size);
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = 0; i < tokens; ++i)  // distinct scattered slots
    std::swap(ids[i], ids[rng.randint(i, int64_t(ids.size()) - 1)]);
  OwnedTensor pos_h({tokens}, DType::i64, Storage::host),
      slots_h({tokens}, DType::i64, Storage::host);
  for (int64_t t = 0; t < tokens; ++t) {
    pos_h.ptr<int64_t>()[t] = prefill ? t : rng.randint(0, max_position - 1);
    slots_h.ptr<int64_t>()[t] = ids[t];
  }
  OwnedTensor pos = pos_h.to(Storage::device), slots = slots_h.to(Storage::device);
  const double esz = double(dtype_size(dt));
  const double bytes = 2.0 * double(tokens * heads * head) * esz +
                       2.0 * 2.0 * double(tokens * kv_heads * head) * esz +
                       double(pos.nbytes() + slots.nbytes()) + double(tokens * head) * esz;
  // The process-wide index records are made (with a sync) on first use: not inside the timing.
  (void)take_index_errors("positions");
  (void)take_index_errors("slot_mapping");
  if (fused) {
    bench::run_timed(st, bytes, 0, [&](cudaStream_t s) {
      rotary_and_cache(query_out, q, k, v, kc, vc, slots, pos, cs, head, /*is_neox=*/true,
                       /*check_positions=*/false, /*check_slots=*/false, s);
    });
  } else {
    const Tensor q_rows(q.data(), dt, {tokens, heads * head}, {width, 1}, Device::cuda);
    const Tensor out_rows = query_out.view().view({tokens, heads * head});
    bench::run_timed(st, bytes, 0, [&](cudaStream_t s) {
      rotary_embedding(pos, q, k, cs, head, /*is_neox=*/true, /*check_positions=*/false, s);
      copy_rows(out_rows, q_rows, s);
      reshape_and_cache(k, v, kc, vc, slots, /*check_slots=*/false, s);
    });
  }
}

const bool registered = [] {
  for (bool neox : {true, false})
    for (DType dt : {DType::f16, DType::bf16, DType::f32}) {
      const std::string name = std::string("BM_rotary_embedding/") + (neox ? "neox/" : "gptj/") +
                               (dt == DType::f32   ? "fp32"
                                : dt == DType::f16 ? "fp16"
                                                   : "bf16") +
                               "/tokens:4096/heads:32/kv_heads:8/head:128";
      benchmark::RegisterBenchmark(name.c_str(),
                                   [=](benchmark::State& st) { bm_rotary(st, neox, dt); })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  for (bool fused : {true, false})
    for (DType dt : {DType::bf16, DType::f16, DType::f32}) {
      if (!fused && dt == DType::f32) continue;
      for (int64_t head : {128, 64})
        for (int64_t tokens : {1, 64, 4096}) {
          const std::string name = std::string("BM_rotary_and_cache/") + (fused ? "" : "unfused/") +
                                   tag(dt) + "/tokens:" + std::to_string(tokens) +
                                   "/heads:32/kv_heads:8/head:" + std::to_string(head);
          benchmark::RegisterBenchmark(
              name.c_str(),
              [=](benchmark::State& st) { bm_rotary_and_cache(st, dt, tokens, head, fused); })
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
        }
    }
  return true;
}();

}  // namespace
}  // namespace day18
