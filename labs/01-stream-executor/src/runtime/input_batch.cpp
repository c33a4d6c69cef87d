// generated from engine/runtime/input_batch.cpp by scripts/make_labs.py (lab 01);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
#include "engine/runtime/input_batch.h"

#include <algorithm>
#include <cstring>

#include "engine/core/error.h"

namespace day18 {
namespace {
size_t align16(size_t x) { return (x + 15) & ~size_t{15}; }
}  // namespace

InputLayout InputLayout::make(int64_t T, int64_t S, int64_t W) {
  InputLayout l;
  l.num_tokens = T;
  l.num_rows = S;
  l.width = W;
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off = align16(off + bytes);
    return at;
  };
  const size_t t = static_cast<size_t>(T), s = static_cast<size_t>(S);
  l.token_ids = take(4 * t);
  l.positions = take(8 * t);
  l.slot_mapping = take(8 * t);
  l.seq_idx = take(4 * t);
  l.context_lens = take(4 * t);
  l.src_rows = take(4 * t);
  l.block_tables = take(4 * s * static_cast<size_t>(W));
  l.logits_indices = take(4 * s);
  l.temperature = take(4 * s);
  l.top_k = take(4 * s);
  l.top_p = take(4 * s);
  l.seeds = take(8 * s);
  l.offsets = take(8 * s);
  l.bytes = off;
  return l;
}

StepTensors StepTensors::view(const InputLayout& l, void* base, Device d, int64_t max_ctx) {
  char* b = static_cast<char*>(base);
  const int64_t T = l.num_tokens, S = l.num_rows;
  StepTensors v;
  v.batch.token_ids = Tensor(b + l.token_ids, DType::i32, {T}, d);
  v.batch.positions = Tensor(b + l.positions, DType::i64, {T}, d);
  v.batch.slot_mapping = Tensor(b + l.slot_mapping, DType::i64, {T}, d);
  v.batch.seq_idx = Tensor(b + l.seq_idx, DType::i32, {T}, d);
  v.batch.context_lens = Tensor(b + l.context_lens, DType::i32, {T}, d);
  v.batch.block_tables = Tensor(b + l.block_tables, DType::i32, {S, l.width}, d);
  v.batch.logits_indices = Tensor(b + l.logits_indices, DType::i32, {S}, d);
  v.batch.max_context_len = max_ctx;
  v.src_rows = Tensor(b + l.src_rows, DType::i32, {T}, d);
  v.temperature = Tensor(b + l.temperature, DType::f32, {S}, d);
  v.top_k = Tensor(b + l.top_k, DType::i32, {S}, d);
  v.top_p = Tensor(b + l.top_p, DType::f32, {S}, d);
  v.seeds = Tensor(b + l.seeds, DType::i64, {S}, d);
  v.offsets = Tensor(b + l.offsets, DType::i64, {S}, d);
  return v;
}

InputBatch::InputBatch(const RuntimeLimits& limits, Device device)
    : limits_(limits), device_(device) {
  const InputLayout worst =
      InputLayout::make(limits.max_num_tokens, limits.max_num_seqs, limits.max_blocks_per_seq());
  const Storage st = device == Device::cuda ? Storage::pinned : Storage::host;
  for (Buffer& b : staging_) b = Buffer(worst.bytes, st);
}

