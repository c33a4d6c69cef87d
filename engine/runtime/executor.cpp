#include "engine/runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/ops/cache.h"
#include "engine/ops/sampling.h"
#include "engine/runtime/pipeline_kernels.h"

namespace day18 {
namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
double seconds_of(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}
}  // namespace

StepExecutor::StepExecutor(LlamaModel& model, int64_t num_cpu_blocks, bool cuda_graphs)
    : model_(model), graphs_on_(cuda_graphs && model.device() == Device::cuda) {
  const RuntimeLimits& lim = model.limits();
  const ModelConfig& c = model.config();
  const bool cuda = is_cuda();
  if (cuda) {
    h2d_ = std::make_unique<Stream>();
    compute_ = std::make_unique<Stream>();
    d2h_ = std::make_unique<Stream>();
    cache_ = std::make_unique<Stream>();
  }
  const size_t cap =
      InputLayout::make(lim.max_num_tokens, lim.max_num_seqs, lim.max_blocks_per_seq()).bytes;
  for (Slot& s : slots_) {
    if (cuda) s.dev_in = Buffer(cap, Storage::device);
    s.sampled_dev =
        OwnedTensor({lim.max_num_seqs}, DType::i32, cuda ? Storage::device : Storage::host);
    s.sampled_host =
        OwnedTensor({lim.max_num_seqs}, DType::i32, cuda ? Storage::pinned : Storage::host);
    if (cuda) s.ev = std::make_unique<StepEvents>();
  }
  DAY18_REQUIRE(num_cpu_blocks >= 0, "num_cpu_blocks must be >= 0, got ", num_cpu_blocks);
  if (num_cpu_blocks > 0) {
    const std::vector<int64_t> shape = {c.num_layers, num_cpu_blocks, c.num_kv_heads,
                                        lim.kv.block_size, c.head_dim};
    const Storage st = cuda ? Storage::pinned : Storage::host;
    cpu_k_ = OwnedTensor(shape, model.dtype(), st);
    cpu_v_ = OwnedTensor(shape, model.dtype(), st);
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const std::vector<int64_t> one = {num_cpu_blocks, c.num_kv_heads, lim.kv.block_size,
                                        c.head_dim};
      cpu_k_views_.push_back(cpu_k_.view().slice0(l, l + 1).view(one));
      cpu_v_views_.push_back(cpu_v_.view().slice0(l, l + 1).view(one));
    }
  }
  if (graphs_on_) {
    graph_in_ = Buffer(cap, Storage::device);
    graph_out_ = OwnedTensor({lim.max_num_seqs}, DType::i32, Storage::device);
  }
}

StepExecutor::~StepExecutor() {
  for (auto& [k, g] : graphs_) {
    if (g.exec) cudaGraphExecDestroy(g.exec);
    if (g.graph) cudaGraphDestroy(g.graph);
  }
}

int64_t StepExecutor::graph_bucket(int64_t n) const {
  const int64_t max_seqs = model_.limits().max_num_seqs;
  for (int64_t b = 1; b <= 256; b *= 2)
    if (b >= n && b <= max_seqs) return b;
  return std::max(n, max_seqs);
}

int64_t StepExecutor::context_bucket(int64_t max_ctx) const {
  const int64_t cap = model_.limits().max_model_len;
  int64_t b = 256;
  while (b < max_ctx) b *= 2;
  return std::min(b, cap);
}

