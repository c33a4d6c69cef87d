// `day18 report`: the optimization report (engine/report/report.h) from recorded JSON, written to
// DIR/report.md (atomically) with the figures it links: one PNG per experiment drawn by
// scripts/plot_experiments.py, and copies of the timeline and roofline PNGs given.
//
//   day18 report --probe bandwidth.json --roof roof.json --trace-metrics trace.metrics.json
//                --timeline-png timeline.png --analysis analysis.json --roofline-png roofline.png
//                --tune block_size.json --tune batch_size.json --tune precision.json
//                --out reference/results/h200/report
//
// Every input is optional except --out; a missing one gives its section the command to run.
#include <sys/wait.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/cli/plot_scripts.h"
#include "engine/cli/commands.h"
#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/report/report.h"

namespace day18::cli {
namespace {

namespace fs = std::filesystem;

struct ReportOptions {
  std::string probe, roof, trace_metrics, timeline_png, analysis, roofline_png, out;
  std::vector<std::string> tunes;
  bool no_plots = false;
};

// A given PNG must be a file we can read: checked before --out is made.
void check_figure(const std::string& src, const char* flag) {
  if (src.empty()) return;
  const std::string why = unreadable_reason(src);
  if (!why.empty()) throw InvalidArgument(std::string(flag) + " " + src + ": " + why);
}

// Copies a given PNG into DIR (under its own name) and returns the name the page links.
std::string copy_figure(const std::string& src, const char* flag, const fs::path& dir) {
  if (src.empty()) return "";
  check_figure(src, flag);
  const fs::path dst = dir / fs::path(src).filename();
  std::error_code ec;
  if (!fs::exists(dst) || !fs::equivalent(src, dst, ec))
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
  if (ec)
    throw InvalidArgument(std::string(flag) + " " + src + ": cannot copy it to " + dst.string() +
                          " (" + ec.message() + ")");
  return dst.filename().string();
}

std::string command_line(const ReportOptions& o) {
  std::string c = "day18 report";
  auto add = [&](const char* flag, const std::string& v) {
    if (!v.empty()) c += std::string(" ") + flag + " " + v;
  };
  add("--probe", o.probe);
  add("--roof", o.roof);
  add("--trace-metrics", o.trace_metrics);
  add("--timeline-png", o.timeline_png);
  add("--analysis", o.analysis);
  add("--roofline-png", o.roofline_png);
  for (const std::string& t : o.tunes) add("--tune", t);
  if (o.no_plots) c += " --no-plots";
  add("--out", o.out);
  return c;
}

int run_report(const ReportOptions& o) {
  // Read and check every input before anything is written.
  report::ReportInputs in;
  if (!o.probe.empty()) in.probe = report::read_probe(o.probe);
  if (!o.roof.empty()) in.roof = report::read_roof(o.roof);
  if (!o.trace_metrics.empty()) in.trace = report::read_trace_metrics(o.trace_metrics);
  if (!o.analysis.empty()) in.analysis = report::read_analysis(o.analysis);
  std::set<std::string> stems;
  for (const std::string& t : o.tunes) {
    in.tunes.push_back(report::read_tune(t));
    // One figure per experiment, named after its file: two files of one name would collide.
    if (!stems.insert(fs::path(t).stem().string()).second)
      throw InvalidArgument("--tune " + t + ": another --tune file has the same name (" +
                            fs::path(t).stem().string() + "); its figure would overwrite");
  }
  in.command = command_line(o);
  check_figure(o.timeline_png, "--timeline-png");
  check_figure(o.roofline_png, "--roofline-png");
  // Every file the report writes into --out has its own name: two given PNGs of one file name,
  // or a PNG named like an experiment's figure, would overwrite each other there.
  std::vector<std::pair<std::string, std::string>> names = {{"report.md", "the page"}};
  if (!o.timeline_png.empty())
    names.emplace_back(fs::path(o.timeline_png).filename().string(), "--timeline-png");
  if (!o.roofline_png.empty())
    names.emplace_back(fs::path(o.roofline_png).filename().string(), "--roofline-png");
  if (!o.no_plots)
    for (const std::string& t : o.tunes)
      names.emplace_back(fs::path(t).stem().string() + ".png", "the figure of --tune " + t);
  for (size_t i = 0; i < names.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (names[i].first == names[j].first)
        throw InvalidArgument(names[i].second + " and " + names[j].second + " would both be " +
                              (fs::path(o.out) / names[i].first).string() +
                              ": rename one of the files");

  const fs::path dir(o.out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir))
    throw InvalidArgument("--out " + o.out + ": cannot make the folder" +
                          (ec ? " (" + ec.message() + ")" : ""));
  in.timeline_png = copy_figure(o.timeline_png, "--timeline-png", dir);
  in.roofline_png = copy_figure(o.roofline_png, "--roofline-png", dir);

  in.tune_pngs.assign(in.tunes.size(), "");
  if (!o.tunes.empty() && !o.no_plots) {
    // A figure left by an earlier run must not be linked if this run fails to draw it.
    for (const std::string& t : o.tunes)
      fs::remove(dir / (fs::path(t).stem().string() + ".png"), ec);
    const fs::path script = find_script("plot_experiments.py");
    if (script.empty()) {
      in.figure_notes.push_back(
          "The experiment figures were not drawn: scripts/plot_experiments.py "
          "not found (run day18 from the repository).");
    } else {
      std::string cmd =
          shell_quote(plot_python(script)) + " " + shell_quote(script.string());
      for (const std::string& t : o.tunes) cmd += " " + shell_quote(t);
      cmd += " --out " + shell_quote(dir.string());
      std::fflush(stdout);
      const int rc = std::system(cmd.c_str());
      if (rc != 0)
        in.figure_notes.push_back("The experiment figures were not drawn: `" + cmd +
                                  "` exited with " +
                                  std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : rc) +
                                  " (matplotlib missing? scripts/lab setup makes .venv).");
    }
    for (size_t i = 0; i < o.tunes.size(); ++i) {
      const std::string png = fs::path(o.tunes[i]).stem().string() + ".png";
      if (fs::exists(dir / png)) in.tune_pngs[i] = png;
    }
  }
  const std::string md = report::report_markdown(in);
  const std::string page = (dir / "report.md").string();
  write_file_atomically(page, "--out", [&](std::ostream& out) { out << md; });
  int figures = 0;
  for (const std::string& p : in.tune_pngs) figures += !p.empty();
  std::printf("wrote %s (%zu experiments, %d experiment figures)\n", page.c_str(), in.tunes.size(),
              figures);
  for (const std::string& n : in.figure_notes)
    std::fprintf(stderr, "day18 report: %s\n", n.c_str());
  return 0;
}

}  // namespace

