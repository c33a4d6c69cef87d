// `day18 probe`: the bandwidth of every copy kind over a size sweep, the datasheet peaks beside
// the measured ones, P (the bandwidth every "% of P" uses), and the seed's probe reproduced with
// how far off each of its numbers is (engine/profiling/bandwidth_probe.h).
//
//   day18 probe                                    # every kind, 4 KiB .. 1 GiB, x2 steps
//   day18 probe --kinds d2d,h2d_pinned --max-size 64M --repeats 10 --json bw.json
//   python3 scripts/plot_bandwidth.py bw.json      # bandwidth vs size, one line per kind
//
// Without a GPU it says why and exits 2 (after checking its flags, so a typo is reported
// anywhere).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "engine/cli/commands.h"
#include "engine/core/error.h"
#include "engine/core/memory.h"
#include "engine/profiling/bandwidth_probe.h"

namespace day18::cli {
namespace {

struct ProbeCliOptions {
  std::string kinds = "all";
  std::string min_size = "4K", max_size = "1G";
  int step = 2, warmup = 3, repeats = 20;
  bool no_seed = false, quiet = false;
  std::string json;
};

ProbeOptions to_options(const ProbeCliOptions& c) {
  ProbeOptions o;
  o.kinds = parse_kinds("--kinds", c.kinds);
  o.min_bytes = parse_size("--min-size", c.min_size);
  o.max_bytes = parse_size("--max-size", c.max_size);
  o.step = c.step;
  o.warmup = c.warmup;
  o.repeats = c.repeats;
  o.seed = !c.no_seed;
  validate(o);
  return o;
}

int run_probe_command(const ProbeCliOptions& c) {
  const ProbeOptions o = to_options(c);  // flags first: a typo is an error on any machine
  if (!cuda_available()) {
    std::fprintf(stderr,
                 "day18 probe: no CUDA device to measure: %s\n"
                 "  (the probe times copies on a GPU; on this machine the CPU backend runs the "
                 "engine: day18 tour --device cpu)\n",
                 cuda_unavailable_reason().c_str());
    return 2;
  }
  const bool tty = isatty(fileno(stderr)) != 0;
  const size_t num_sizes = sweep_sizes(o.min_bytes, o.max_bytes, o.step).size();
  if (!c.quiet) {
    std::fprintf(stderr,
                 "day18 probe: %zu kinds x %zu sizes (%s .. %s), %d warm-ups + %d "
                 "repeats each\n",
                 o.kinds.size(), num_sizes, format_size(o.min_bytes).c_str(),
                 format_size(o.max_bytes).c_str(), o.warmup, o.repeats);
    if (o.seed)
      std::fprintf(stderr, "  the seed's probe first: 3 copies of %s, host clock, no warm-up\n",
                   format_size(o.max_bytes).c_str());
  }
  ProbeProgress progress;
  if (!c.quiet)
    progress = [tty](CopyKind kind, size_t k, size_t n, size_t bytes, size_t s, size_t m) {
      const std::string name(copy_kind_name(kind));
      if (tty) {  // one line, rewritten in place
        std::fprintf(stderr, "\r  [%zu/%zu] %-18s %10s  (%zu/%zu)\033[K", k + 1, n, name.c_str(),
                     format_size(bytes).c_str(), s + 1, m);
      } else if (s == 0) {  // a log: one line per kind
        std::fprintf(stderr, "  [%zu/%zu] %s\n", k + 1, n, name.c_str());
      }
      std::fflush(stderr);
    };
  const ProbeReport report = run_probe(o, progress);
  if (!c.quiet && tty) std::fputc('\n', stderr);
  std::fputs(probe_table(report).c_str(), stdout);
  if (!c.json.empty()) {
    write_json_file(c.json, probe_json(report));
    std::printf("\nwrote %s (plot it: python3 scripts/plot_bandwidth.py %s)\n", c.json.c_str(),
                c.json.c_str());
  }
  return 0;
}

}  // namespace

Runner add_probe_command(CLI::App& app) {
  auto o = std::make_shared<ProbeCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "probe", "Measure copy bandwidth: every kind, a size sweep, P and the datasheet peaks");
  sub->add_option("--kinds", o->kinds,
                  "all, or some of: d2d, d2d_kernel, read_kernel, write_kernel, h2d_pinned, "
                  "d2h_pinned, h2d_pageable, d2h_pageable, bidirectional (comma-separated)")
      ->capture_default_str();
  sub->add_option("--min-size", o->min_size, "Smallest copy: 4096, 4K, 64M, 1G (K = 1024)")
      ->capture_default_str();
  sub->add_option("--max-size", o->max_size, "Largest copy (also the seed probe's size)")
      ->capture_default_str();
  sub->add_option("--step", o->step, "Size factor between points: 2 or 4")->capture_default_str();
  sub->add_option("--warmup", o->warmup, "Untimed copies before each size")->capture_default_str();
  sub->add_option("--repeats", o->repeats, "Timed copies per size (median, p20, p80)")
      ->capture_default_str();
  sub->add_flag("--no-seed", o->no_seed, "Skip the reproduction of the seed's probe");
  sub->add_option("--json", o->json,
                  "Write every result with provenance (GPU, driver, CUDA, "
                  "commit) to this JSON file");
  sub->add_flag("--quiet", o->quiet, "No progress on stderr");
  return [o] { return run_probe_command(*o); };
}

}  // namespace day18::cli
