// The kernel-profile subcommands, registered together by add_kernel_analysis_commands()
// (commands.h): `day18 classify`, `day18 analyze` (classify_cmd.cpp, analyze_cmd.cpp: the same
// inputs, a table or a markdown page) and `day18 calibrate` (calibrate_cmd.cpp: the kernels of
// known bottleneck, for ncu).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "engine/cli/commands.h"
#include "engine/profiling/kernel_analysis.h"

namespace day18::cli {

// The inputs classify and analyze share.
struct ProfileInputs {
  std::string ncu, trace;  // exactly one
  double peak_bw_gbps = 0, peak_tflops = 0, peak_fma_tflops = 0;
  std::string roof_file;  // day18 calibrate --json / day18 probe --json
  std::string preset;     // with batch/context: the decode-step cost model
  int64_t batch = 0, context = 0;
  std::string dtype = "fp16";
  double sm_count = 0;
  std::string trace_steps;  // "N" or "LO:HI"
  bool per_launch = false;
  bool calibration = false;
  std::string json;
};
void add_profile_input_flags(CLI::App* sub, ProfileInputs& in);
// Reads the input named by --ncu or --trace and analyzes it with the roof and plan the flags give.
Analysis run_profile_analysis(const ProfileInputs& in, const char* command);
// Writes analysis_json(a) to in.json (if given), atomically.
void write_analysis_json(const Analysis& a, const std::string& path, const char* flag);

Runner add_classify_command(CLI::App& app);
Runner add_analyze_command(CLI::App& app);
Runner add_calibrate_command(CLI::App& app);

}  // namespace day18::cli
