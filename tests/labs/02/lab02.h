// What the lab 02 tests share. The student build replaces the whole objects of
// engine/cpu/paged_attention.cpp and engine/kernels/paged_attention_readable.cu, so nothing here
// takes its expected values from them. The references are:
//   - the PyTorch goldens of reference/outputs (paged_attention_*_{fp32,fp16,bf16}), run through
//     the op registry: on the CPU that is your task 1, on the GPU (version readable) your kernel;
//   - hand-made problems whose answer is a formula (crafted(): chosen logits, chosen values);
//   - the engine's optimized kernels (cuda::paged_attention_v1/v2, engine/kernels/
//     paged_attention.cu), which the lab does not replace, on the same random inputs;
//   - the problem itself, rearranged (relocated blocks, repeated KV heads): same answer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/safetensors.h"
#include "engine/ops/attention.h"
#include "engine/ops/registry.h"
#include "tests/labs/support/lab.h"
#include "tests/support/paged_attention_problem.h"

namespace day18::lab02 {

using testing::make_problem;
using testing::Problem;
using testing::Shape;
using V = PagedAttentionVersion;
inline constexpr auto& kDtypes = testing::kAllFloatDtypes;

// ------------------------------------------------------------------ running the op

// Your task 1: the CPU backend of paged_attention() (out poisoned first).
inline OwnedTensor run_cpu(const Problem& p) {
  OwnedTensor out(p.query.sizes(), p.query.dtype(), Storage::host);
  poison(out);
  paged_attention(out, p.query, p.key_cache, p.value_cache, p.block_tables, p.seq_idx,
                  p.context_lens, p.scale, p.max_context_len, Tensor());
  return out;
}

// Your kernel (tasks 2-4): version readable through paged_attention(), on device copies, out
// poisoned (NaN) first, so that an output the kernel never writes reads as "not implemented".
inline OwnedTensor run_kernel(const Problem& p) {
  return testing::run_gpu(p, {V::readable});
}

// The engine's optimized kernel on the same inputs (v2: any context length).
inline OwnedTensor run_optimized(const Problem& p) {
  return testing::run_gpu(p, {V::v2});
}

// Your kernel against the optimized one on p, within the dtype's default tolerance.
inline void expect_kernel_matches_optimized(const Problem& p, const std::string& what) {
  SCOPED_TRACE(what);
  LAB_EXPECT_CLOSE(run_kernel(p), run_optimized(p), default_tolerance(p.query.dtype()));
}

// The same, on fresh random inputs of every dtype (decode: one token per sequence).
inline void expect_kernel_matches_optimized_every_dtype(Rng& rng, const Shape& s,
                                                        const std::vector<int32_t>& seq_lens,
                                                        bool prefill = false) {
  for (DType dt : kDtypes) {
    const Problem p = make_problem(rng, dt, s, seq_lens, prefill);
    std::ostringstream what;
    what << (prefill ? "prefill" : "decode") << " contexts";
    for (int32_t l : seq_lens) what << ' ' << l;
    expect_kernel_matches_optimized(p, testing::label(dt, s, what.str().c_str()));
  }
}

// ------------------------------------------------------------------ the PyTorch goldens

// reference/outputs/paged_attention_<case>_<dtype>.safetensors (scripts/reference_ops/
// attention.py; PyTorch gathers the blocks, repeat_interleaves the KV heads, softmax in fp32):
//   decode_gqa     3 decode tokens (contexts 37, 5, 50), 4 query heads on 1 KV head, head 64,
//                  block 16
//   prefill        14 prefill tokens of 2 sequences (context = position + 1), 4 heads on 2 KV
//                  heads (query heads 0,1 read KV head 0; 2,3 read KV head 1), head 64, block 8
//   head256        2 tokens (contexts 19, 3), 2 heads on 1 KV head, head 256, block 8
//   v2_partitions  1 token, context 150 (fp32) or 600 (fp16, bf16), 2 heads on 1, block 32
inline constexpr const char* kGoldens[] = {"decode_gqa", "prefill", "head256", "v2_partitions"};

inline const char* golden_suffix(DType dt) {
  return dt == DType::f32 ? "fp32" : dt == DType::f16 ? "fp16" : "bf16";
}

// Runs one golden file through the op registry on `device` (the GPU with version readable, so
// your kernel runs whatever version the file was made for) and compares with PyTorch's output
// within twice the dtype's tolerance (PyTorch sums in another order), as tests/engine/golden.
inline void expect_golden(const std::string& name, DType dt, Device device) {
  const std::string stem = std::string("paged_attention_") + name + "_" + golden_suffix(dt);
  const std::string path = testing::source_dir() + "/reference/outputs/" + stem + ".safetensors";
  SCOPED_TRACE(stem);
  if (!std::filesystem::exists(path))
    FAIL() << "golden file " << path << " is missing: it is committed, made with PyTorch by "
           << "python3 scripts/make_reference_outputs.py --family attention";
  const TensorFile f = read_safetensors(path);
  std::map<std::string, std::string> kv;
  for (const auto& [k, v] : f.metadata)
    if (!k.empty() && k[0] != '_') kv[k] = v;
  Attrs attrs(kv);
  if (device == Device::cuda) {
    attrs.set("version", std::string("readable"));
    attrs.set("partition_size", std::string("auto"));
  }
  TensorStore io(device);
  for (const char* in :
       {"query", "key_cache", "value_cache", "block_tables", "seq_idx", "context_lens"})
    io.put(in, f.at(std::string("in.") + in));
  const Tensor& expected = f.at("out.out");
  const Tensor& out = io.emplace("out", expected.sizes(), expected.dtype());  // run_op reuses it
  const OpDef& op = OpRegistry::instance().find("paged_attention");
  if (device == Device::cuda) {
    Stream s;
    poison(out, s);  // on the op's stream: the launch comes after it
    run_op(op, io, attrs, s);
    s.synchronize();
  } else {
    poison(out);
    run_op(op, io, attrs);  // (creating a Stream needs a GPU)
  }
  LAB_EXPECT_CLOSE(io.get("out"), expected, scaled(default_tolerance(dt), 2.0));
}

// ------------------------------------------------------------------ hand-made problems

// A value per (KV head, key, dim) for hand-made problems, distinct enough that a row read from
// the wrong head, key or dim shows up; in [-0.5, 0.5) and exact in every dtype (k / 128).
inline double value_of(int64_t kvh, int64_t t, int64_t d) {
  return static_cast<double>((kvh * 37 + t * 11 + d * 5) % 128) / 128.0 - 0.5;
}

// A problem of one decode token whose logits are chosen: query head 0 has q = (c, 0, ..., 0)
// and key t has k_t = (logits[t] / (scale * c), 0, ...), so scale * q . k_t = logits[t] (up to
// the rounding of k to the dtype: expected() uses the stored values). The other query heads get
// the same q, or with `damped` q / 16 (logits / 16: where a naive exp overflows on head 0 it
// does not on the others, so such a bug shows as wrong numbers, not as an untouched output).
// Value rows come from value(kv_head, t, d). The keys sit in physical blocks in reverse order,
// after two spare blocks (block table n+1, n, ..., 2 for n blocks: never 0, 1, 2, ...); the
// spare blocks and the unused slots of the last block hold trap keys (logit +40) and values
// (1000): reading one shows.
inline Problem crafted(DType dt, const Shape& s, const std::vector<double>& logits,
                       const std::function<double(int64_t, int64_t, int64_t)>& value,
                       bool damped = false) {
  constexpr double c = 2.0;
  Problem p;
  const int64_t ctx = static_cast<int64_t>(logits.size()), bs = s.block_size;
  const int64_t n = (ctx + bs - 1) / bs, num_blocks = n + 2, D = s.head_size;
  p.scale = 1.0 / std::sqrt(static_cast<double>(D));
  p.max_context_len = static_cast<int>(ctx);
  p.query = OwnedTensor({1, s.num_heads, D}, dt, Storage::host);
  p.key_cache = OwnedTensor({num_blocks, s.num_kv_heads, bs, D}, dt, Storage::host);
  p.value_cache = OwnedTensor({num_blocks, s.num_kv_heads, bs, D}, dt, Storage::host);
  p.block_tables = OwnedTensor({1, n + 1}, DType::i32, Storage::host);
  p.seq_idx = OwnedTensor({1}, DType::i32, Storage::host);
  p.context_lens = OwnedTensor({1}, DType::i32, Storage::host);
  p.seq_idx.ptr<int32_t>()[0] = 0;
  p.context_lens.ptr<int32_t>()[0] = static_cast<int32_t>(ctx);
  for (int64_t j = 0; j < n; ++j)
    p.block_tables.ptr<int32_t>()[j] = static_cast<int32_t>(n + 1 - j);
  p.block_tables.ptr<int32_t>()[n] = 0;  // past the context: never read
  for (int64_t i = 0; i < p.query.numel(); ++i)
    host_set(p.query, i, i % D != 0 ? 0.0 : (damped && i >= D) ? c / 16 : c);
  for (int64_t b = 0; b < num_blocks; ++b)
    for (int64_t h = 0; h < s.num_kv_heads; ++h)
      for (int64_t o = 0; o < bs; ++o) {
        // Which key of the sequence this slot holds, or -1 for a spare block / unused slot.
        const int64_t j = n + 1 - b, t = (j >= 0 && j < n) ? j * bs + o : -1;
        const bool key = t >= 0 && t < ctx;
        const int64_t row = ((b * s.num_kv_heads + h) * bs + o) * D;
        for (int64_t d = 0; d < D; ++d) {
          const double k0 = (key ? logits[t] : 40.0) / (p.scale * c);
          host_set(p.key_cache, row + d, d == 0 ? k0 : 0.0);
          host_set(p.value_cache, row + d, key ? value(h, t, d) : 1000.0);
        }
      }
  return p;
}

// The logit of key t for query head h of a crafted problem, as the dtype stores q and k:
// scale * q_h[0] * k_t[0].
inline double stored_logit(const Problem& p, int64_t t, int64_t h) {
  const int64_t H = p.query.sizes()[1], kvh = p.key_cache.sizes()[1];
  const int64_t bs = p.key_cache.sizes()[2], D = p.key_cache.sizes()[3];
  const int64_t b = p.block_tables.ptr<int32_t>()[t / bs];
  return p.scale * host_get(p.query, h * D) *
         host_get(p.key_cache, ((b * kvh + h / (H / kvh)) * bs + t % bs) * D);
}

// The answer of a crafted problem, in fp32: out[h][d] = sum_t w_t v_t[d] over the value rows of
// KV head h / (num_heads / num_kv_heads), w = softmax of head h's stored logits (in double, as
// exp(l - max) / sum; each test says what w comes out as).
inline OwnedTensor expected(const Problem& p) {
  const int64_t H = p.query.sizes()[1], D = p.query.sizes()[2];
  const int64_t kvh = p.key_cache.sizes()[1], bs = p.key_cache.sizes()[2];
  const int64_t ctx = p.context_lens.ptr<int32_t>()[0];
  OwnedTensor out({1, H, D}, DType::f32, Storage::host);
  std::vector<double> w(ctx);
  for (int64_t h = 0; h < H; ++h) {
    double mx = -INFINITY, sum = 0;
    for (int64_t t = 0; t < ctx; ++t) mx = std::max(mx, w[t] = stored_logit(p, t, h));
    for (int64_t t = 0; t < ctx; ++t) sum += (w[t] = std::exp(w[t] - mx));
    for (int64_t d = 0; d < D; ++d) {
      double acc = 0;
      for (int64_t t = 0; t < ctx; ++t) {
        const int64_t b = p.block_tables.ptr<int32_t>()[t / bs];
        acc +=
            w[t] / sum * host_get(p.value_cache, ((b * kvh + h / (H / kvh)) * bs + t % bs) * D + d);
      }
      host_set(out, h * D + d, acc);
    }
  }
  return out;
}

// ------------------------------------------------------------------ rearranged problems

// The same problem with its physical blocks moved: block b of the cache goes to perm[b] and the
// block tables follow. The answer must not change by a single bit: attention reads the
// sequence's keys in logical order whatever blocks hold them.
inline Problem relocate_blocks(const Problem& p, Rng& rng) {
  Problem q;
  q.scale = p.scale;
  q.max_context_len = p.max_context_len;
  const std::vector<int64_t> shape = p.key_cache.sizes();
  const int64_t nb = shape[0];
  const size_t block_bytes = p.key_cache.nbytes() / static_cast<size_t>(nb);
  std::vector<int32_t> perm(nb);
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = nb - 1; i > 0; --i) std::swap(perm[i], perm[rng.randint(0, i)]);
  q.key_cache = OwnedTensor(shape, p.key_cache.dtype(), Storage::host);
  q.value_cache = OwnedTensor(shape, p.key_cache.dtype(), Storage::host);
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(static_cast<char*>(q.key_cache.data()) + perm[b] * block_bytes,
                static_cast<const char*>(p.key_cache.data()) + b * block_bytes, block_bytes);
    std::memcpy(static_cast<char*>(q.value_cache.data()) + perm[b] * block_bytes,
                static_cast<const char*>(p.value_cache.data()) + b * block_bytes, block_bytes);
  }
  q.block_tables = testing::copy_of(p.block_tables, Storage::host);
  for (int64_t i = 0; i < q.block_tables.numel(); ++i)
    q.block_tables.ptr<int32_t>()[i] = perm[p.block_tables.ptr<int32_t>()[i]];
  q.query = testing::copy_of(p.query, Storage::host);
  q.seq_idx = testing::copy_of(p.seq_idx, Storage::host);
  q.context_lens = testing::copy_of(p.context_lens, Storage::host);
  return q;
}

