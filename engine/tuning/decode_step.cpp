// Decode steps for the experiments (decode_step.h).
#include "engine/tuning/decode_step.h"

#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/profiling/cost_model.h"
#include "engine/profiling/ncu_csv.h"
#include "engine/profiling/trace_metrics.h"
#include "engine/profiling/trace_session.h"

namespace day18::tuning {

DecodeBatch make_decode_batch(const LlamaModel& model, int64_t batch, int64_t position,
                              const std::vector<int32_t>& tokens) {
  const RuntimeLimits& l = model.limits();
  DAY18_REQUIRE(static_cast<int64_t>(tokens.size()) == batch, "make_decode_batch: ", tokens.size(),
                " tokens for batch ", batch);
  DAY18_REQUIRE(position >= 0 && position < l.max_model_len, "make_decode_batch: position ",
                position, " outside [0, max_model_len = ", l.max_model_len, ")");
  const int64_t bs = l.kv.block_size, per_seq = l.max_blocks_per_seq();
  DAY18_REQUIRE(batch * per_seq <= l.kv.num_blocks, "make_decode_batch: batch ", batch, " x ",
                per_seq, " blocks > the cache's ", l.kv.num_blocks);
  OwnedTensor ti({batch}, DType::i32, Storage::host), pos({batch}, DType::i64, Storage::host),
      slot({batch}, DType::i64, Storage::host), si({batch}, DType::i32, Storage::host),
      cl({batch}, DType::i32, Storage::host), bt({batch, per_seq}, DType::i32, Storage::host),
      li({batch}, DType::i32, Storage::host);
  for (int64_t b = 0; b < batch; ++b) {
    ti.ptr<int32_t>()[b] = tokens[b];
    pos.ptr<int64_t>()[b] = position;
    slot.ptr<int64_t>()[b] = (b * per_seq + position / bs) * bs + position % bs;
    si.ptr<int32_t>()[b] = static_cast<int32_t>(b);
    cl.ptr<int32_t>()[b] = static_cast<int32_t>(position + 1);
    li.ptr<int32_t>()[b] = static_cast<int32_t>(b);
    for (int64_t j = 0; j < per_seq; ++j)
      bt.ptr<int32_t>()[b * per_seq + j] = static_cast<int32_t>(b * per_seq + j);
  }
  DecodeBatch d;
  d.token_ids = ti.to(Storage::device);
  d.positions = pos.to(Storage::device);
  d.slot_mapping = slot.to(Storage::device);
  d.seq_idx = si.to(Storage::device);
  d.context_lens = cl.to(Storage::device);
  d.block_tables = bt.to(Storage::device);
  d.logits_indices = li.to(Storage::device);
  d.view = {d.token_ids,    d.positions,    d.slot_mapping,   d.seq_idx,
            d.context_lens, d.block_tables, d.logits_indices, position + 1};
  return d;
}

std::vector<int32_t> random_tokens(int64_t batch, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(batch);
  for (auto& x : t) x = static_cast<int32_t>(rng.randint(0, vocab - 1));
  return t;
}

StepGraph::StepGraph(LlamaModel& model, const ForwardBatch& batch, cudaStream_t stream) {
  model.forward(batch, stream);  // eager first: handles, lazily created state, errors surface
  DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  DAY18_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    model.forward(batch, stream);
  } catch (...) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(stream, &g);  // leave the stream usable; the error is the one thrown
    if (g) cudaGraphDestroy(g);
    throw;
  }
  DAY18_CUDA_CHECK(cudaStreamEndCapture(stream, &graph_));
  DAY18_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  DAY18_CUDA_CHECK(cudaGraphUpload(exec_, stream));
}

StepGraph::~StepGraph() {
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
}

void StepGraph::launch(cudaStream_t stream) const {
  DAY18_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
}

std::string family_group(const std::string& f) {
  if (f == "paged_attention" || f == "paged_attention_v2_reduce") return "attention";
  if (f == "linear" || f == "linear_reduce" || f == "gemv") return "gemm";
  if (f == "rms_norm" || f == "fused_add_rms_norm") return "norm";
  return "other";
}

StepKernels trace_step_kernels(const std::function<void()>& run_steps, int steps) {
  StepKernels k;
  trace::TraceSession session({.cuda = true});
  run_steps();
  const trace::TraceData data = session.stop();
  if (!session.gpu_traced() || steps <= 0) return k;
  k.traced = true;
  std::vector<trace::Interval> iv;
  for (const std::string g : {"attention", "gemm", "norm", "other"}) k.family_ms[g] = 0;
  for (const trace::Activity& a : data.activities) {
    if (a.kind != trace::ActivityKind::kernel) continue;
    const std::string fam = family_group(kernel_family(ncu::short_kernel_name(a.name)));
    k.family_ms[fam] += static_cast<double>(a.duration()) * 1e-6 / steps;
    iv.push_back({a.start_ns, a.end_ns});
  }
  k.kernel_ms = static_cast<double>(trace::total_ns(trace::merge_intervals(iv))) * 1e-6 / steps;
  return k;
}

}  // namespace day18::tuning
