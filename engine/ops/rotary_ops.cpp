// Registry entries of the rotary family: rotary_embedding (in place on query and key) and
// rotary_and_cache (RoPE + KV-cache write + query packing in one launch).
// The tour's cases switch the index checks off so the time measured is the kernel's (their
// positions and slots are valid by construction); the runner and the golden test keep the
// defaults (on).
//
// Registry convention for rotary_and_cache: query, key and value are separate contiguous tensors
// here (a file holds whole tensors); the C++ call also takes them as column blocks of the fused
// qkv output, which is how the model calls it.
#include <algorithm>
#include <numeric>
#include <set>

#include "engine/cpu/rotary.h"
#include "engine/ops/registry.h"
#include "engine/ops/rotary.h"

namespace day18 {
namespace {

OpDef rotary_embedding_op() {
  OpDef op;
  op.name = "rotary_embedding";
  op.family = "rotary";
  op.summary = "rotate query/key heads by their token's position (RoPE), in place";
  op.inputs = {{"positions", "[num_tokens] int64 in [0, max_position)"},
               {"query", "[num_tokens, num_heads, head_size] f32/f16/bf16"},
               {"key", "[num_tokens, num_kv_heads, head_size] f32/f16/bf16"},
               {"cos_sin_cache", "[max_position, rot_dim]: cos then sin halves, query's dtype"}};
  op.outputs = {{"query", "[num_tokens, num_heads, head_size]"},
                {"key", "[num_tokens, num_kv_heads, head_size]"}};
  op.attrs = {
      {"head_size", "must equal query's last dimension; 0 = take it from query", "0"},
      {"is_neox", "true: rotate halves (i, i + rot_dim/2); false: GPT-J pairs (2i, 2i+1)", "true"},
      {"check_positions", "cuda: wait and throw on a position >= max_position", "true"}};
  op.run = [](OpContext& c) {
    const Tensor& q = c.io.get("query");
    int64_t head_size = c.attrs.integer_or("head_size", 0);
    if (head_size == 0 && q.dim() == 3) head_size = q.size(2);
    rotary_embedding(c.io.get("positions"), q, c.io.get("key"), c.io.get("cos_sin_cache"),
                     head_size, !c.attrs.has("is_neox") || c.attrs.boolean("is_neox"),
                     !c.attrs.has("check_positions") || c.attrs.boolean("check_positions"),
                     c.stream);
  };
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
    // A 2048-token prefill of Llama-3-8B's attention shape (32 query heads, 8 KV heads, 128).
    const int64_t tokens = 2048, heads = 32, kv_heads = 8, head = 128, max_position = 8192;
    io.put_owned("positions", rng.uniform_tensor({tokens}, DType::i64, 0, max_position - 1));
    io.put_owned("query", rng.normal_tensor({tokens, heads, head}, dt, 0, 1));
    io.put_owned("key", rng.normal_tensor({tokens, kv_heads, head}, dt, 0, 1));
    io.put_owned("cos_sin_cache", cpu::make_cos_sin_cache(max_position, head, 500000.0, dt));
    attrs.set("head_size", head);
    attrs.set("is_neox", "true");
    attrs.set("check_positions", "false");
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    const Tensor& pos = io.get("positions");
    const Tensor& cs = io.get("cos_sin_cache");
    std::set<int64_t> rows(pos.ptr<int64_t>(), pos.ptr<int64_t>() + pos.numel());
    const double cs_row = double(cs.nbytes()) / double(cs.size(0));
    return 2.0 * double(io.get("query").nbytes() + io.get("key").nbytes()) + double(pos.nbytes()) +
           cs_row * double(rows.size());
  };
  op.tour_dtypes = {DType::f16, DType::bf16, DType::f32};
  return op;
}

// Bytes of the cos/sin rows that `positions` touch (each distinct row read once).
double table_rows_bytes(const Tensor& positions, const Tensor& cos_sin_cache) {
  std::set<int64_t> rows(positions.ptr<int64_t>(), positions.ptr<int64_t>() + positions.numel());
  return double(cos_sin_cache.nbytes()) / double(cos_sin_cache.size(0)) * double(rows.size());
}

OpDef rotary_and_cache_op() {
  constexpr const char* kCache = "[num_blocks, num_kv_heads, block_size, head_size] f32/f16/bf16";
  OpDef op;
  op.name = "rotary_and_cache";
  op.family = "rotary";
  op.summary =
      "query_out = rope(query); cache rope(key) and value at slot_mapping (-1 = skip): "
      "rotary_embedding + copy + reshape_and_cache in one launch";
  op.inputs = {{"positions", "[num_tokens] int64 in [0, max_position)"},
               {"query", "[num_tokens, num_heads, head_size] f32/f16/bf16 (read only)"},
               {"key", "[num_tokens, num_kv_heads, head_size] f32/f16/bf16 (read only)"},
               {"value", "[num_tokens, num_kv_heads, head_size] f32/f16/bf16"},
               {"cos_sin_cache", "[max_position, rot_dim]: cos then sin halves, query's dtype"},
               {"key_cache", kCache},
               {"value_cache", kCache},
               {"slot_mapping", "[num_tokens] int64: block_id * block_size + offset, -1 = skip"}};
  op.outputs = {{"query_out", "[num_tokens, num_heads, head_size] (rotated, packed)"},
                {"key_cache", std::string(kCache) + " (rotated keys at their slots)"},
                {"value_cache", std::string(kCache) + " (values at their slots)"}};
  op.attrs = {
      {"head_size", "must equal query's last dimension; 0 = take it from query", "0"},
      {"is_neox", "true: rotate halves (i, i + rot_dim/2); false: GPT-J pairs (2i, 2i+1)", "true"},
      {"check_positions", "cuda: wait and throw on a position >= max_position", "true"},
      {"check_slots", "cuda: wait and throw on an out-of-range slot", "true"}};
  op.run = [](OpContext& c) {
    const Tensor& q = c.io.get("query");
    int64_t head_size = c.attrs.integer_or("head_size", 0);
    if (head_size == 0 && q.dim() == 3) head_size = q.size(2);
    const Tensor& out = c.output("query_out", q.sizes(), q.dtype());
    rotary_and_cache(out, q, c.io.get("key"), c.io.get("value"), c.io.get("key_cache"),
                     c.io.get("value_cache"), c.io.get("slot_mapping"), c.io.get("positions"),
                     c.io.get("cos_sin_cache"), head_size, c.attrs.boolean_or("is_neox", true),
                     c.attrs.boolean_or("check_positions", true),
                     c.attrs.boolean_or("check_slots", true), c.stream);
  };
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
    // A 2048-token step of Llama-3-8B's attention shape (32 query heads, 8 KV heads, 128) into a
    // 512-block cache at scattered slots, 1/16 of the tokens padding (slot -1).
    const int64_t tokens = 2048, heads = 32, kv_heads = 8, head = 128, max_position = 8192;
    const int64_t block_size = 16, blocks = 512;
    io.put_owned("positions", rng.uniform_tensor({tokens}, DType::i64, 0, max_position - 1));
    io.put_owned("query", rng.normal_tensor({tokens, heads, head}, dt, 0, 1));
    io.put_owned("key", rng.normal_tensor({tokens, kv_heads, head}, dt, 0, 1));
    io.put_owned("value", rng.normal_tensor({tokens, kv_heads, head}, dt, 0, 1));
    io.put_owned("cos_sin_cache", cpu::make_cos_sin_cache(max_position, head, 500000.0, dt));
    io.put_owned("key_cache", rng.normal_tensor({blocks, kv_heads, block_size, head}, dt, 0, 1));
    io.put_owned("value_cache", rng.normal_tensor({blocks, kv_heads, block_size, head}, dt, 0, 1));
    std::vector<int64_t> slots(blocks * block_size);
    std::iota(slots.begin(), slots.end(), 0);
    for (int64_t i = 0; i < tokens; ++i)  // distinct slots: partial Fisher-Yates
      std::swap(slots[i], slots[rng.randint(i, int64_t(slots.size()) - 1)]);
    slots.resize(tokens);
    for (int64_t t = 0; t < tokens; t += 16) slots[t] = -1;
    const Tensor& sm = io.emplace("slot_mapping", {tokens}, DType::i64);
    std::copy(slots.begin(), slots.end(), sm.ptr<int64_t>());
    attrs.set("head_size", head);
    attrs.set("is_neox", "true");
    attrs.set("check_positions", "false");
    attrs.set("check_slots", "false");
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    const Tensor& pos = io.get("positions");
    const Tensor& sm = io.get("slot_mapping");
    const int64_t n = sm.numel();
    const int64_t cached = n - std::count(sm.ptr<int64_t>(), sm.ptr<int64_t>() + n, int64_t(-1));
    const double kv_row = double(io.get("key").nbytes()) / double(std::max<int64_t>(n, 1));
    // query read + query_out written; key and value read + written for the cached tokens only;
    // positions and slots read; the cos/sin rows touched.
    return 2.0 * double(io.get("query").nbytes()) + 2.0 * 2.0 * kv_row * double(cached) +
           double(pos.nbytes() + sm.nbytes()) + table_rows_bytes(pos, io.get("cos_sin_cache"));
  };
  op.tour_dtypes = {DType::f16, DType::bf16, DType::f32};
  return op;
}

}  // namespace

void register_rotary_ops(OpRegistry& r) {
  r.add(rotary_embedding_op());
  r.add(rotary_and_cache_op());
}

}  // namespace day18
