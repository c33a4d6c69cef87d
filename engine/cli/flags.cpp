#include "engine/cli/flags.h"

#include <limits>

#include "engine/core/error.h"
#include "engine/core/memory.h"
#include "engine/core/parse.h"
#include "engine/runtime/model_config.h"

namespace day18::cli {

CLI::Option* add_device_flag(CLI::App* sub, std::string& device, const std::string& help) {
  return sub
      ->add_option("--device", device,
                   help.empty() ? "auto (the GPU if there is one), cpu or cuda" : help)
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

CLI::Option* add_dtype_flag(CLI::App* sub, std::string& dtype, const std::string& help) {
  return sub
      ->add_option("--dtype", dtype,
                   help.empty() ? "auto (fp16 on cuda, fp32 on cpu), fp32, fp16 or bf16" : help)
      ->check(CLI::IsMember({"auto", "fp32", "fp16", "bf16", "float32", "float16", "bfloat16"}));
}

CLI::Option* add_preset_flag(CLI::App* sub, std::string& preset, const std::string& help) {
  return sub->add_option("--preset", preset, help)
      ->check(CLI::IsMember(ModelConfig::preset_names()));
}

CLI::Option* add_seed_flag(CLI::App* sub, uint64_t& seed, const std::string& help) {
  return sub->add_option("--seed", seed, help)->check(seed_validator());
}

CLI::Option* add_block_size_flag(CLI::App* sub, int64_t& block_size) {
  return sub
      ->add_option("--block-size", block_size,
                   "Tokens per KV-cache block: 8, 16 or 32 (the PagedAttention kernels' sizes)")
      ->check(CLI::IsMember({int64_t{8}, int64_t{16}, int64_t{32}}));
}

CLI::Validator fraction_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number";
        if (!(v > 0 && v <= 1)) return text + " is not in (0, 1]";
        return "";
      },
      "in (0, 1]");
}

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  const std::string rule = hi == std::numeric_limits<int64_t>::max()
                               ? ">= " + std::to_string(lo)
                               : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, rule](std::string& text) -> std::string {
        int64_t v = 0;
        if (!try_parse_int(text, v)) return "'" + text + "' is not an integer";
        if (v < lo || v > hi) return text + " is not " + rule;
        return "";
      },
      rule);
}

CLI::Validator integer_at_least(int64_t lo) {
  return integer_in(lo, std::numeric_limits<int64_t>::max());
}

CLI::Validator non_negative_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number";
        if (!(v >= 0 && v <= std::numeric_limits<double>::max())) return text + " is not >= 0";
        return "";
      },
      ">= 0");
}

std::string empty_value_error(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands()) {
    for (const CLI::Option* opt : sub->get_options()) {
      if (opt->count() == 0 || opt->get_type_size() == 0) continue;  // not given, or a flag
      for (const std::string& r : opt->results())
        if (r.empty()) {
          if (opt->get_positional())
            return sub->get_name() + ": the " + opt->get_name(true) +
                   " argument is empty (''): give one";
          return opt->get_name() + ": the value is empty (''): give one, or leave " +
                 opt->get_name() + " out for its default";
        }
    }
    if (std::string e = empty_value_error(*sub); !e.empty()) return e;
  }
  return "";
}

CLI::Validator positive_finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number";
        if (!(v > 0 && v <= std::numeric_limits<double>::max())) return text + " is not > 0";
        return "";
      },
      "> 0");
}

CLI::Validator seed_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t v = 0;
        if (!try_parse_uint(text, v)) return "'" + text + "' is not an integer in [0, 2^64 - 1]";
        return "";
      },
      "in [0, 2^64 - 1]");
}

Device resolve_device(const std::string& device, const char* command) {
  if (device == "auto") return cuda_available() ? Device::cuda : Device::cpu;
  const Device d = parse_device(device);
  if (d == Device::cuda)
    DAY18_REQUIRE(cuda_available(), command, ": --device cuda but ", cuda_unavailable_reason());
  return d;
}

DType resolve_dtype(const std::string& dtype, Device device) {
  if (dtype == "auto") return device == Device::cuda ? DType::f16 : DType::f32;
  return parse_dtype(dtype);
}

}  // namespace day18::cli