PreparedStep InputBatch::prepare(const SchedulerOutput& out, const BlockManager& bm, int parity,
                                 bool advanced, const PreparedStep* prev, int64_t pad_to,
                                 int64_t ctx_bucket) {
  DAY18_REQUIRE(parity == 0 || parity == 1, "prepare: parity must be 0 or 1, got ", parity);
  PreparedStep p;
  p.parity = parity;
  p.num_scheduled = static_cast<int64_t>(out.seqs.size());
  p.decode_only = out.num_prefills == 0 && !out.seqs.empty();
  int64_t T = 0;
  for (const ScheduledSeq& s : out.seqs) {
    T += s.num_tokens;
    p.num_sampling += s.do_sample ? 1 : 0;
  }
  p.num_real_tokens = T;
  const int64_t W = limits_.max_blocks_per_seq();
  const int64_t S_real = std::max<int64_t>(p.num_sampling, 1);  // a dummy row if none samples
  // One block-table row per scheduled sequence, one logits row per sampling one: rows = max.
  int64_t S = std::max(S_real, p.num_scheduled);
  int64_t Tp = T;
  if (pad_to > 0) {
    DAY18_REQUIRE(p.decode_only && pad_to >= T, "prepare: pad_to ", pad_to,
                  " needs a decode-only step of at most that many tokens (got ", T, ")");
    Tp = pad_to;
    S = pad_to;
  }
  DAY18_REQUIRE(Tp >= 1 && Tp <= limits_.max_num_tokens && S <= limits_.max_num_seqs,
                "prepare: step of ", Tp, " tokens / ", S, " rows exceeds the limits (",
                limits_.max_num_tokens, " tokens, ", limits_.max_num_seqs, " sequences)");
  p.layout = InputLayout::make(Tp, S, W);
  char* base = static_cast<char*>(staging_[parity].data());
  StepTensors v = StepTensors::view(p.layout, base, Device::cpu, 0);
  int32_t* tok = v.batch.token_ids.ptr<int32_t>();
  int64_t* pos = v.batch.positions.ptr<int64_t>();
  int64_t* slot = v.batch.slot_mapping.ptr<int64_t>();
  int32_t* sidx = v.batch.seq_idx.ptr<int32_t>();
  int32_t* ctx = v.batch.context_lens.ptr<int32_t>();
  int32_t* src = v.src_rows.ptr<int32_t>();
  int32_t* bt = v.batch.block_tables.ptr<int32_t>();
  int32_t* li = v.batch.logits_indices.ptr<int32_t>();
  float* temp = v.temperature.ptr<float>();
  int32_t* topk = v.top_k.ptr<int32_t>();
  float* topp = v.top_p.ptr<float>();
  int64_t* seeds = v.seeds.ptr<int64_t>();
  int64_t* offs = v.offsets.ptr<int64_t>();
  // Padding defaults first (rows/tokens past the real ones keep them).
  std::memset(bt, 0, sizeof(int32_t) * static_cast<size_t>(S * W));
  for (int64_t r = 0; r < S; ++r) {
    li[r] = 0;
    temp[r] = 0.f;
    topk[r] = 0;
    topp[r] = 1.f;
    seeds[r] = 0;
    offs[r] = 0;
  }
  for (int64_t t = T; t < Tp; ++t) {
    tok[t] = 0;
    pos[t] = 0;
    slot[t] = -1;
    sidx[t] = 0;
    ctx[t] = 0;
    src[t] = -1;
  }

  p.row_of_entry.assign(out.seqs.size(), -1);
  p.query_start_loc.assign(1, 0);
  int64_t t = 0, row = 0, max_ctx = 0;
  for (size_t i = 0; i < out.seqs.size(); ++i) {
    const ScheduledSeq& s = out.seqs[i];
    const Sequence& seq = *s.seq;
    p.query_start_loc.push_back(static_cast<int32_t>(t + s.num_tokens));
    const int64_t start = seq.num_computed_tokens - (advanced ? s.num_tokens : 0);
    DAY18_REQUIRE(start >= 0, "prepare: sequence ", seq.id, " starts at position ", start);
    DAY18_REQUIRE(static_cast<int64_t>(seq.block_table.size()) <= W, "prepare: sequence ", seq.id,
                  " has ", seq.block_table.size(), " blocks, more than max_blocks_per_seq ", W);
    std::copy(seq.block_table.begin(), seq.block_table.end(), bt + i * W);
    for (int64_t q = 0; q < s.num_tokens; ++q, ++t) {
      const int64_t position = start + q;
      const int32_t token = seq.token(position);
      src[t] = -1;
      tok[t] = token;
      if (token == kPlaceholderToken) {
        // Its value is the previous (in-flight) step's sample for this sequence.
        DAY18_REQUIRE(prev != nullptr && prev->row_of_seq.count(&seq),
                      "prepare: sequence ", seq.id, " position ", position,
                      " is a placeholder but no in-flight step samples it");
        src[t] = prev->row_of_seq.at(&seq);
        tok[t] = 0;
        p.feeds_from_device = true;
      }
      // LAB 01 BEGIN slots: position, cache slot, row, context length of token t (about 4 lines)
      // TODO lab 01 task 1: Positions and slot_mapping: where each token's K/V goes
      // (labs/01-stream-executor/README.md, Task 1)
      throw ::day18::LabNotImplemented("01", 1, "slots", "labs/01-stream-executor/README.md");
      // LAB 01 END slots
    }
    max_ctx = std::max(max_ctx, start + s.num_tokens);
    if (s.do_sample) {
      li[row] = static_cast<int32_t>(t - 1);
      const SamplingParams& sp = seq.params;
      temp[row] = sp.temperature;
      topk[row] = sp.top_k;
      topp[row] = sp.top_p;
      seeds[row] = sp.seed;
      // Tokens generated before this one: the sample's index in the output.
      offs[row] = s.output_index >= 0 ? s.output_index : seq.output_len();
      p.row_of_entry[i] = static_cast<int32_t>(row);
      p.row_of_seq[&seq] = static_cast<int32_t>(row);
      ++row;
    }
  }
  p.max_context_len = max_ctx;
  if (p.decode_only && ctx_bucket > 0) {
    DAY18_REQUIRE(ctx_bucket >= max_ctx, "prepare: ctx_bucket ", ctx_bucket, " < context ",
                  max_ctx);
    p.max_context_len = ctx_bucket;
  }
  return p;
}

}  // namespace day18
