// The flags that several subcommands share, declared once so that each is spelled, typed,
// validated and documented the same everywhere (`day18 tour|run|generate|kernel --help`):
//
//   --device auto|cpu|cuda   auto = the GPU if there is one
//   --dtype  auto|fp32|fp16|bf16 (float32/float16/bfloat16 too); auto = fp16 on cuda, fp32 on cpu
//   --preset tiny|llama-1b|llama-8b
//   --seed   a non-negative integer
//   --block-size 8|16|32
//
// Each add_* returns the CLI11 option, so a subcommand can add relations (->excludes(...)).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "engine/core/tensor.h"

namespace day18::cli {

CLI::Option* add_device_flag(CLI::App* sub, std::string& device, const std::string& help = "");
CLI::Option* add_dtype_flag(CLI::App* sub, std::string& dtype, const std::string& help = "");
CLI::Option* add_preset_flag(CLI::App* sub, std::string& preset, const std::string& help);
CLI::Option* add_seed_flag(CLI::App* sub, uint64_t& seed, const std::string& help);
CLI::Option* add_block_size_flag(CLI::App* sub, int64_t& block_size);

// Strict value checks on the text as typed ("5x", "1e3", 2^64 are errors, never truncated or
// wrapped), with messages that say the rule: a number in (0, 1] (--gpu-memory-utilization,
// --top-p); an integer >= lo, or in [lo, hi]; a finite number >= 0; a seed (0 .. 2^64 - 1).
CLI::Validator fraction_validator();
CLI::Validator integer_at_least(int64_t lo);
CLI::Validator integer_in(int64_t lo, int64_t hi);
CLI::Validator non_negative_number();
CLI::Validator seed_validator();

// A value no option of day18 takes: the empty string, given on purpose or by an unset shell
// variable (`--json "$OUT"`). Returns "--json: the value is empty ('') ..." for the first option of
// the parsed (sub)commands that got one, or "" when there is none. main() refuses the command with
// it (exit 2) before anything runs: an empty path must not silently mean "not given".
std::string empty_value_error(const CLI::App& app);

// A finite number > 0 (nan, inf, 0 and negatives refused; CLI::PositiveNumber lets nan through).
CLI::Validator positive_finite_number();

// "auto" -> cuda when a GPU is usable, else cpu; "cuda" without a GPU throws naming `command`.
Device resolve_device(const std::string& device, const char* command);
// "auto" -> fp16 on cuda, fp32 on cpu.
DType resolve_dtype(const std::string& dtype, Device device);

}  // namespace day18::cli
