#include "engine/runtime/graph_cache.h"

#include <algorithm>
#include <chrono>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/ops/sampling.h"

namespace day18 {

GraphCache::GraphCache(LlamaModel& model, bool enabled) : model_(model), enabled_(enabled) {
  if (!enabled_) return;
  const RuntimeLimits& lim = model.limits();
  const size_t cap =
      InputLayout::make(lim.max_num_tokens, lim.max_num_seqs, lim.max_blocks_per_seq()).bytes;
  graph_in_ = Buffer(cap, Storage::device);
  graph_out_ = OwnedTensor({lim.max_num_seqs}, DType::i32, Storage::device);
}

GraphCache::~GraphCache() {
  for (auto& [k, g] : graphs_) {
    if (g.exec) cudaGraphExecDestroy(g.exec);
    if (g.graph) cudaGraphDestroy(g.graph);
  }
}

int64_t GraphCache::batch_bucket(int64_t n) const {
  const int64_t max_seqs = model_.limits().max_num_seqs;
  for (int64_t b = 1; b <= 256; b *= 2)
    if (b >= n && b <= max_seqs) return b;
  return std::max(n, max_seqs);
}

int64_t GraphCache::context_bucket(int64_t max_ctx) const {
  const int64_t cap = model_.limits().max_model_len;
  int64_t b = 256;
  while (b < max_ctx) b *= 2;
  return std::min(b, cap);
}

cudaGraphExec_t GraphCache::get(const PreparedStep& step, cudaStream_t upload_stream,
                                double* capture_ms) {
  const auto key = std::make_pair(step.layout.num_tokens, step.max_context_len);
  auto it = graphs_.find(key);
  if (it != graphs_.end()) return it->second.exec;
  DAY18_NVTX_RANGE("CaptureGraph");
  const auto t0 = std::chrono::steady_clock::now();
  // Capture on a side stream that has no pending cross-stream waits; replays go to compute.
  Stream cap;
  const StepTensors in =
      StepTensors::view(step.layout, graph_in_.data(), Device::cuda, step.max_context_len);
  Graph g;
  DAY18_CUDA_CHECK(cudaStreamBeginCapture(cap, cudaStreamCaptureModeThreadLocal));
  try {
    const Tensor& logits = model_.forward(in.batch, cap);
    const int64_t S = in.batch.num_seqs();
    sample(graph_out_.view().slice0(0, S), logits, in.temperature, in.top_k, in.top_p, in.seeds,
           in.offsets, cap);
  } catch (...) {
    cudaGraph_t broken = nullptr;
    cudaStreamEndCapture(cap, &broken);
    if (broken) cudaGraphDestroy(broken);
    throw;
  }
  DAY18_CUDA_CHECK(cudaStreamEndCapture(cap, &g.graph));
  DAY18_CUDA_CHECK(cudaGraphInstantiate(&g.exec, g.graph, 0));
  // Upload now (ordered before this step's compute_start), not lazily on the first launch.
  DAY18_CUDA_CHECK(cudaGraphUpload(g.exec, upload_stream));
  graphs_.emplace(key, g);
  *capture_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  capture_ms_ += *capture_ms;
  return g.exec;
}

void GraphCache::replay(cudaGraphExec_t exec, const void* inputs, size_t bytes,
                        cudaStream_t stream) {
  DAY18_CUDA_CHECK(
      cudaMemcpyAsync(graph_in_.data(), inputs, bytes, cudaMemcpyDeviceToDevice, stream));
  DAY18_CUDA_CHECK(cudaGraphLaunch(exec, stream));
  ++replays_;
}

void GraphCache::copy_samples(void* dst, int64_t num_rows, cudaStream_t stream) const {
  DAY18_CUDA_CHECK(cudaMemcpyAsync(dst, graph_out_.data(),
                                   static_cast<size_t>(num_rows) * sizeof(int32_t),
                                   cudaMemcpyDeviceToDevice, stream));
}

}  // namespace day18
