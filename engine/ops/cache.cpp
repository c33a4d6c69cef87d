#include "engine/ops/cache.h"

#include <climits>
#include <map>
#include <mutex>

#include "engine/core/memory.h"
#include "engine/cpu/cache.h"

namespace day18 {
namespace {

constexpr std::initializer_list<DType> kCacheDtypes = {DType::f32, DType::f16, DType::bf16};

// [num_tokens, num_kv_heads, head_size] with each token's heads contiguous; any token stride.
void expect_token_rows(const Tensor& t, const char* name) {
  expect_defined(t, name);
  expect_dtype_in(t, name, kCacheDtypes);
  expect_dim(t, name, 3);
  DAY18_REQUIRE(
      t.stride(2) == 1 && t.stride(1) == t.size(2) && t.stride(0) >= t.size(1) * t.size(2), name,
      ": each token's [num_kv_heads, head_size] must be contiguous (token stride >= ",
      t.size(1) * t.size(2), "), got strides [", t.stride(0), ", ", t.stride(1), ", ", t.stride(2),
      "] for ", t.describe());
}

void expect_same_device(const Tensor& t, const char* name, const Tensor& ref,
                        const char* ref_name) {
  DAY18_REQUIRE(t.device() == ref.device(), name, " is on ", device_name(t.device()), " but ",
                ref_name, " is on ", device_name(ref.device()), " (", t.describe(), ")");
}

// A KV cache [num_blocks, num_kv_heads, block_size, head_size], contiguous, non-empty blocks.
void expect_cache(const Tensor& t, const char* name) {
  expect_defined(t, name);
  expect_dtype_in(t, name, kCacheDtypes);
  expect_dim(t, name, 4);
  expect_contiguous(t, name);
  DAY18_REQUIRE(
      t.size(0) > 0 && t.size(1) > 0 && t.size(2) > 0 && t.size(3) > 0, name,
      ": every dimension of [num_blocks, num_kv_heads, block_size, head_size] must be > 0, got ",
      t.describe());
}

void expect_block_mapping(const Tensor& m) {
  expect_defined(m, "block_mapping");
  expect_dtype(m, "block_mapping", DType::i64);
  expect_shape(m, "block_mapping", {kAnyDim, 2});
  expect_contiguous(m, "block_mapping");
}

// Host mapping: every id checked, nothing copied before.
void check_host_block_ids(const Tensor& m, int64_t num_src, int64_t num_dst) {
  const int64_t* p = m.ptr<int64_t>();
  for (int64_t i = 0; i < m.size(0); ++i) {
    DAY18_REQUIRE(p[2 * i] >= 0 && p[2 * i] < num_src, "block_mapping[", i,
                  "][0] (src) = ", p[2 * i], " is out of range [0, ", num_src, ")");
    DAY18_REQUIRE(p[2 * i + 1] >= 0 && p[2 * i + 1] < num_dst, "block_mapping[", i,
                  "][1] (dst) = ", p[2 * i + 1], " is out of range [0, ", num_dst, ")");
  }
}

bool is_pinned(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

// Validates a swap; returns true when both sides are on the host (CPU copy).
bool validate_swap(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                   bool need_pinned) {
  expect_cache(src, "src");
  expect_cache(dst, "dst");
  expect_same_dtype(dst, "dst", src, "src");
  DAY18_REQUIRE(
      src.size(1) == dst.size(1) && src.size(2) == dst.size(2) && src.size(3) == dst.size(3),
      "dst: blocks must have src's shape [num_kv_heads, block_size, head_size] = [", src.size(1),
      ", ", src.size(2), ", ", src.size(3), "], got ", dst.describe());
  expect_block_mapping(block_mapping);
  DAY18_REQUIRE(block_mapping.device() == Device::cpu,
                "block_mapping: must be a host tensor (the ids are read by the CPU), got ",
                block_mapping.describe());
  check_host_block_ids(block_mapping, src.size(0), dst.size(0));
  if (!src.is_cuda() && !dst.is_cuda()) return true;
  DAY18_REQUIRE(!(src.is_cuda() && dst.is_cuda()),
                "swap_blocks: src and dst are both on cuda; swap moves blocks between the GPU "
                "and host memory (use copy_blocks within one cache)");
  if (need_pinned) {
    const bool src_host = !src.is_cuda();
    const Tensor& host = src_host ? src : dst;
    DAY18_REQUIRE(is_pinned(host.data()), src_host ? "src" : "dst",
                  ": host cache must be pinned (page-locked, Storage::pinned / cudaMallocHost): "
                  "pageable memory cannot be copied asynchronously; got pageable ",
                  host.describe());
  }
  return false;
}

struct ErrorRecords {
  std::mutex mu;
  std::map<std::pair<int, std::string>, Buffer> records;  // (device, index name) -> [2] int64
};
ErrorRecords& error_records() {
  static ErrorRecords* r = new ErrorRecords;  // never destroyed: outlives static CUDA teardown
  return *r;
}

}  // namespace

namespace detail {

Tensor index_error_record(const std::string& index_name) {
  int dev = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&dev));
  ErrorRecords& r = error_records();
  std::lock_guard<std::mutex> lock(r.mu);
  auto key = std::make_pair(dev, index_name);
  auto it = r.records.find(key);
  if (it == r.records.end()) {
    it = r.records.emplace(key, Buffer(2 * sizeof(int64_t), Storage::device)).first;
    Tensor t(it->second.data(), DType::i64, {2}, Device::cuda);
    cuda::reset_index_errors(t, nullptr);
    DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  }
  return Tensor(it->second.data(), DType::i64, {2}, Device::cuda);
}

IndexErrors run_checked(const std::function<void(const Tensor& errors)>& launch,
                        cudaStream_t stream) {
  void* p = nullptr;
  // Stream-ordered allocation: no device-wide sync as a cudaFree would do.
  DAY18_CUDA_CHECK(cudaMallocAsync(&p, 2 * sizeof(int64_t), stream));
  Tensor errors(p, DType::i64, {2}, Device::cuda);
  int64_t host[2] = {0, 0};
  try {
    cuda::reset_index_errors(errors, stream);
    launch(errors);
    DAY18_CUDA_CHECK(cudaMemcpyAsync(host, p, sizeof(host), cudaMemcpyDeviceToHost, stream));
    DAY18_CUDA_CHECK(cudaFreeAsync(p, stream));
    DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (...) {
    (void)cudaFreeAsync(p, stream);
    throw;
  }
  return host[0] ? IndexErrors{host[0], host[1]} : IndexErrors{};
}

std::string bad_slot_message(int64_t row, int64_t value, const Tensor& key_cache,
                             const std::string& tail) {
  return concat("slot_mapping[", row, "] = ", value, " is out of range: the cache has ",
                key_cache.size(0) * key_cache.size(2), " slots (", key_cache.size(0),
                " blocks x block_size ", key_cache.size(2), "); -1 means skip", tail);
}

int64_t read_device_i64(const Tensor& t, int64_t index, cudaStream_t stream) {
  int64_t v = 0;
  DAY18_CUDA_CHECK(cudaMemcpyAsync(&v, static_cast<const int64_t*>(t.data()) + index, sizeof(v),
                                   cudaMemcpyDeviceToHost, stream));
  DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  return v;
}

}  // namespace detail

IndexErrors take_index_errors(const std::string& index_name, cudaStream_t stream) {
  Tensor rec = detail::index_error_record(index_name);
  int64_t host[2] = {0, 0};
  DAY18_CUDA_CHECK(cudaMemcpyAsync(host, rec.data(), sizeof(host), cudaMemcpyDeviceToHost, stream));
  cuda::reset_index_errors(rec, stream);
  DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host[0] ? IndexErrors{host[0], host[1]} : IndexErrors{};
}

void reshape_and_cache(const Tensor& key, const Tensor& value, const Tensor& key_cache,
                       const Tensor& value_cache, const Tensor& slot_mapping, bool check_slots,
                       cudaStream_t stream) {
  expect_token_rows(key, "key");
  expect_token_rows(value, "value");
  expect_same_dtype(value, "value", key, "key");
  expect_shape(value, "value", {key.size(0), key.size(1), key.size(2)});
  expect_cache(key_cache, "key_cache");
  expect_cache(value_cache, "value_cache");
  expect_same_dtype(key_cache, "key_cache", key, "key");
  expect_same_dtype(value_cache, "value_cache", key, "key");
  expect_shape(key_cache, "key_cache", {kAnyDim, key.size(1), kAnyDim, key.size(2)});
  expect_shape(value_cache, "value_cache",
               {key_cache.size(0), key_cache.size(1), key_cache.size(2), key_cache.size(3)});
  expect_defined(slot_mapping, "slot_mapping");
  expect_dtype(slot_mapping, "slot_mapping", DType::i64);
  expect_shape(slot_mapping, "slot_mapping", {key.size(0)});
  expect_contiguous(slot_mapping, "slot_mapping");
  expect_same_device(value, "value", key, "key");
  expect_same_device(key_cache, "key_cache", key, "key");
  expect_same_device(value_cache, "value_cache", key, "key");
  expect_same_device(slot_mapping, "slot_mapping", key, "key");
  DAY18_REQUIRE(key.size(0) <= INT_MAX, "key: num_tokens ", key.size(0), " exceeds ", INT_MAX);

  if (!key.is_cuda()) {
    // Every slot checked before anything is written (the oracle checks again as it goes).
    const int64_t* s = slot_mapping.ptr<int64_t>();
    const int64_t num_slots = key_cache.size(0) * key_cache.size(2);
    for (int64_t t = 0; t < key.size(0); ++t)
      DAY18_REQUIRE(s[t] == -1 || (s[t] >= 0 && s[t] < num_slots),
                    detail::bad_slot_message(t, s[t], key_cache));
    cpu::reshape_and_cache(key, value, key_cache, value_cache, slot_mapping);
    return;
  }
  if (!check_slots) {
    cuda::reshape_and_cache(key, value, key_cache, value_cache, slot_mapping,
                            detail::index_error_record("slot_mapping"), stream);
    return;
  }
  const IndexErrors e = detail::run_checked(
      [&](const Tensor& errors) {
        cuda::reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, errors, stream);
      },
      stream);
  if (e.count)
    DAY18_REQUIRE(
        false,
        detail::bad_slot_message(
            e.first_row, detail::read_device_i64(slot_mapping, e.first_row, stream), key_cache,
            detail::concat(" (", e.count, " bad slot(s); those tokens were not written)")));
}

