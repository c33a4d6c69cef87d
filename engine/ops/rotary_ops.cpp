// Registry entry of the rotary family: rotary_embedding (in place on query and key).
// The tour's case switches check_positions off so the time measured is the kernel's (its
// positions are valid by construction); the runner and the golden test keep the default (on).
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
               {"cos_sin_cache", "[max_position, rot_dim]: cos | sin, query's dtype"}};
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

}  // namespace

void register_rotary_ops(OpRegistry& r) {
  r.add(rotary_embedding_op());
}

}  // namespace day18