// The same problem without GQA: each KV head repeated for the query heads that share it
// (num_kv_heads = num_heads, KV head h = the old KV head h / group). Same answer, bit for bit.
inline Problem repeat_kv_heads(const Problem& p) {
  Problem q;
  const std::vector<int64_t> s = p.key_cache.sizes();
  const int64_t H = p.query.sizes()[1], group = H / s[1];
  const size_t row = static_cast<size_t>(s[3]) * dtype_size(p.key_cache.dtype());
  q.key_cache = OwnedTensor({s[0], H, s[2], s[3]}, p.key_cache.dtype(), Storage::host);
  q.value_cache = OwnedTensor({s[0], H, s[2], s[3]}, p.key_cache.dtype(), Storage::host);
  for (int64_t b = 0; b < s[0]; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t o = 0; o < s[2]; ++o) {
        const size_t from = static_cast<size_t>((b * s[1] + h / group) * s[2] + o) * row;
        const size_t to = static_cast<size_t>((b * H + h) * s[2] + o) * row;
        std::memcpy(static_cast<char*>(q.key_cache.data()) + to,
                    static_cast<const char*>(p.key_cache.data()) + from, row);
        std::memcpy(static_cast<char*>(q.value_cache.data()) + to,
                    static_cast<const char*>(p.value_cache.data()) + from, row);
      }
  q.query = testing::copy_of(p.query, Storage::host);
  q.block_tables = testing::copy_of(p.block_tables, Storage::host);
  q.seq_idx = testing::copy_of(p.seq_idx, Storage::host);
  q.context_lens = testing::copy_of(p.context_lens, Storage::host);
  q.max_context_len = p.max_context_len;
  q.scale = p.scale;
  return q;
}

// Rows [first, first + count) of a [num_tokens, ...] host tensor, as a view.
inline Tensor token_rows(const OwnedTensor& t, int64_t first, int64_t count) {
  std::vector<int64_t> shape = t.sizes();
  const size_t row_bytes = t.nbytes() / static_cast<size_t>(shape[0]);
  shape[0] = count;
  return Tensor(static_cast<char*>(t.data()) + first * row_bytes, t.dtype(), shape, Device::cpu);
}

}  // namespace day18::lab02
