// Registry entries of the KV-cache family: reshape_and_cache, copy_blocks, swap_blocks.
//
// Registry conventions chosen here (docs/ops.md is generated from these entries):
//   - copy_blocks takes the layers STACKED: key_caches / value_caches
//     [num_layers, num_blocks, num_kv_heads, block_size, head_size] (a file holds a fixed set of
//     named tensors; the C++ call also takes a list of per-layer caches).
//   - swap_blocks: a TensorStore holds all its tensors on one backend. On cuda the op keeps the
//     device side where it is and stages the host side ("dst" for direction=out, "src" for in)
//     in pinned memory it allocates itself, swaps, and copies the staging back into the store.
//     On cpu it is a plain host copy. block_mapping is read on the host either way.
//   - index checks (check_slots / check_blocks) default to on: the runner and the tour wait for
//     the kernel and throw on a bad index. The tour's cases switch them off so that the time
//     measured is the kernel's, not the sync's (their indices are valid by construction).
#include <algorithm>
#include <numeric>

#include "engine/ops/cache.h"
#include "engine/ops/registry.h"

namespace day18 {
namespace {

constexpr const char* kCacheLayout =
    "[num_blocks, num_kv_heads, block_size, head_size] f32/f16/bf16";

// Distinct random ids from [0, n), in random order (partial Fisher-Yates).
std::vector<int64_t> distinct_ids(Rng& rng, int64_t n, int64_t count) {
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = 0; i < count; ++i) std::swap(ids[i], ids[rng.randint(i, n - 1)]);
  ids.resize(count);
  return ids;
}

void fill_i64(const Tensor& t, const std::vector<int64_t>& v) {
  std::copy(v.begin(), v.end(), t.ptr<int64_t>());
}

double block_bytes(const Tensor& cache) {
  return double(cache.nbytes()) / double(cache.size(0));
}

OpDef reshape_and_cache_op() {
  OpDef op;
  op.name = "reshape_and_cache";
  op.family = "cache";
  op.summary = "write each token's K/V into its paged-cache slot (slot_mapping, -1 = skip)";
  op.inputs = {{"key", "[num_tokens, num_kv_heads, head_size] f32/f16/bf16"},
               {"value", "[num_tokens, num_kv_heads, head_size] f32/f16/bf16"},
               {"key_cache", kCacheLayout},
               {"value_cache", kCacheLayout},
               {"slot_mapping", "[num_tokens] int64: block_id * block_size + offset, -1 = skip"}};
  op.outputs = {{"key_cache", kCacheLayout}, {"value_cache", kCacheLayout}};
  op.attrs = {{"check_slots",
               "cuda: wait for the kernel and throw on an out-of-range slot (off: skip it and "
               "count it, see take_index_errors)",
               "true"}};
  op.run = [](OpContext& c) {
    reshape_and_cache(c.io.get("key"), c.io.get("value"), c.io.get("key_cache"),
                      c.io.get("value_cache"), c.io.get("slot_mapping"),
                      !c.attrs.has("check_slots") || c.attrs.boolean("check_slots"), c.stream);
  };
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
    // A prefill-sized step: 2048 tokens of Llama-3-8B's KV shape, 1/16 of them padding.
    const int64_t tokens = 2048, heads = 8, head = 128, block_size = 16, blocks = 512;
    io.put_owned("key", rng.normal_tensor({tokens, heads, head}, dt, 0, 1));
    io.put_owned("value", rng.normal_tensor({tokens, heads, head}, dt, 0, 1));
    io.put_owned("key_cache", rng.normal_tensor({blocks, heads, block_size, head}, dt, 0, 1));
    io.put_owned("value_cache", rng.normal_tensor({blocks, heads, block_size, head}, dt, 0, 1));
    std::vector<int64_t> slots = distinct_ids(rng, blocks * block_size, tokens);
    for (int64_t t = 0; t < tokens; t += 16) slots[t] = -1;
    fill_i64(io.emplace("slot_mapping", {tokens}, DType::i64), slots);
    attrs.set("check_slots", "false");  // timed: see the note at the top of this file
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    const int64_t* s = io.get("slot_mapping").ptr<int64_t>();
    const int64_t n = io.get("slot_mapping").numel();
    const int64_t written = n - std::count(s, s + n, int64_t(-1));
    const double row = double(io.get("key").nbytes()) / double(n);  // one token's K
    // K and V read for the tokens written, written once; slot_mapping read.
    return 2.0 * 2.0 * row * double(written) + double(io.get("slot_mapping").nbytes());
  };
  op.tour_dtypes = {DType::f16, DType::bf16, DType::f32};
  op.tolerance_scale = 0;  // a copy: bit-exact
  return op;
}

