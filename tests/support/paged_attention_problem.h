// PagedAttention test problems, shared by the suites of the optimized kernels
// (test_paged_attention.cpp) and of the readable one (test_paged_attention_readable.cpp):
// a random paged KV cache with shuffled block tables, the CPU oracle's answer, and a run of the
// CUDA backend through the public call.
//
//   Problem p = make_problem(rng, DType::f16, Shape{8, 2, 128, 16}, {300, 17});
//   EXPECT_CLOSE(run_gpu(p, {PagedAttentionVersion::v1}), oracle(p), default_tolerance(dt));
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "engine/core/compare.h"
#include "engine/core/memory.h"
#include "engine/core/rng.h"
#include "engine/ops/attention.h"
#include "tests/support/test_support.h"

namespace day18::testing {

struct Shape {
  int64_t num_heads = 8, num_kv_heads = 2, head_size = 128, block_size = 16;
};

// A paged problem in host memory: K/V blocks of each sequence scattered over random physical
// block ids (block tables are shuffled, never 0, 1, 2, ...), unused table entries random too.
struct Problem {
  OwnedTensor query, key_cache, value_cache, block_tables, seq_idx, context_lens;
  int max_context_len = 0;
  double scale = 0;
};

// decode: one token per sequence attending its whole length. prefill: one token per position p
// of each sequence, attending positions 0..p (context_len = p + 1).
inline Problem make_problem(Rng& rng, DType dt, const Shape& s,
                            const std::vector<int32_t>& seq_lens, bool prefill = false) {
  Problem p;
  const int64_t bs = s.block_size, num_seqs = static_cast<int64_t>(seq_lens.size());
  const int32_t longest = *std::max_element(seq_lens.begin(), seq_lens.end());
  const int64_t max_blocks = (longest + bs - 1) / bs + 1;
  int64_t used = 0;
  for (int32_t l : seq_lens) used += (l + bs - 1) / bs;
  const int64_t num_blocks = used + 3;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = num_blocks - 1; i > 0; --i) std::swap(perm[i], perm[rng.randint(0, i)]);
  p.block_tables = OwnedTensor({num_seqs, max_blocks}, DType::i32, Storage::host);
  int64_t next = 0;
  for (int64_t q = 0; q < num_seqs; ++q)
    for (int64_t j = 0; j < max_blocks; ++j)
      p.block_tables.ptr<int32_t>()[q * max_blocks + j] =
          j < (seq_lens[q] + bs - 1) / bs ? perm[next++]
                                          : static_cast<int32_t>(rng.randint(0, num_blocks - 1));
  std::vector<int32_t> si, cl;
  for (int64_t q = 0; q < num_seqs; ++q) {
    if (prefill) {
      for (int32_t pos = 0; pos < seq_lens[q]; ++pos) {
        si.push_back(static_cast<int32_t>(q));
        cl.push_back(pos + 1);
      }
    } else {
      si.push_back(static_cast<int32_t>(q));
      cl.push_back(seq_lens[q]);
    }
  }
  const int64_t T = static_cast<int64_t>(si.size());
  p.seq_idx = OwnedTensor({T}, DType::i32, Storage::host);
  p.context_lens = OwnedTensor({T}, DType::i32, Storage::host);
  std::copy(si.begin(), si.end(), p.seq_idx.ptr<int32_t>());
  std::copy(cl.begin(), cl.end(), p.context_lens.ptr<int32_t>());
  p.query = rng.normal_tensor({T, s.num_heads, s.head_size}, dt, 0, 1);
  p.key_cache = rng.normal_tensor({num_blocks, s.num_kv_heads, bs, s.head_size}, dt, 0, 1);
  p.value_cache = rng.normal_tensor({num_blocks, s.num_kv_heads, bs, s.head_size}, dt, 0, 1);
  p.max_context_len = longest;
  p.scale = 1.0 / std::sqrt(static_cast<double>(s.head_size));
  return p;
}

// The CPU backend's answer (the oracle, engine/cpu/paged_attention), out poisoned first.
inline OwnedTensor oracle(const Problem& p) {
  OwnedTensor out(p.query.sizes(), p.query.dtype(), Storage::host);
  poison(out);
  paged_attention(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx,
                  p.context_lens, p.scale, p.max_context_len, Tensor());
  return out;
}

struct GpuRun {
  PagedAttentionVersion version = PagedAttentionVersion::automatic;
  int partition_size = 0;  // 0: auto (v2 through paged_attention), else forced
  int num_threads = 128;
};

// Runs the CUDA backend through paged_attention() on device copies of the problem; out and
// workspace poisoned first.
inline OwnedTensor run_gpu(const Problem& p, const GpuRun& r = {}) {
  const OwnedTensor q = p.query.to(Storage::device), kc = p.key_cache.to(Storage::device),
                    vc = p.value_cache.to(Storage::device), bt = p.block_tables.to(Storage::device),
                    si = p.seq_idx.to(Storage::device), cl = p.context_lens.to(Storage::device);
  OwnedTensor out(p.query.sizes(), p.query.dtype(), Storage::device);
  poison(out);
  PagedAttentionOptions o;
  o.version = r.version;
  o.partition_size = r.partition_size;
  o.num_threads = r.num_threads;
  const PagedAttentionPlan plan = plan_paged_attention(q.sizes()[0], q.sizes()[1], kc.sizes()[1],
                                                       q.sizes()[2], p.max_context_len, o);
  OwnedTensor ws({static_cast<int64_t>(std::max<size_t>(plan.workspace_bytes, 1))}, DType::u8,
                 Storage::device);
  poison(ws);  // 0xFF bytes: NaN floats, so an unwritten partition shows up
  paged_attention(out, q, kc, vc, bt, si, cl, p.scale, p.max_context_len, ws, o);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  return to_host(out);
}

inline std::string label(DType dt, const Shape& s, const char* what) {
  return detail::concat(dtype_name(dt), " heads ", s.num_heads, "/", s.num_kv_heads, " head_size ",
                        s.head_size, " block ", s.block_size, " ", what);
}

}  // namespace day18::testing
