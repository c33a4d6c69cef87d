// `day18 analyze`: the kernel profile analysis page (the day's second deliverable): each kernel's
// time share, bytes, FLOPs, intensity, % of roof, verdict, evidence and what to try, as markdown,
// with the roofline figure that scripts/plot_roofline.py draws from the same numbers.
//
//   day18 analyze --ncu decode.csv --roof roof.json --preset llama-1b --batch 8 --context 1024
//                 --out reference/results/h200/kernel_analysis.md
//                 --roofline reference/results/h200/roofline.png
#include <sys/wait.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/cli/plot_scripts.h"
#include "engine/cli/kernel_analysis_cmds.h"
#include "engine/core/error.h"
#include "engine/core/file_io.h"

namespace day18::cli {
namespace {

namespace fs = std::filesystem;

struct AnalyzeOptions {
  ProfileInputs in;
  std::string out;
  std::string roofline;
  std::string title_command;
};



int run_analyze(const AnalyzeOptions& o) {
  DAY18_REQUIRE(!o.out.empty(), "analyze: --out FILE.md is required (the page to write)");
  // The JSON beside the figure (or the page): the figure is drawn from it.
  std::string json = o.in.json;
  if (json.empty() && !o.roofline.empty())
    json = fs::path(o.roofline).replace_extension(".json").string();
  // Every output writable and each its own file (the page, the JSON, the figure, and none of
  // them an input), before the profile is read.
  require_writable_path(o.out, "--out");
  if (!json.empty()) require_writable_path(json, o.in.json.empty() ? "--roofline" : "--json");
  if (!o.roofline.empty()) require_writable_path(o.roofline, "--roofline");
  require_distinct_paths({{"--ncu", o.in.ncu},
                          {"--trace", o.in.trace},
                          {"--roof", o.in.roof_file},
                          {"--out", o.out},
                          {o.in.json.empty() ? "the JSON beside --roofline" : "--json", json},
                          {"--roofline", o.roofline}});
  const Analysis a = run_profile_analysis(o.in, "analyze");
  const fs::path page(o.out);
  const fs::path page_dir = page.has_parent_path() ? page.parent_path() : fs::path(".");
  write_analysis_json(a, json, o.in.json.empty() ? "--roofline" : "--json");

  std::string png_rel;
  std::string plot_error;
  if (!o.roofline.empty()) {
    std::error_code ec;
    png_rel = fs::relative(fs::absolute(o.roofline), fs::absolute(page_dir), ec).string();
    if (ec || png_rel.empty()) png_rel = o.roofline;
    const fs::path script = find_script("plot_roofline.py");
    if (script.empty()) {
      plot_error = "scripts/plot_roofline.py not found (run from the repository)";
    } else {
      const std::string cmd = shell_quote(plot_python(script)) + " " + shell_quote(script.string()) + " " +
                              shell_quote(json) + " --out " + shell_quote(o.roofline);
      std::fflush(stdout);
      const int rc = std::system(cmd.c_str());
      if (rc != 0)
        plot_error = "the figure was not drawn: `" + cmd + "` exited with " +
                     std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : rc) +
                     " (matplotlib missing? scripts/lab setup makes .venv)";
    }
  }
  std::string command = "day18 analyze";
  if (!o.in.ncu.empty()) command += " --ncu " + o.in.ncu;
  if (!o.in.trace.empty()) command += " --trace " + o.in.trace;
  if (!o.in.preset.empty())
    command += " --preset " + o.in.preset + " --batch " + std::to_string(o.in.batch) +
               " --context " + std::to_string(o.in.context) + " --dtype " + o.in.dtype;
  if (!o.in.roof_file.empty()) command += " --roof " + o.in.roof_file;
  const std::string md = analysis_markdown(a, png_rel, command);
  write_file_atomically(o.out, "--out", [&](std::ostream& out) { out << md; });
  std::printf("wrote %s (%zu kernels, %d launches)%s%s\n", o.out.c_str(), a.kernels.size(),
              a.launches, o.roofline.empty() ? "" : ", figure ", o.roofline.c_str());
  if (!plot_error.empty()) throw Error("analyze: " + plot_error);
  return 0;
}

}  // namespace

Runner add_analyze_command(CLI::App& app) {
  auto o = std::make_shared<AnalyzeOptions>();
  CLI::App* sub = app.add_subcommand(
      "analyze",
      "The kernel profile analysis page (markdown): each kernel's time share, bytes, "
      "FLOPs, intensity, % of roof, verdict, evidence and what to try");
  add_profile_input_flags(sub, o->in);
  sub->add_option("--out", o->out, "The markdown page to write (required)");
  sub->add_option("--roofline", o->roofline,
                  "Also draw the roofline PNG (scripts/plot_roofline.py, from the JSON written "
                  "beside it) and link it from the page");
  return [o] { return run_analyze(*o); };
}

}  // namespace day18::cli
