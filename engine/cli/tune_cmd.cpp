// `day18 tune`: the tuning experiments (engine/tuning/, docs/tuning.md).
//
//   day18 tune block-size [--json FILE] [--quick] [--budget-s S] [--roof FILE]
//   day18 tune batch-size [--presets llama-1b,llama-8b] [--batches 1,8,64,256] ...
//   day18 tune precision  ...
//   day18 tune show FILE.json [--plot DIR]     the tables of a recorded run, on any machine
//
// Every configuration is passed to the kernel, checked against the oracle, then timed (median
// and p20-p80 of repeats until the spread is small or the budget is spent); the JSON
// (schema day18.tune.v1) is what `day18 report` and scripts/plot_experiments.py read. Without a
// GPU the experiments say so (exit 1) and `tune show` still prints and plots recorded results.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/cli/commands.h"
#include "engine/cli/flags.h"
#include "engine/cli/plot_scripts.h"
#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/core/memory.h"
#include "engine/profiling/kernel_analysis.h"
#include "engine/tuning/experiment.h"
#include "engine/tuning/gpu_support.h"

namespace day18::cli {
namespace {

namespace fs = std::filesystem;

struct TuneCliOptions {
  std::string json, roof;
  bool quick = false;
  double budget_s = 0;
  std::vector<std::string> presets;
  std::vector<int> batches;
  uint64_t seed = 18;
  std::string show_file, plot_dir;
};

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number";
        if (!(v > 0 && v < 1e9)) return text + " is not a number of seconds > 0";
        return "";
      },
      "> 0");
}



std::string command_line(const std::string& exp, const TuneCliOptions& o) {
  std::string c = "day18 tune " + exp;
  if (o.quick) c += " --quick";
  if (o.budget_s > 0) c += " --budget-s " + detail::concat(o.budget_s);
  if (!o.roof.empty()) c += " --roof " + o.roof;
  if (!o.presets.empty()) {
    c += " --presets ";
    for (size_t i = 0; i < o.presets.size(); ++i) c += (i ? "," : "") + o.presets[i];
  }
  if (!o.batches.empty()) {
    c += " --batches ";
    for (size_t i = 0; i < o.batches.size(); ++i)
      c += (i ? "," : "") + std::to_string(o.batches[i]);
  }
  if (o.seed != 18) c += " --seed " + std::to_string(o.seed);
  if (!o.json.empty()) c += " --json " + o.json;
  return c;
}

int run_experiment(const std::string& exp, const TuneCliOptions& o) {
  // Flags first, so that a mistake is reported on any machine.
  if (!o.json.empty()) require_writable_path(o.json, "tune " + exp + " --json");
  require_distinct_paths({{"--roof", o.roof}, {"--json", o.json}});
  if (!o.roof.empty()) (void)read_roof_json(o.roof);  // InvalidArgument naming the file
  std::set<int> seen;
  for (int b : o.batches)
    DAY18_REQUIRE(seen.insert(b).second, "tune ", exp, " --batches: ", b,
                  " is given twice (each batch size once)");
  std::set<std::string> seen_presets;
  for (const std::string& p : o.presets)
    DAY18_REQUIRE(seen_presets.insert(p).second, "tune ", exp, " --presets: ", p,
                  " is given twice (each model once)");
  if (!cuda_available()) {
    std::fprintf(stderr,
                 "day18 tune %s: this experiment needs a CUDA GPU, and there is none here (%s).\n"
                 "  Recorded results can be shown and plotted on any machine:\n"
                 "    day18 tune show FILE.json [--plot DIR]\n"
                 "  (reference/results/<gpu>/ holds runs from real GPUs)\n",
                 exp.c_str(), cuda_unavailable_reason().c_str());
    return 1;
  }
  tuning::RunOptions r;
  r.quick = o.quick;
  r.budget_s = o.budget_s;
  r.roof_file = o.roof;
  r.presets = o.presets;
  r.batches = o.batches;
  r.seed = o.seed;
  r.command = command_line(exp, o);
  const tuning::Experiment e = exp == "block-size"   ? tuning::run_block_size(r)
                               : exp == "batch-size" ? tuning::run_batch_size(r)
                                                     : tuning::run_precision(r);
  std::fputs(tuning::experiment_tables(e).c_str(), stdout);
  if (!o.json.empty()) {
    tuning::write_experiment(o.json, e);
    std::printf("\nwrote %s (day18 tune show %s; scripts/plot_experiments.py %s --out DIR)\n",
                o.json.c_str(), o.json.c_str(), o.json.c_str());
  }
  return 0;
}