void copy_blocks(const std::vector<Tensor>& key_caches, const std::vector<Tensor>& value_caches,
                 const Tensor& block_mapping, bool check_blocks, cudaStream_t stream) {
  DAY18_REQUIRE(!key_caches.empty(), "key_caches: need at least one layer");
  DAY18_REQUIRE(value_caches.size() == key_caches.size(), "value_caches: ", value_caches.size(),
                " layers, but key_caches has ", key_caches.size());
  DAY18_REQUIRE(key_caches.size() <= size_t(cuda::kMaxCopyBlocksLayers),
                "key_caches: ", key_caches.size(), " layers, at most ", cuda::kMaxCopyBlocksLayers,
                " supported in one launch");
  const Tensor& ref = key_caches[0];
  for (size_t l = 0; l < key_caches.size(); ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      const Tensor& c = kv == 0 ? key_caches[l] : value_caches[l];
      const std::string name = detail::concat(kv == 0 ? "key_caches[" : "value_caches[", l, "]");
      expect_cache(c, name.c_str());
      expect_same_dtype(c, name.c_str(), ref, "key_caches[0]");
      expect_same_device(c, name.c_str(), ref, "key_caches[0]");
      expect_shape(c, name.c_str(), {ref.size(0), ref.size(1), ref.size(2), ref.size(3)});
    }
  }
  expect_block_mapping(block_mapping);
  expect_same_device(block_mapping, "block_mapping", ref, "key_caches[0]");
  DAY18_REQUIRE(block_mapping.size(0) <= INT_MAX, "block_mapping: ", block_mapping.size(0),
                " pairs exceed ", INT_MAX);
  if (!ref.is_cuda()) {
    check_host_block_ids(block_mapping, ref.size(0), ref.size(0));
    cpu::copy_blocks(key_caches, value_caches, block_mapping);
    return;
  }
  if (!check_blocks) {
    cuda::copy_blocks(key_caches, value_caches, block_mapping,
                      detail::index_error_record("block_mapping"), stream);
    return;
  }
  const IndexErrors e = detail::run_checked(
      [&](const Tensor& errors) {
        cuda::copy_blocks(key_caches, value_caches, block_mapping, errors, stream);
      },
      stream);
  if (e.count)
    DAY18_REQUIRE(false, "block_mapping[", e.first_row, "] = (",
                  detail::read_device_i64(block_mapping, 2 * e.first_row, stream), ", ",
                  detail::read_device_i64(block_mapping, 2 * e.first_row + 1, stream),
                  ") has a block id out of range [0, ", ref.size(0), ") (", e.count,
                  " bad pair(s); those pairs were not copied)");
}

