// Registry entry of the embedding family: embedding (token ids -> hidden states).
#include <set>

#include "engine/ops/embedding.h"
#include "engine/ops/registry.h"

namespace day18 {

void register_embedding_ops(OpRegistry& r) {
  OpDef op;
  op.name = "embedding";
  op.family = "embedding";
  op.summary = "out[t] = weight[token_ids[t]]; ids outside [0, vocab) throw (checked mode)";
  op.inputs = {{"token_ids", "[num_tokens] i32, each in [0, vocab_size)"},
               {"weight", "[vocab_size, hidden_size] f32/f16/bf16"}};
  op.outputs = {{"out", "[num_tokens, hidden_size] same dtype as weight"}};
  op.run = [](OpContext& c) {
    const Tensor& ids = c.io.get("token_ids");
    const Tensor& w = c.io.get("weight");
    const Tensor& out = c.output("out", {ids.size(0), w.size(1)}, w.dtype());
    // Checked by default (syncs, throws naming a bad id); the tour turns it off to time the kernel.
    embedding(out, ids, w, c.attrs.boolean_or("check_ids", true), c.stream);
  };
  op.attrs = {{"check_ids", "sync after the launch and throw naming a token id outside [0, vocab)", "true"}};
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
    attrs.set("check_ids", "false");  // time the kernel, not the check's synchronization
    // Llama-2-7B's table: 32000 x 4096; a 2048-token prefill.
    constexpr int64_t kVocab = 32000, kHidden = 4096, kTokens = 2048;
    io.put_owned("token_ids", rng.uniform_tensor({kTokens}, DType::i32, 0, kVocab - 1));
    io.put_owned("weight", rng.normal_tensor({kVocab, kHidden}, dt, 0.0, 0.02));
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    // ids + the distinct rows gathered (a repeated id's row comes from cache) + the output.
    const Tensor& ids = io.get("token_ids");
    const Tensor& w = io.get("weight");
    std::set<int64_t> distinct;
    for (int64_t t = 0; t < ids.numel(); ++t) distinct.insert(ids.ptr<int32_t>()[t]);
    const double row = static_cast<double>(w.size(1)) * dtype_size(w.dtype());
    return static_cast<double>(ids.nbytes()) + (distinct.size() + ids.numel()) * row;
  };
  op.tour_dtypes = {DType::f16};
  r.add(std::move(op));
}

}  // namespace day18
