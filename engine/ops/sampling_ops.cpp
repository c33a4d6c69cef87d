// Registry entries of the sampling family: softmax, argmax, top_k_top_p_probs, sample.
// Tensor names (= golden-file names = docs names):
//   logits [batch, vocab] f32/f16/bf16; temperature [batch] f32; top_k [batch] i32;
//   top_p [batch] f32; seeds [batch] i64; offsets [batch] i64  ->  probs [batch, vocab] f32,
//   tokens [batch] i32.
#include "engine/ops/registry.h"
#include "engine/ops/sampling.h"

namespace day18 {
namespace {

constexpr int64_t kTourBatch = 64;
constexpr int64_t kTourVocab = 32000;  // Llama-2's vocabulary

// Logits like an LM head's: normal with std 2.5, so a few hundred tokens carry most of the mass.
void put_logits(Rng& rng, DType dt, TensorStore& io, int64_t batch, int64_t vocab) {
  io.put_owned("logits", rng.normal_tensor({batch, vocab}, dt, 0.0, 2.5));
}

// A decode batch with mixed requests: every 8th row greedy, the others with temperature,
// top-k and top-p drawn from the settings people use.
void put_params(Rng& rng, TensorStore& io, int64_t batch, bool with_rng) {
  OwnedTensor t({batch}, DType::f32, Storage::host), k({batch}, DType::i32, Storage::host),
      p({batch}, DType::f32, Storage::host);
  const double temps[] = {0.6, 0.8, 1.0, 1.3};
  const int64_t ks[] = {0, 20, 50, 0};
  const double ps[] = {1.0, 0.9, 0.95, 0.8};
  for (int64_t i = 0; i < batch; ++i) {
    host_set(t.view(), i, i % 8 == 0 ? 0.0 : temps[rng.randint(0, 3)]);
    host_set(k.view(), i, static_cast<double>(ks[rng.randint(0, 3)]));
    host_set(p.view(), i, ps[rng.randint(0, 3)]);
  }
  io.put_owned("temperature", std::move(t));
  if (!with_rng) return;
  io.put_owned("top_k", std::move(k));
  io.put_owned("top_p", std::move(p));
  OwnedTensor s({batch}, DType::i64, Storage::host), o({batch}, DType::i64, Storage::host);
  for (int64_t i = 0; i < batch; ++i) {
    host_set(s.view(), i, static_cast<double>(rng.randint(0, int64_t{1} << 40)));
    host_set(o.view(), i, static_cast<double>(rng.randint(0, 4096)));
  }
  io.put_owned("seeds", std::move(s));
  io.put_owned("offsets", std::move(o));
}

double logits_bytes(const TensorStore& io) {
  return static_cast<double>(io.get("logits").nbytes());
}

// -inf masks a token; a row holding a NaN or +inf has no distribution (kernels/sampling.h).
const TensorDoc kLogits{"logits",
                        "[batch, vocab] f32/f16/bf16; -inf masks a token, a row with a NaN or "
                        "+inf gives token -1 and NaN probs (both backends)"};
const TensorDoc kTemperature{"temperature", "[batch] f32 (0 = greedy)"};
const TensorDoc kTopK{"top_k", "[batch] i32 (0 or >= vocab = off)"};
const TensorDoc kTopP{"top_p", "[batch] f32 in (0, 1] (1 = off)"};
const TensorDoc kSeeds{"seeds", "[batch] i64 (Philox key)"};
const TensorDoc kOffsets{"offsets", "[batch] i64 (decode step: Philox counter)"};
const TensorDoc kProbs{"probs", "[batch, vocab] f32"};
const TensorDoc kTokens{"tokens", "[batch] i32"};

}  // namespace

void register_sampling_ops(OpRegistry& r) {
  {
    OpDef op;
    op.name = "softmax";
    op.family = "sampling";
    op.summary = "probs = softmax(logits / temperature) per row (temperature 0: one-hot argmax)";
    op.inputs = {kLogits, kTemperature};
    op.outputs = {kProbs};
    op.run = [](OpContext& c) {
      const Tensor& logits = c.io.get("logits");
      const Tensor& probs = c.output("probs", logits.sizes(), DType::f32);
      softmax(probs, logits, c.io.get("temperature"), c.stream);
    };
    op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
      put_logits(rng, dt, io, kTourBatch, kTourVocab);
      put_params(rng, io, kTourBatch, false);
    };
    op.bytes_moved = [](const TensorStore& io, const Attrs&) {
      return logits_bytes(io) + static_cast<double>(io.get("logits").numel()) * 4.0;
    };
    op.tour_dtypes = {DType::f32, DType::bf16};
    r.add(std::move(op));
  }
  {
    OpDef op;
    op.name = "argmax";
    op.family = "sampling";
    op.summary = "greedy decoding: index of each row's largest logit (ties -> lowest index)";
    op.inputs = {kLogits};
    op.outputs = {kTokens};
    op.run = [](OpContext& c) {
      const Tensor& logits = c.io.get("logits");
      const Tensor& tokens = c.output("tokens", {logits.size(0)}, DType::i32);
      argmax(tokens, logits, c.stream);
    };
    op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
      put_logits(rng, dt, io, kTourBatch, kTourVocab);
    };
    op.bytes_moved = [](const TensorStore& io, const Attrs&) { return logits_bytes(io); };
    op.tour_dtypes = {DType::f32, DType::bf16};
    r.add(std::move(op));
  }
  {
    OpDef op;
    op.name = "top_k_top_p_probs";
    op.family = "sampling";
    op.summary = "the renormalised top-k/top-p-filtered distribution that `sample` draws from";
    op.inputs = {kLogits, kTemperature, kTopK, kTopP};
    op.outputs = {kProbs};
    op.run = [](OpContext& c) {
      const Tensor& logits = c.io.get("logits");
      const Tensor& probs = c.output("probs", logits.sizes(), DType::f32);
      top_k_top_p_probs(probs, logits, c.io.get("temperature"), c.io.get("top_k"),
                        c.io.get("top_p"), c.stream);
    };
    op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
      put_logits(rng, dt, io, kTourBatch, kTourVocab);
      put_params(rng, io, kTourBatch, true);
    };
    op.bytes_moved = [](const TensorStore& io, const Attrs&) {
      return logits_bytes(io) + static_cast<double>(io.get("logits").numel()) * 4.0;
    };
    op.tour_dtypes = {DType::f32, DType::bf16};
    r.add(std::move(op));
  }
  {
    OpDef op;
    op.name = "sample";
    op.family = "sampling";
    op.summary =
        "one token per row: temperature, top-k, top-p, then a Philox + Gumbel-max draw "
        "(greedy rows: argmax); CPU and GPU draw the same token";
    op.inputs = {kLogits, kTemperature, kTopK, kTopP, kSeeds, kOffsets};
    op.outputs = {kTokens};
    op.run = [](OpContext& c) {
      const Tensor& logits = c.io.get("logits");
      const Tensor& tokens = c.output("tokens", {logits.size(0)}, DType::i32);
      sample(tokens, logits, c.io.get("temperature"), c.io.get("top_k"), c.io.get("top_p"),
             c.io.get("seeds"), c.io.get("offsets"), c.stream);
    };
    // Tokens are compared exactly. The two backends agree unless two Gumbel keys of a row tie to
    // ~1e-15 or a row's top-p cut falls within ~1e-6 of a token's mass boundary AND that token
    // is drawn; with this case (fixed seed, continuous logits) neither happens.
    op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs&) {
      put_logits(rng, dt, io, kTourBatch, kTourVocab);
      put_params(rng, io, kTourBatch, true);
    };
    op.bytes_moved = [](const TensorStore& io, const Attrs&) {
      return logits_bytes(io) +
             static_cast<double>(io.get("logits").size(0)) * (4 + 4 + 4 + 8 + 8 + 4);
    };
    op.tour_dtypes = {DType::f32, DType::bf16};
    r.add(std::move(op));
  }
}

}  // namespace day18