OpDef copy_blocks_op() {
  OpDef op;
  op.name = "copy_blocks";
  op.family = "cache";
  op.summary = "copy cache blocks src -> dst in every layer at once (copy-on-write)";
  const char* stacked =
      "[num_layers, num_blocks, num_kv_heads, block_size, head_size] f32/f16/bf16";
  op.inputs = {{"key_caches", stacked},
               {"value_caches", stacked},
               {"block_mapping", "[num_pairs, 2] int64 (src, dst); dst ids distinct, never a src"}};
  op.outputs = {{"key_caches", stacked}, {"value_caches", stacked}};
  op.attrs = {{"check_blocks", "cuda: wait and throw on an out-of-range block id", "true"}};
  op.run = [](OpContext& c) {
    copy_blocks(c.io.get("key_caches"), c.io.get("value_caches"), c.io.get("block_mapping"),
                !c.attrs.has("check_blocks") || c.attrs.boolean("check_blocks"), c.stream);
  };
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
    // 8 layers of Llama-3-8B's KV shape, 128 blocks; 32 forked blocks copied.
    const int64_t layers = 8, blocks = 128, heads = 8, block_size = 16, head = 128, pairs = 32;
    io.put_owned("key_caches",
                 rng.normal_tensor({layers, blocks, heads, block_size, head}, dt, 0, 1));
    io.put_owned("value_caches",
                 rng.normal_tensor({layers, blocks, heads, block_size, head}, dt, 0, 1));
    const std::vector<int64_t> ids = distinct_ids(rng, blocks, 2 * pairs);  // src and dst disjoint
    std::vector<int64_t> m;
    for (int64_t p = 0; p < pairs; ++p) m.insert(m.end(), {ids[p], ids[pairs + p]});
    fill_i64(io.emplace("block_mapping", {pairs, 2}, DType::i64), m);
    attrs.set("check_blocks", "false");
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    const Tensor& k = io.get("key_caches");
    const double block = double(k.nbytes()) / double(k.size(0) * k.size(1));
    const double pairs = double(io.get("block_mapping").size(0));
    // read + write, key and value, every layer; the mapping read.
    return 2.0 * 2.0 * block * pairs * double(k.size(0)) + double(io.get("block_mapping").nbytes());
  };
  op.tour_dtypes = {DType::f16};
  op.tolerance_scale = 0;
  return op;
}

OpDef swap_blocks_op() {
  OpDef op;
  op.name = "swap_blocks";
  op.family = "cache";
  op.summary = "move cache blocks GPU <-> pinned host memory, batched and asynchronous";
  op.inputs = {{"src", kCacheLayout},
               {"dst", kCacheLayout},
               {"block_mapping", "[num_pairs, 2] int64 (src, dst), read on the host"}};
  op.outputs = {{"dst", kCacheLayout}};
  op.attrs = {{"direction",
               "cuda: 'out' (src on the GPU, dst staged in pinned host memory) or 'in' (src "
               "staged in pinned host memory, dst on the GPU)",
               "out"},
              {"strategy", "cuda: automatic | zero_copy | copy_engine", "automatic"}};
  op.run = [](OpContext& c) {
    const Tensor& src = c.io.get("src");
    const Tensor& dst = c.io.get("dst");
    const Tensor& map_in = c.io.get("block_mapping");
    if (c.device() == Device::cpu) {
      swap_blocks(src, dst, map_in, c.stream);
      return;
    }
    const std::string dir = c.attrs.str_or("direction", "out");
    DAY18_REQUIRE(dir == "out" || dir == "in", "attribute 'direction': 'out' or 'in', got '", dir,
                  "'");
    const std::string st = c.attrs.str_or("strategy", "automatic");
    SwapStrategy strategy = SwapStrategy::automatic;
    if (st == "zero_copy")
      strategy = SwapStrategy::zero_copy;
    else if (st == "copy_engine")
      strategy = SwapStrategy::copy_engine;
    else
      DAY18_REQUIRE(st == "automatic",
                    "attribute 'strategy': automatic, zero_copy or copy_engine, got '", st, "'");
    OwnedTensor map(map_in.sizes(), map_in.dtype(), Storage::host);
    copy_tensor(map.view(), map_in, c.stream);
    if (dir == "out") {
      OwnedTensor staging(dst.sizes(), dst.dtype(), Storage::pinned);
      copy_tensor(staging.view(), dst, c.stream);  // keep the blocks the swap does not touch
      swap_blocks(src, staging.view(), map.view(), strategy, c.stream);
      copy_tensor(dst, staging.view(), c.stream);
    } else {
      OwnedTensor staging(src.sizes(), src.dtype(), Storage::pinned);
      copy_tensor(staging.view(), src, c.stream);
      swap_blocks(staging.view(), dst, map.view(), strategy, c.stream);
      DAY18_CUDA_CHECK(cudaStreamSynchronize(c.stream));  // staging must outlive the copy
    }
  };
  op.tour_timed = false;  // staging allocations dominate; BM_swap_blocks times the swap
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
    // Preempting a sequence: 128 scattered GPU blocks (32 KiB each) out to a 512-block CPU cache.
    const int64_t gpu_blocks = 256, cpu_blocks = 512, heads = 8, block_size = 16, head = 128,
                  pairs = 128;
    io.put_owned("src", rng.normal_tensor({gpu_blocks, heads, block_size, head}, dt, 0, 1));
    io.put_owned("dst", rng.normal_tensor({cpu_blocks, heads, block_size, head}, dt, 0, 1));
    const std::vector<int64_t> s = distinct_ids(rng, gpu_blocks, pairs);
    const std::vector<int64_t> d = distinct_ids(rng, cpu_blocks, pairs);
    std::vector<int64_t> m;
    for (int64_t p = 0; p < pairs; ++p) m.insert(m.end(), {s[p], d[p]});
    fill_i64(io.emplace("block_mapping", {pairs, 2}, DType::i64), m);
    attrs.set("direction", "out");
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    // Bytes across the host link (the tour's time also includes the staging copies of the
    // registry wrapper: benchmarks/bench_cache.cu measures the swap alone).
    return block_bytes(io.get("src")) * double(io.get("block_mapping").size(0));
  };
  op.tour_dtypes = {DType::f16};
  op.tolerance_scale = 0;
  return op;
}

}  // namespace

void register_cache_ops(OpRegistry& r) {
  r.add(reshape_and_cache_op());
  r.add(copy_blocks_op());
  r.add(swap_blocks_op());
}

}  // namespace day18
