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
      const int64_t kvh = h / group;
      const T* qrow = q + (tok * num_heads + h) * head_size;
      for (int64_t d = 0; d < head_size; ++d) qd[d] = to_float(qrow[d]);
      // Row t of this sequence's K (or V) for KV head kvh.
      auto row = [&](const T* cache, int64_t t) {
        const int64_t block = bt[s * max_blocks + t / block_size];
        return cache + ((block * num_kv_heads + kvh) * block_size + t % block_size) * head_size;
      };
      p.resize(ctx);
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t t = 0; t < ctx; ++t) {
        const T* k = row(kc, t);
        double dot = 0;
        for (int64_t d = 0; d < head_size; ++d) dot += qd[d] * to_float(k[d]);
        p[t] = dot * scale;
        mx = std::max(mx, p[t]);
      }
      double sum = 0;
      for (int64_t t = 0; t < ctx; ++t) sum += (p[t] = std::exp(p[t] - mx));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t t = 0; t < ctx; ++t) {
        const T* v = row(vc, t);
        for (int64_t d = 0; d < head_size; ++d) acc[d] += p[t] * to_float(v[d]);
      }
      for (int64_t d = 0; d < head_size; ++d)
        orow[d] = from_float<T>(static_cast<float>(acc[d] / sum));
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