void copy_blocks(const Tensor& key_caches, const Tensor& value_caches, const Tensor& block_mapping,
                 bool check_blocks, cudaStream_t stream) {
  expect_defined(key_caches, "key_caches");
  expect_defined(value_caches, "value_caches");
  expect_dim(key_caches, "key_caches", 5);
  expect_dim(value_caches, "value_caches", 5);
  expect_contiguous(key_caches, "key_caches");
  expect_contiguous(value_caches, "value_caches");
  expect_shape(value_caches, "value_caches",
               {key_caches.size(0), key_caches.size(1), key_caches.size(2), key_caches.size(3),
                key_caches.size(4)});
  const std::vector<int64_t> sizes = key_caches.sizes();
  const std::vector<int64_t> layer(sizes.begin() + 1, sizes.end());  // one layer's cache
  std::vector<Tensor> k, v;
  for (int64_t l = 0; l < key_caches.size(0); ++l) {
    k.push_back(key_caches.slice0(l, l + 1).view(layer));
    v.push_back(value_caches.slice0(l, l + 1).view(layer));
  }
  copy_blocks(k, v, block_mapping, check_blocks, stream);
}

void swap_blocks(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                 SwapStrategy strategy, cudaStream_t stream) {
  if (validate_swap(src, dst, block_mapping, /*need_pinned=*/true)) {
    cpu::swap_blocks(src, dst, block_mapping);
    return;
  }
  DAY18_REQUIRE(src.size(0) <= INT_MAX && dst.size(0) <= INT_MAX,
                "swap_blocks: more than 2^31 blocks");
  cuda::swap_blocks(src, dst, block_mapping, strategy, stream);
}

void swap_blocks(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                 cudaStream_t stream) {
  swap_blocks(src, dst, block_mapping, SwapStrategy::automatic, stream);
}

void swap_blocks_naive(const Tensor& src, const Tensor& dst, const Tensor& block_mapping,
                       cudaStream_t stream) {
  if (validate_swap(src, dst, block_mapping, /*need_pinned=*/false)) {
    cpu::swap_blocks(src, dst, block_mapping);
    return;
  }
  cuda::swap_blocks_naive(src, dst, block_mapping, stream);
}

}  // namespace day18
