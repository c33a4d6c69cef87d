// Subcommands of the `day18` executable. Each registers itself on the CLI11 app and returns the
// flag that says it was chosen; main() runs the chosen one.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace day18::cli {

using Runner = std::function<int()>;

Runner add_kernel_command(CLI::App& app);
Runner add_tour_command(CLI::App& app);
Runner add_generate_command(CLI::App& app);
Runner add_run_command(CLI::App& app);
Runner add_probe_command(CLI::App& app);  // day18 probe: copy bandwidth, P, datasheet peaks
Runner add_kernel_analysis_commands(CLI::App& app);  // day18 classify, analyze, calibrate
Runner add_trace_command(CLI::App& app);  // day18 trace: the timeline (CUPTI + ranges), metrics
Runner add_report_command(CLI::App& app);  // day18 report: the optimization report
Runner add_tune_command(CLI::App& app);  // day18 tune: block-size, batch-size, precision, show

}  // namespace day18::cli
