// rotary_embedding benchmarks: a 4096-token prefill of Llama-3-8B's attention shape.
//
//   BM_rotary_embedding/<neox|gptj>/<dtype>/tokens:4096/heads:32/kv_heads:8/head:128
//       bytes = query and key read + written, positions read, the cos/sin rows touched
//       (4096 distinct positions x rot_dim); pct_of_P.
#include <string>

#include "engine/benchmarks/bench_support.h"
#include "engine/core/rng.h"
#include "engine/ops/rotary.h"

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

const bool registered = [] {
  for (bool neox : {true, false})
    for (DType dt : {DType::f16, DType::bf16, DType::f32}) {
      const std::string name = std::string("BM_rotary_embedding/") + (neox ? "neox/" : "gptj/") +
                               (dt == DType::f32   ? "fp32"
                                : dt == DType::f16 ? "fp16"
                                                   : "bf16") +
                               "/tokens:4096/heads:32/kv_heads:8/head:128";
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { bm_rotary(st, neox, dt); })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  return true;
}();

}  // namespace
}  // namespace day18
