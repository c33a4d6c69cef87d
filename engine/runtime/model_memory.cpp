#include "engine/runtime/model_memory.h"

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "engine/ops/attention.h"

namespace day18 {
namespace {

std::string gb(double bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(bytes < 1e8 ? 3 : 1) << bytes / 1e9 << " GB";
  return os.str();
}

}  // namespace

ModelMemory estimate_model_memory(const ModelConfig& c, DType dtype, Device device,
                                  const RuntimeLimits& lim) {
  const double e = double(dtype_size(dtype));
  const double T = double(lim.max_num_tokens), S = double(lim.max_num_seqs);
  const double H = double(c.hidden_size), I = double(c.intermediate_size);
  const double HD = double(c.num_heads * c.head_dim);
  ModelMemory m;
  m.weights = c.weight_bytes(dtype);
  m.kv_cache =
      double(lim.kv.num_blocks) * double(c.kv_cache_bytes_per_block(dtype, lim.kv.block_size));
  // The buffers LlamaModel's constructor allocates (llama_model.h lists them).
  m.scratch = e * (2 * T * H                   // residual, hidden
                   + T * double(c.qkv_size())  // qkv
                   + 2 * T * HD                // query, attn_out
                   + 3 * T * I                 // gate_up, act
                   + 2 * S * H                 // last_hidden, last_residual
                   + double(lim.max_model_len) * double(c.head_dim)) +         // cos | sin
              S * double(c.vocab_size) * (4 + (dtype == DType::f32 ? 0 : e));  // logits
  if (device == Device::cuda)
    m.scratch +=
        double(paged_attention_workspace_bound(lim.max_num_tokens, c.num_heads, c.num_kv_heads,
                                               c.head_dim, static_cast<int>(lim.max_model_len)));
  return m;
}

void check_memory_fits(const ModelMemory& need, Device device, const AvailableMemory& available,
                       const std::string& what) {
  if (need.total() <= double(available.bytes)) return;
  const bool host = device == Device::cpu;
  // What would help, the biggest part first.
  const std::string smaller_model =
      std::string("a smaller model (--preset tiny or llama-1b) or a 2-byte --dtype (fp16, bf16)") +
      (host ? " or --device cuda" : "");
  const std::string smaller_kv =
      "a smaller KV cache (day18 run: --num-gpu-blocks, --max-model-len; day18 generate: "
      "--max-tokens)";
  const bool kv_first = need.kv_cache > need.weights;
  DAY18_REQUIRE(
      false, what, " does not fit in ", host ? "host memory" : "GPU memory", ": it needs ",
      gb(need.total()), " (weights ", gb(need.weights), " + KV cache ", gb(need.kv_cache),
      " + activations ", gb(need.scratch), ") but ", gb(double(available.bytes)), " is available (",
      available.source, "). Use ", kv_first ? smaller_kv : smaller_model, ", or ",
      kv_first ? smaller_model : smaller_kv, "; DAY18_SKIP_MEMORY_CHECK=1 skips this check");
}

void check_model_fits(const ModelConfig& config, DType dtype, Device device,
                      const RuntimeLimits& limits) {
  if (const char* skip = std::getenv("DAY18_SKIP_MEMORY_CHECK");
      skip && std::strcmp(skip, "1") == 0)
    return;
  const ModelMemory need = estimate_model_memory(config, dtype, device, limits);
  const AvailableMemory avail =
      device == Device::cuda ? available_device_memory() : available_host_memory();
  check_memory_fits(need, device, avail,
                    config.name + " (" + std::string(dtype_name(dtype)) + ", " +
                        std::string(device_name(device)) + ")");
}

void check_swap_pool_fits(const ModelConfig& config, DType dtype, int64_t block_size,
                          int64_t num_cpu_blocks) {
  if (const char* skip = std::getenv("DAY18_SKIP_MEMORY_CHECK");
      skip && std::strcmp(skip, "1") == 0)
    return;
  if (num_cpu_blocks <= 0) return;
  const double need =
      double(num_cpu_blocks) * double(config.kv_cache_bytes_per_block(dtype, block_size));
  const AvailableMemory avail = available_host_memory();
  DAY18_REQUIRE(need <= double(avail.bytes), "--num-cpu-blocks ", num_cpu_blocks,
                ": the swap pool of ", config.name, " (", dtype_name(dtype), ", block size ",
                block_size, ") needs ", gb(need), " of pinned host memory but ",
                gb(double(avail.bytes)), " is available (", avail.source,
                "). Use fewer --num-cpu-blocks (0: no swapping); DAY18_SKIP_MEMORY_CHECK=1 skips "
                "this check");
}

}  // namespace day18
