#include "engine/runtime/swap_pool.h"

#include <utility>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/ops/cache.h"

namespace day18 {

SwapPool::SwapPool(const LlamaModel& model, int64_t num_cpu_blocks) : model_(model) {
  DAY18_REQUIRE(num_cpu_blocks >= 0, "num_cpu_blocks must be >= 0, got ", num_cpu_blocks);
  if (num_cpu_blocks == 0) return;
  const ModelConfig& c = model.config();
  const RuntimeLimits& lim = model.limits();
  const std::vector<int64_t> shape = {c.num_layers, num_cpu_blocks, c.num_kv_heads,
                                      lim.kv.block_size, c.head_dim};
  const Storage st = model.device() == Device::cuda ? Storage::pinned : Storage::host;
  cpu_k_ = OwnedTensor(shape, model.dtype(), st);
  cpu_v_ = OwnedTensor(shape, model.dtype(), st);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::vector<int64_t> one = {num_cpu_blocks, c.num_kv_heads, lim.kv.block_size,
                                      c.head_dim};
    cpu_k_views_.push_back(cpu_k_.view().slice0(l, l + 1).view(one));
    cpu_v_views_.push_back(cpu_v_.view().slice0(l, l + 1).view(one));
  }
}

void SwapPool::run_swaps(const SchedulerOutput& out, cudaStream_t s) {
  DAY18_NVTX_RANGE("SwapBlocks");
  const std::vector<Tensor> gk = model_.key_caches(), gv = model_.value_caches();
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

}  // namespace day18