void StepExecutor::run_swaps(const SchedulerOutput& out) {
  DAY18_NVTX_RANGE("SwapBlocks");
  const std::vector<Tensor> gk = model_.key_caches(), gv = model_.value_caches();
  cudaStream_t s = cache_ ? cache_->get() : nullptr;
  auto run = [&](const std::vector<std::pair<int64_t, int64_t>>& pairs, bool out_dir) {
    if (pairs.empty()) return;
    DAY18_REQUIRE(!cpu_k_views_.empty(), "swap requested but the CPU swap pool has no blocks");
    OwnedTensor map({static_cast<int64_t>(pairs.size()), 2}, DType::i64, Storage::host);
    int64_t* m = map.ptr<int64_t>();
    for (size_t i = 0; i < pairs.size(); ++i) {
      m[2 * i] = pairs[i].first;
      m[2 * i + 1] = pairs[i].second;
    }
    for (size_t l = 0; l < gk.size(); ++l) {
      if (out_dir) {
        swap_blocks(gk[l], cpu_k_views_[l], map, s);
        swap_blocks(gv[l], cpu_v_views_[l], map, s);
      } else {
        swap_blocks(cpu_k_views_[l], gk[l], map, s);
        swap_blocks(cpu_v_views_[l], gv[l], map, s);
      }
    }
  };
  run(out.swap_out, true);  // before swap_in: swap_in never targets these GPU blocks
  run(out.swap_in, false);
}

void StepExecutor::compute_eager(const StepTensors& in, Slot& slot, cudaStream_t s) {
  const Tensor& logits = model_.forward(in.batch, s);
  if (slot.ev) slot.ev->forward_done.record(s);
  DAY18_NVTX_RANGE("Sampling");
  const int64_t S = in.batch.num_seqs();
  sample(slot.sampled_dev.view().slice0(0, S), logits, in.temperature, in.top_k, in.top_p,
         in.seeds, in.offsets, s);
}

StepExecutor::Graph& StepExecutor::graph_for(const PreparedStep& step, double* capture_ms) {
  const auto key = std::make_pair(step.layout.num_tokens, step.max_context_len);
  auto it = graphs_.find(key);
  if (it != graphs_.end()) return it->second;
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
  DAY18_CUDA_CHECK(cudaGraphUpload(g.exec, *compute_));
  Graph& stored = graphs_.emplace(key, g).first->second;
  *capture_ms = ms_since(t0);
  capture_ms_ += *capture_ms;
  return stored;
}