Runner add_report_command(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* sub = app.add_subcommand(
      "report",
      "The optimization report (markdown + PNGs) from recorded JSON: the machine's roofs, the "
      "step's timeline, each kernel's verdict, each experiment, the ranked optimizations with "
      "their expected gain, and the commands to reproduce");
  sub->add_option("--probe", o->probe, "day18 probe --json FILE: P, the datasheet peaks, the link");
  sub->add_option("--roof", o->roof, "day18 calibrate --json FILE: the measured FLOP peaks");
  sub->add_option("--trace-metrics", o->trace_metrics,
                  "T.metrics.json of day18 trace --out T.json: busy, overlap, launch gaps");
  sub->add_option("--timeline-png", o->timeline_png,
                  "The timeline figure (scripts/plot_timeline.py), copied into --out");
  sub->add_option("--analysis", o->analysis,
                  "day18 analyze|classify --json FILE: each kernel's verdict and % of roof");
  sub->add_option("--roofline-png", o->roofline_png,
                  "The roofline figure (day18 analyze --roofline), copied into --out");
  sub->add_option("--tune", o->tunes,
                  "day18 tune --json FILE (schema day18.tune.v1); repeat for each experiment");
  sub->add_flag("--no-plots", o->no_plots,
                "Do not run scripts/plot_experiments.py (the page links no experiment figure)");
  sub->add_option("--out", o->out, "The folder to write report.md and its figures into")
      ->required();
  return [o] { return run_report(*o); };
}

}  // namespace day18::cli