int run_show(const TuneCliOptions& o) {
  // The --plot folder before the tables, so that a mistake is not buried under them.
  DAY18_REQUIRE(o.plot_dir.empty() || fs::is_directory(o.plot_dir), "tune show --plot: '",
                o.plot_dir, "' is not a folder (create it first)");
  const tuning::Experiment e = tuning::read_experiment(o.show_file);
  std::fputs(tuning::experiment_tables(e).c_str(), stdout);
  if (o.plot_dir.empty()) return 0;
  const fs::path script = find_script("plot_experiments.py");
  if (script.empty()) {
    std::fprintf(stderr,
                 "tune show --plot: scripts/plot_experiments.py not found (run from the "
                 "repository); the tables above are all there is\n");
    return 1;
  }
  const std::string cmd = shell_quote(plot_python(script)) + " " + shell_quote(script.string()) + " " +
                          shell_quote(o.show_file) + " --out " + shell_quote(o.plot_dir);
  std::fflush(stdout);
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::fprintf(stderr,
                 "tune show --plot: `%s` exited with %d (matplotlib missing? "
                 "scripts/lab setup makes .venv)\n",
                 cmd.c_str(), WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
    return 1;
  }
  return 0;
}

}  // namespace

Runner add_tune_command(CLI::App& app) {
  auto o = std::make_shared<TuneCliOptions>();
  CLI::App* tune = app.add_subcommand(
      "tune",
      "Tuning experiments: block size, batch size, precision (each configuration "
      "checked, then timed; JSON for day18 report); `tune show` re-prints recorded runs");
  tune->require_subcommand(1);
  struct Exp {
    const char* name;
    const char* help;
  };
  const Exp exps[] = {
      {"block-size",
       "PagedAttention threads x heads/block, KV block size, v2 partition size; RMSNorm threads "
       "per block"},
      {"batch-size",
       "The decode step of llama-1b / llama-8b shapes at batch 1..256: step ms, kernel ms per "
       "family, memory, tokens/s, x the weight-read floor, GPU busy, the knee"},
      {"precision",
       "fp32 / fp16 / bf16 per kernel and end to end (tokens/s, memory, logit difference and "
       "greedy agreement vs fp32)"},
  };
  std::vector<CLI::App*> subs;
  for (const Exp& x : exps) {
    CLI::App* s = tune->add_subcommand(x.name, x.help);
    s->add_option("--json", o->json, "Write the results here (schema day18.tune.v1)");
    s->add_flag("--quick", o->quick, "Fewer points and smaller shapes (under 90 s on an H200)");
    s->add_option("--budget-s", o->budget_s,
                  "Seconds of timing for the whole run, shared by its points (default 240, "
                  "--quick 45)")
        ->check(positive_number());
    s->add_option("--roof", o->roof,
                  "The roof from `day18 probe --json` or `day18 calibrate --json` (default: P "
                  "and the FLOP peaks measured in this process)");
    add_seed_flag(s, o->seed, "Seed of the random inputs and weights");
    if (std::string(x.name) == "batch-size") {
      s->add_option("--presets", o->presets,
                    "Model shapes (default llama-1b,llama-8b; --quick llama-1b)")
          ->delimiter(',')
          ->check(CLI::IsMember({"tiny", "llama-1b", "llama-8b"}));
      s->add_option("--batches", o->batches,
                    "Batch sizes (default 1,2,4,...,256; --quick 1,8,64,256)")
          ->delimiter(',')
          ->check(integer_in(1, 1024));
    }
    subs.push_back(s);
  }
  CLI::App* show = tune->add_subcommand("show", "Print the tables of a recorded run (any machine)");
  show->add_option("file", o->show_file, "A `day18 tune ... --json` file")->required();
  show->add_option("--plot", o->plot_dir,
                   "Also draw its figure into this folder (scripts/plot_experiments.py)");
  return [o, subs, show] {
    if (show->parsed()) return run_show(*o);
    for (CLI::App* s : subs)
      if (s->parsed()) return run_experiment(s->get_name(), *o);
    return 2;
  };
}

}  // namespace day18::cli