void StepExecutor::submit(const SchedulerOutput& out, const PreparedStep& step,
                          const PreparedStep* prev, const void* staging) {
  Slot& slot = slots_[step.parity];
  const bool has_swaps = !out.swap_out.empty() || !out.swap_in.empty();
  if (!is_cuda()) {  // CPU backend: the same stages, synchronously, timed on the host
    if (has_swaps) run_swaps(out);
    const StepTensors in = StepTensors::view(step.layout, const_cast<void*>(staging), Device::cpu,
                                             step.max_context_len);
    if (step.feeds_from_device) {
      DAY18_REQUIRE(prev != nullptr, "submit: the step feeds tokens but no previous step is given");
      feed_sampled_tokens(in.batch.token_ids, in.src_rows,
                          slots_[prev->parity].sampled_dev.view().slice0(0, prev->layout.num_rows));
    }
    const auto t0 = std::chrono::steady_clock::now();
    slot.host_times.host_start_s = seconds_of(t0);
    const Tensor& logits = model_.forward(in.batch);
    slot.host_times.model_ms = ms_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    {
      DAY18_NVTX_RANGE("Sampling");
      sample(slot.sampled_dev.view().slice0(0, in.batch.num_seqs()), logits, in.temperature,
             in.top_k, in.top_p, in.seeds, in.offsets);
    }
    const auto t2 = std::chrono::steady_clock::now();
    slot.host_times.sampling_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    slot.host_times.compute_ms = slot.host_times.model_ms + slot.host_times.sampling_ms;
    slot.host_times.host_end_s = seconds_of(t2);
    return;
  }
  StepEvents& ev = *slot.ev;
  // Cache stream: swaps after the previous step's compute (which may still write those blocks).
  if (has_swaps) {
    if (has_last_compute_) cache_->wait(slots_[last_parity_].ev->compute_done);
    run_swaps(out);
    ev.cache_done.record(*cache_);
  }
  // H2D: this parity's device buffer was last read by the compute of two steps ago.
  h2d_->wait(ev.compute_done);
  ev.h2d_start.record(*h2d_);
  DAY18_CUDA_CHECK(cudaMemcpyAsync(slot.dev_in.data(), staging,
                                   step.layout.bytes, cudaMemcpyHostToDevice, *h2d_));
  ev.h2d_done.record(*h2d_);
  // Compute: device-side waits only.
  compute_->wait(ev.h2d_done);
  if (has_swaps) compute_->wait(ev.cache_done);
  compute_->wait(ev.d2h_done);  // the previous D2H of this parity's samples is done
  // A graph replay step: capture + instantiate + upload (first use of a bucket) happen HERE,
  // before compute_start is recorded, so the CPU time they take (tens of ms) is not counted in
  // this step's compute time (the event would otherwise stamp before the capture started).
  slot.graph = graphs_on_ && warmed_up_ && step.decode_only;
  slot.capture_ms = -1;
  Graph* graph = slot.graph ? &graph_for(step, &slot.capture_ms) : nullptr;
  ev.compute_start.record(*compute_);
  const StepTensors in =
      StepTensors::view(step.layout, slot.dev_in.data(), Device::cuda, step.max_context_len);
  if (step.feeds_from_device) {
    DAY18_REQUIRE(prev != nullptr, "submit: the step feeds tokens but no previous step is given");
    const Slot& ps = slots_[prev->parity];
    feed_sampled_tokens(in.batch.token_ids, in.src_rows,
                        ps.sampled_dev.view().slice0(0, prev->layout.num_rows), *compute_);
  }
  const int64_t S = step.layout.num_rows;
  if (graph) {
    Graph& g = *graph;
    DAY18_CUDA_CHECK(cudaMemcpyAsync(graph_in_.data(), slot.dev_in.data(), step.layout.bytes,
                                     cudaMemcpyDeviceToDevice, *compute_));
    DAY18_CUDA_CHECK(cudaGraphLaunch(g.exec, *compute_));
    ev.forward_done.record(*compute_);
    DAY18_CUDA_CHECK(cudaMemcpyAsync(slot.sampled_dev.data(), graph_out_.data(),
                                     static_cast<size_t>(S) * 4, cudaMemcpyDeviceToDevice,
                                     *compute_));
    ++graph_replays_;
  } else {
    compute_eager(in, slot, *compute_);
    warmed_up_ = true;
  }
  ev.compute_done.record(*compute_);
  // D2H of the sampled tokens.
  d2h_->wait(ev.compute_done);
  DAY18_CUDA_CHECK(cudaMemcpyAsync(slot.sampled_host.data(), slot.sampled_dev.data(),
                                   static_cast<size_t>(S) * 4, cudaMemcpyDeviceToHost, *d2h_));
  ev.d2h_done.record(*d2h_);
  has_last_compute_ = true;
  last_parity_ = step.parity;
}

}  // namespace day18

namespace day18 {

std::vector<int32_t> StepExecutor::wait(const PreparedStep& step, StepTimes* times) {
  Slot& slot = slots_[step.parity];
  const int32_t* sampled = nullptr;
  StepTimes t;
  if (is_cuda()) {
    StepEvents& ev = *slot.ev;
    ev.d2h_done.synchronize();  // the only place the CPU waits for the GPU
    sampled = slot.sampled_host.ptr<int32_t>();
    if (times) {
      t.h2d_ms = Event::elapsed_ms(ev.h2d_start, ev.h2d_done);
      t.compute_ms = Event::elapsed_ms(ev.compute_start, ev.compute_done);
      t.model_ms = Event::elapsed_ms(ev.compute_start, ev.forward_done);
      t.sampling_ms = Event::elapsed_ms(ev.forward_done, ev.compute_done);
      t.d2h_ms = Event::elapsed_ms(ev.compute_done, ev.d2h_done);
      t.graph = slot.graph;
      t.captured = slot.capture_ms >= 0;
      t.capture_ms = std::max(slot.capture_ms, 0.0);
    }
  } else {
    sampled = slot.sampled_dev.ptr<int32_t>();
    t = slot.host_times;
  }
  if (times) *times = t;
  std::vector<int32_t> tokens;
  tokens.reserve(static_cast<size_t>(step.num_sampling));
  for (int32_t row : step.row_of_entry)
    if (row >= 0) tokens.push_back(sampled[row]);
  return tokens;
}

}  // namespace day18
