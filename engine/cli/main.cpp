// day18: the course's one executable.
//   day18 tour                      guided run of one inference step, stage by stage
//   day18 tour --kernels            every Day 18 kernel checked and timed (GPU, or CPU backend)
//   day18 kernel <op> --in a.safetensors --out b.safetensors --device cpu|cuda
//   day18 kernel --list [--markdown]
//   day18 run --preset llama-1b --device cuda --requests 64 --cuda-graphs on   (the engine)
//   day18 --paged-attention readable tour   (any command, with the lab 02 attention kernel)
//   day18 generate --model <hf folder> | --preset tiny --prompt-ids 1,2,3 --max-tokens 16
//   day18 --version                 the version and the git commit it was built from
//   day18 --verbose <command>       errors keep their source location (file:line)
#include <cstdio>
#include <exception>
#include <string>

#include "engine/cli/commands.h"
#include "engine/cli/error_text.h"
#include "engine/cli/flags.h"
#include "engine/core/build_info.h"
#include "engine/core/error.h"
#include "engine/ops/attention.h"

int main(int argc, char** argv) {
  CLI::App app{"day18: how one LLM inference step executes on a GPU (vLLM course, Day 18)"};
  app.require_subcommand(1);
  // Every option's default in every --help (subcommands inherit the parent's option defaults, so
  // this must come before they are added); --version: the version and the commit it was built at.
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", std::string("day18 ") + day18::version() + " (commit " +
                                        day18::git_commit() + ")");
  // Process-wide: which PagedAttention kernel `auto` means (lab 02 runs the pipeline on the
  // readable kernel: scripts/lab run 02 -- tour passes --paged-attention readable).
  std::string paged_attention = "auto";
  app.add_option("--paged-attention", paged_attention,
                 "PagedAttention kernel for every call that asks for the automatic choice: auto "
                 "(the engine's rule: v1 or v2, and the tensor-core prefill kernel for sequences "
                 "of more than 8 tokens in a step), v1, v2, or readable (the lab 02 kernel); a "
                 "forced version runs every token, prefill included")
      ->check(CLI::IsMember({"auto", "v1", "v2", "readable"}));
  bool verbose = false;
  app.add_flag("--verbose", verbose,
               "Error messages keep the source location (file:line) they were raised at");
  day18::cli::Runner tour = day18::cli::add_tour_command(app);
  day18::cli::Runner kernel = day18::cli::add_kernel_command(app);
  day18::cli::Runner generate = day18::cli::add_generate_command(app);
  day18::cli::Runner run = day18::cli::add_run_command(app);
  day18::cli::Runner probe = day18::cli::add_probe_command(app);
  day18::cli::Runner kernel_analysis = day18::cli::add_kernel_analysis_commands(app);
  day18::cli::Runner trace = day18::cli::add_trace_command(app);
  day18::cli::Runner report = day18::cli::add_report_command(app);
  day18::cli::Runner tune = day18::cli::add_tune_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other command-line error exits 2, like day18::Error
    // (CLI11 would return its own codes, 105 and up), and names the flag and the value given.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (const std::string empty = day18::cli::empty_value_error(app); !empty.empty()) {
    std::fprintf(stderr, "day18: error: %s\n", empty.c_str());
    return 2;
  }
  try {
    day18::set_default_paged_attention_version(day18::parse_paged_attention_version(paged_attention));
    if (app.got_subcommand("tour")) return tour();
    if (app.got_subcommand("kernel")) return kernel();
    if (app.got_subcommand("generate")) return generate();
    if (app.got_subcommand("run")) return run();
    if (app.got_subcommand("probe")) return probe();
    if (app.got_subcommand("trace")) return trace();
    if (app.got_subcommand("report")) return report();
    if (app.got_subcommand("tune")) return tune();
    if (app.got_subcommand("classify") || app.got_subcommand("analyze") || app.got_subcommand("calibrate")) return kernel_analysis();
  } catch (const std::exception& e) {
    const day18::cli::FailureText f = day18::cli::describe_failure(e, verbose);
    std::fprintf(stderr, "%s\n", f.text.c_str());
    return f.exit_code;
  }
  return 0;
}
