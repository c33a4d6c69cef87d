// generated from engine/cpu/paged_attention.cpp by scripts/make_labs.py (lab 02);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
#include "engine/cpu/paged_attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include "engine/core/dtype.h"

namespace day18::cpu {
namespace {

template <typename T>
void paged_attention_impl(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                          const Tensor& value_cache, const Tensor& block_tables,
                          const Tensor& seq_idx, const Tensor& context_lens, double scale) {
  const int64_t num_tokens = query.size(0), num_heads = query.size(1), head_size = query.size(2);
  const int64_t num_kv_heads = key_cache.size(1), block_size = key_cache.size(2);
  const int64_t num_seqs = block_tables.size(0), max_blocks = block_tables.size(1);
  const int64_t group = num_heads / num_kv_heads;
  const T* q = query.ptr<T>();
  const T* kc = key_cache.ptr<T>();
  const T* vc = value_cache.ptr<T>();
  const int32_t* bt = block_tables.ptr<int32_t>();
  const int32_t* si = seq_idx.ptr<int32_t>();
  const int32_t* cl = context_lens.ptr<int32_t>();
  T* o = out.ptr<T>();

  std::vector<double> p;  // softmax weights of one (token, head), reused
  std::vector<double> qd(head_size), acc(head_size);
  for (int64_t tok = 0; tok < num_tokens; ++tok) {
    const int64_t s = si[tok], ctx = cl[tok];
    const bool bad = s < 0 || s >= num_seqs || ctx < 0 || ctx > max_blocks * block_size;
    for (int64_t h = 0; h < num_heads; ++h) {
      T* orow = o + (tok * num_heads + h) * head_size;
      if (bad || ctx == 0) {
        const double fill = bad ? std::numeric_limits<double>::quiet_NaN() : 0.0;
        for (int64_t d = 0; d < head_size; ++d) orow[d] = from_float<T>(static_cast<float>(fill));
        continue;
      }
      // Query head h of token tok attends keys 0..ctx-1 of sequence s: key t sits in physical
      // block bt[s][t / block_size], slot t % block_size, KV head h / group (GQA). Scores in
      // double, the softmax with its max subtracted, then the weighted sum of the value rows.
      // LAB 02 BEGIN cpu_reference: orow = softmax(scale * q . K^T) V for head h (about 30 lines)
      // TODO lab 02 task 1: The CPU reference: block table walk, stable softmax, weighted V, GQA
      // (labs/02-paged-attention/README.md, Task 1)
      throw ::day18::LabNotImplemented("02", 1, "cpu_reference", "labs/02-paged-attention/README.md");
      // LAB 02 END cpu_reference
    }
  }
}

}  // namespace

void paged_attention(const Tensor& out, const Tensor& query, const Tensor& key_cache,
                     const Tensor& value_cache, const Tensor& block_tables, const Tensor& seq_idx,
                     const Tensor& context_lens, float scale) {
  dispatch_float(query.dtype(), [&]<typename T>() {
    paged_attention_impl<T>(out, query, key_cache, value_cache, block_tables, seq_idx, context_lens,
                            scale);
  });
}

}  // namespace day18::cpu
