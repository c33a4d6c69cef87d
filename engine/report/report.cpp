#include "engine/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "engine/core/error.h"

namespace day18::report {
namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A table cell: '|' would end the cell, a newline the row.
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}
std::string code(const std::string& s) {
  return "`" + s + "`";
}

struct Table {
  std::vector<std::string> header;
  std::string align;  // one char per column: 'l' or 'r'
  std::vector<std::vector<std::string>> rows;
  std::string str() const {
    std::ostringstream os;
    os << "|";
    for (const auto& h : header) os << " " << h << " |";
    os << "\n|";
    for (size_t i = 0; i < header.size(); ++i) os << (align[i] == 'r' ? "---:|" : "---|");
    os << "\n";
    for (const auto& r : rows) {
      os << "|";
      for (const auto& c : r) os << " " << cell(c) << " |";
      os << "\n";
    }
    return os.str();
  }
};

bool kernel_matches(const std::string& row_name, const std::string& kernel) {
  return row_name == kernel || row_name == kernel + "_kernel";
}

double step_us_of(const ReportInputs& in) {
  return in.analysis ? in.analysis->total_kernel_us : 0;
}

// ---------------------------------------------------------------- inputs

std::string inputs_section(const ReportInputs& in) {
  std::ostringstream os;
  os << "## Inputs\n\n";
  Table t{{"input", "file", "made by", "recorded"}, "llll", {}};
  auto missing = [](const char* what) { return std::string("not given (") + what + ")"; };
  if (in.probe)
    t.rows.push_back({"--probe", code(in.probe->file), "day18 probe --json",
                      in.probe->gpu + ", commit " + in.probe->commit + ", " + in.probe->time_utc});
  else
    t.rows.push_back({"--probe", "-", "day18 probe --json", missing("section 1 has no P")});
  if (in.roof)
    t.rows.push_back({"--roof", code(in.roof->file), "day18 calibrate --json",
                      in.roof->gpu.empty() ? "-" : in.roof->gpu});
  else
    t.rows.push_back({"--roof", "-", "day18 calibrate --json", missing("no measured FLOP peaks")});
  if (in.trace)
    t.rows.push_back({"--trace-metrics", code(in.trace->file), "day18 trace --out T.json",
                      in.trace->model + ", commit " + in.trace->commit});
  else
    t.rows.push_back({"--trace-metrics", "-", "day18 trace --out T.json", missing("no section 2")});
  if (in.analysis)
    t.rows.push_back({"--analysis", code(in.analysis->file), "day18 analyze --json",
                      in.analysis->input + " " + code(in.analysis->source)});
  else
    t.rows.push_back({"--analysis", "-", "day18 analyze --json", missing("no section 3")});
  for (const TuneInput& u : in.tunes)
    t.rows.push_back({"--tune", code(u.file), "day18 tune --json (" + u.experiment + ")",
                      u.gpu + ", commit " + u.commit + ", " + u.date});
  if (in.tunes.empty())
    t.rows.push_back({"--tune", "-", "day18 tune --json", missing("no section 4")});
  os << t.str() << "\n";
  return os.str();
}

// ---------------------------------------------------------------- 1. the machine

std::string machine_section(const ReportInputs& in) {
  std::ostringstream os;
  os << "## 1. The machine and its measured roofs\n\n";
  if (!in.probe && !in.roof) {
    os << "Not given. Run `day18 probe --json bandwidth.json` (P, the datasheet peaks, the host "
          "link) and `day18 calibrate --json roof.json` (the tensor-core and FMA peaks, measured), "
          "then pass `--probe bandwidth.json --roof roof.json`.\n\n";
  } else {
    Table t{{"quantity", "value", "from"}, "lrl", {}};
    if (in.probe) {
      const ProbeInput& p = *in.probe;
      std::string gpu = p.gpu;
      if (!p.sm.empty()) gpu += ", sm " + p.sm;
      if (p.sm_count > 0) gpu += ", " + std::to_string(p.sm_count) + " SMs";
      t.rows.push_back({"GPU", gpu, "--probe"});
      t.rows.push_back({"P (GB/s): device memory, D2D copy, bytes moved / median",
                        format_gbps(p.p_gbps), "--probe"});
      if (p.hbm_gbps > 0) {
        t.rows.push_back({"HBM datasheet (GB/s)", format_gbps(p.hbm_gbps), "--probe"});
        t.rows.push_back(
            {"P as % of the datasheet", format_pct(p.p_gbps / p.hbm_gbps * 100), "computed"});
      }
      if (p.link_gbps > 0)
        t.rows.push_back({"host link per direction (GB/s): " + p.link, format_gbps(p.link_gbps),
                          "--probe (sysfs)"});
      const std::pair<const char*, double> host[] = {{"H2D pinned (GB/s)", p.h2d_pinned_gbps},
                                                     {"H2D pageable (GB/s)", p.h2d_pageable_gbps},
                                                     {"D2H pinned (GB/s)", p.d2h_pinned_gbps},
                                                     {"D2H pageable (GB/s)", p.d2h_pageable_gbps}};
      for (const auto& [name, v] : host)
        if (v > 0) t.rows.push_back({name, format_gbps(v), "--probe, largest size"});
    } else {
      t.rows.push_back({"P (GB/s)", "-", "not given: run `day18 probe --json bandwidth.json`"});
    }
    if (in.roof) {
      const RoofInput& r = *in.roof;
      if (r.p_gbps > 0)
        t.rows.push_back({"P measured by calibrate (GB/s)", format_gbps(r.p_gbps), "--roof"});
      if (r.peak_tensor_tflops > 0)
        t.rows.push_back({"tensor-core peak (TFLOP/s), measured GEMM",
                          format_tflops(r.peak_tensor_tflops), "--roof"});
      if (r.peak_fma_tflops > 0)
        t.rows.push_back(
            {"FP32 FMA peak (TFLOP/s), measured", format_tflops(r.peak_fma_tflops), "--roof"});
      const double p = in.probe ? in.probe->p_gbps : r.p_gbps;
      if (p > 0 && r.peak_tensor_tflops > 0)
        t.rows.push_back({"ridge point, tensor (FLOP/byte)",
                          format_count(r.peak_tensor_tflops * 1e3 / p), "computed: peak / P"});
      if (p > 0 && r.peak_fma_tflops > 0)
        t.rows.push_back({"ridge point, FMA (FLOP/byte)", format_count(r.peak_fma_tflops * 1e3 / p),
                          "computed: peak / P"});
    } else {
      t.rows.push_back({"FLOP peaks", "-", "not given: run `day18 calibrate --json roof.json`"});
    }
    os << t.str() << "\n";
  }
  // Each input's "% of P" is of the P it carries: say which.
  Table ps{{"input", "P (GB/s)", "tensor (TFLOP/s)", "FMA (TFLOP/s)"}, "lrrr", {}};
  if (in.probe) ps.rows.push_back({"--probe", format_gbps(in.probe->p_gbps), "-", "-"});
  if (in.roof)
    ps.rows.push_back({"--roof", format_gbps(in.roof->p_gbps),
                       format_tflops(in.roof->peak_tensor_tflops),
                       format_tflops(in.roof->peak_fma_tflops)});
  if (in.analysis)
    ps.rows.push_back({"--analysis", format_gbps(in.analysis->peak_bw_gbps),
                       format_tflops(in.analysis->peak_tflops),
                       format_tflops(in.analysis->peak_fma_tflops)});
  for (const TuneInput& u : in.tunes)
    ps.rows.push_back({"--tune " + u.experiment, format_gbps(u.p_gbps),
                       format_tflops(u.peak_tflops), format_tflops(u.peak_fma_tflops)});
  if (ps.rows.size() > 1)
    os << "Every \"% of P\" below is of the roof its own input carries:\n\n" << ps.str() << "\n";
  return os.str();
}

// ---------------------------------------------------------------- 2. the step

std::string step_section(const ReportInputs& in) {
  std::ostringstream os;
  os << "## 2. Where one step's time goes\n\n";
  if (!in.trace) {
    os << "Not given. Run `day18 trace --device cuda --preset llama-1b --requests 32 --out "
          "trace.json` (it writes trace.metrics.json beside the trace) and `python3 "
          "scripts/plot_timeline.py trace.json --out timeline.png`, then pass `--trace-metrics "
          "trace.metrics.json --timeline-png timeline.png`.\n\n";
    return os.str();
  }
  const TraceInput& t = *in.trace;
  os << "The trace: " << (t.model.empty() ? "?" : t.model) << ", " << t.requests << " requests, "
     << (t.dtype.empty() ? "?" : t.dtype) << ", CUDA graphs " << (t.cuda_graphs ? "on" : "off")
     << ", " << t.traced_steps << " steps traced (" << code(t.file) << ").\n\n";
  if (!t.has_gpu) os << "> The trace holds no GPU records (the CPU backend): CPU ranges only.\n\n";
  if (!in.timeline_png.empty()) os << "![The step's timeline](" << in.timeline_png << ")\n\n";
  Table m{{"metric", "value"}, "lr", {}};
  m.rows.push_back({"GPU window (ms)", format_ms(t.window_ms)});
  m.rows.push_back({"kernel time, union (ms)", format_ms(t.kernel_ms)});
  m.rows.push_back({"GPU busy", format_pct(t.busy_fraction * 100)});
  m.rows.push_back({"H2D copy time under a kernel", format_pct(t.overlap_fraction * 100)});
  m.rows.push_back(
      {"step pairs: N+1's H2D during N's compute",
       std::to_string(t.step_pairs_overlapped) + " of " + std::to_string(t.step_pairs)});
  m.rows.push_back({"kernels shorter than their launch call",
                    std::to_string(t.shorter_than_launch) + " of " + std::to_string(t.kernels)});
  m.rows.push_back({"median launch call (us)", format_us(t.median_launch_us)});
  m.rows.push_back({"median kernel (us)", format_us(t.median_kernel_us)});
  m.rows.push_back({"compute stream: launch gap per launch (us)", format_us(t.gap_us_per_launch)});
  m.rows.push_back({"complete steps", std::to_string(t.complete_steps)});
  if (t.complete_steps > 0) {
    m.rows.push_back({"median step: CPU (ms)", format_ms(t.step_cpu_ms)});
    m.rows.push_back({"median step: GPU span (ms)", format_ms(t.step_gpu_span_ms)});
    m.rows.push_back({"median step: kernel time (ms)", format_ms(t.step_kernel_ms)});
    m.rows.push_back({"median step: kernels", format_count(t.step_kernels)});
  }
  os << m.str() << "\n";
  os << "The launch gap per launch is the compute stream's idle time that is not a wait on "
        "another stream ((host wait + kernel gap) / ops): what CUDA graphs remove.\n\n";
  Table s{{"stream", "ops", "busy (ms)", "idle (ms)", "host wait (ms)", "kernel gap (ms)",
           "other (ms)"},
          "lrrrrrr",
          {}};
  for (const StreamRow& r : t.streams)
    s.rows.push_back({r.name, std::to_string(r.ops), format_ms(r.busy_ms), format_ms(r.idle_ms),
                      format_ms(r.host_wait_ms), format_ms(r.kernel_gap_ms),
                      format_ms(r.other_ms)});
  if (!s.rows.empty()) os << s.str() << "\n";
  Table rg{{"range", "share of the traced time", "the seed's ideal", "verdict"}, "lrll", {}};
  for (const RangeRow& r : t.ranges)
    rg.rows.push_back({r.name, format_pct(r.share * 100),
                       r.ideal_lo < 0 ? "-"
                                      : format_pct(r.ideal_lo) + "-" + format_pct(r.ideal_hi) +
                                            " of " + r.ideal_of,
                       r.verdict.empty() ? "-" : r.verdict});
  if (!rg.rows.empty()) os << rg.str() << "\n";
  Table k{{"kernel (trace)", "launches", "total (ms)", "share", "mean (us)"}, "lrrrr", {}};
  for (size_t i = 0; i < t.top_kernels.size() && i < 5; ++i) {
    const TopKernel& x = t.top_kernels[i];
    const std::string name = x.name.size() > 60 ? x.name.substr(0, 57) + "..." : x.name;
    k.rows.push_back({code(name), std::to_string(x.count), format_ms(x.total_ms),
                      format_pct(x.share * 100), format_us(x.mean_us)});
  }
  if (!k.rows.empty()) os << "The five longest kernels of the trace:\n\n" << k.str() << "\n";
  return os.str();
}

// ---------------------------------------------------------------- 3. the kernels

std::string kernels_section(const ReportInputs& in) {
  std::ostringstream os;
  os << "## 3. Each kernel's verdict\n\n";
  if (!in.analysis) {
    os << "Not given. Profile one decode step with `scripts/profile_ncu.sh -o decode.csv -- "
          "build-gpu/engine/day18 calibrate --decode-step --preset llama-1b --batch 8 --context "
          "1024 --once`, then run `day18 analyze --ncu decode.csv --roof roof.json --preset "
          "llama-1b --batch 8 --context 1024 --out analysis.md --roofline roofline.png --json "
          "analysis.json` and pass `--analysis analysis.json --roofline-png roofline.png`.\n\n";
    return os.str();
  }
  const AnalysisInput& a = *in.analysis;
  os << "From " << code(a.file) << ": " << a.input << " " << code(a.source) << ", " << a.launches
     << " launches, " << format_us(a.total_kernel_us) << " us of kernel time"
     << (a.plan.empty() ? "" : "; cost model: " + a.plan)
     << ". Roof: P = " << format_gbps(a.peak_bw_gbps) << " GB/s, " << format_tflops(a.peak_tflops)
     << " TFLOP/s tensor, " << format_tflops(a.peak_fma_tflops) << " TFLOP/s FMA"
     << (a.roof_source.empty() ? "" : " (" + a.roof_source + ")") << ".\n\n";
  if (!in.roofline_png.empty())
    os << "![The kernels on the roofline](" << in.roofline_png << ")\n\n";
  Table t{
      {"#", "kernel", "where", "calls", "time share", "us/call", "us/step", "% of roof", "verdict"},
      "rllrrrrrl",
      {}};
  for (size_t i = 0; i < a.kernels.size(); ++i) {
    const KernelVerdict& k = a.kernels[i];
    t.rows.push_back({std::to_string(i + 1), code(k.name), k.what.empty() ? "-" : k.what,
                      std::to_string(k.launches), format_pct(k.time_share * 100),
                      format_us(k.duration_us), format_us(k.total_us),
                      k.pct_of_roof ? format_pct(*k.pct_of_roof) : "-", k.label});
  }
  os << t.str() << "\n";
  // The evidence of the kernels that hold most of the time (the rest is in the analysis page).
  double covered = 0;
  os << "The evidence for the kernels that make up 80% of the time:\n\n";
  for (size_t i = 0; i < a.kernels.size() && covered < 0.8; ++i) {
    const KernelVerdict& k = a.kernels[i];
    covered += k.time_share;
    os << "- **" << (i + 1) << ". " << code(k.name) << "** " << k.label;
    for (const std::string& e : k.evidence) os << "; " << e;
    if (!k.recommendations.empty()) os << ". Try: " << k.recommendations.front();
    os << "\n";
  }
  os << "\n";
  for (const std::string& n : a.notes) os << "> " << n << "\n";
  if (!a.notes.empty()) os << "\n";
  return os.str();
}

// ---------------------------------------------------------------- 4. the experiments

std::string role(const TuneGroup& g, size_t i) {
  const bool base = int(i) == g.baseline, best = int(i) == g.best;
  return base && best ? "baseline, best" : base ? "baseline" : best ? "best" : "";
}

std::string config_text(const TunePoint& p) {
  std::string s;
  for (const auto& [k, v] : p.config_values) s += (s.empty() ? "" : " ") + k + "=" + v;
  return s.empty() ? "-" : s;
}

std::string check_text(const TunePoint& p) {
  return p.correct ? "ok " + format_err(p.max_abs_err) + " <= " + format_err(p.tolerance)
                   : "FAILED " + format_err(p.max_abs_err) + " > " + format_err(p.tolerance);
}

bool overlaps(const TunePoint& a, const TunePoint& b) {
  return a.p20_us <= b.p80_us && b.p20_us <= a.p80_us;
}

std::string group_table(const TuneInput& u, const TuneGroup& g) {
  const bool batch = u.experiment == "batch_size";
  const bool occupancy = u.experiment == "block_size";
  Table t{{"role", "label", "config", "check (max abs err vs tolerance)", "median (us)",
           "p20-p80 (us)", "% of P"},
          "llllrrr",
          {}};
  if (occupancy) {
    for (const char* h : {"occupancy", "blocks/SM", "registers", "waves"}) t.header.push_back(h);
    t.align += "rrrr";
  }
  // The numbers of "extra" the page shows, where the group has them.
  struct ExtraColumn {
    const char* key;
    const char* header;
    std::string (*format)(double);
  };
  static const ExtraColumn kExtra[] = {
      {"tokens_per_s", "tokens/s", format_count},
      {"max_logit_diff", "max logit diff", format_err},
      {"greedy_agreement", "greedy agreement", [](double v) { return format_pct(v * 100); }}};
  std::vector<const ExtraColumn*> extras;
  for (const ExtraColumn& c : kExtra)
    for (const TunePoint& p : g.points)
      if (p.extra.count(c.key)) {
        extras.push_back(&c);
        t.header.push_back(c.header);
        t.align += "r";
        break;
      }
  if (batch) {
    t.header.push_back("x floor");
    t.align += "r";
  }
  t.header.push_back("verdict");
  t.align += "l";
  for (size_t i = 0; i < g.points.size(); ++i) {
    const TunePoint& p = g.points[i];
    std::vector<std::string> r = {role(g, i), p.label, config_text(p), check_text(p)};
    if (!p.correct) {
      r.insert(r.end(), {"not timed", "-", "-"});
      if (occupancy) r.insert(r.end(), {"-", "-", "-", "-"});
      for (size_t k = 0; k < extras.size(); ++k) r.push_back("-");
      if (batch) r.push_back("-");
      r.push_back("-");
      t.rows.push_back(std::move(r));
      continue;
    }
    r.insert(r.end(), {format_us(p.median_us), format_us(p.p20_us) + "-" + format_us(p.p80_us),
                       format_pct(p.pct_of_p)});
    if (occupancy)
      r.insert(r.end(),
               {format_pct(p.occupancy.theoretical_pct), format_count(p.occupancy.blocks_per_sm),
                format_count(p.occupancy.registers), fmt("%.2f", p.occupancy.waves)});
    for (const ExtraColumn* c : extras) {
      auto it = p.extra.find(c->key);
      r.push_back(it == p.extra.end() ? "-" : c->format(it->second));
    }
    if (batch) {
      auto wb = p.extra.find("weight_bytes");
      r.push_back(wb == p.extra.end() || wb->second <= 0
                      ? "-"
                      : fmt("%.2f", p.median_us / (wb->second / (u.p_gbps * 1e9) * 1e6)));
    }
    r.push_back(p.verdict);
    t.rows.push_back(std::move(r));
  }
  return t.str();
}

// The batch with the most tokens/s (-1: no point has extra.tokens_per_s).
int most_tokens(const TuneGroup& g) {
  int most = -1;
  for (size_t i = 0; i < g.points.size(); ++i) {
    const TunePoint& p = g.points[i];
    if (!p.correct || !p.extra.count("tokens_per_s")) continue;
    if (most < 0 || p.extra.at("tokens_per_s") > g.points[most].extra.at("tokens_per_s"))
      most = static_cast<int>(i);
  }
  return most;
}

std::string group_findings(const TuneInput& u, const TuneGroup& g) {
  std::ostringstream os;
  const bool batch = u.experiment == "batch_size";
  const TunePoint& b = g.points[g.baseline];
  for (const TunePoint& p : g.points)
    if (!p.correct)
      os << "> `" << p.label << "` failed its correctness check (max abs err "
         << format_err(p.max_abs_err) << " > tolerance " << format_err(p.tolerance)
         << "): it was not timed and is out of the comparison.\n";
  if (g.failed_points() > 0) os << "\n";
  if (g.best < 0) {
    os << "**No result**: no configuration passed its correctness check, so nothing was timed. "
          "Fix the kernel before tuning it.\n\n";
    return os.str();
  }
  if (!b.correct) {
    os << "**No comparison**: the baseline `" << b.label << "` failed its correctness check. "
       << "The fastest correct configuration is `" << g.points[g.best].label << "` ("
       << format_us(g.points[g.best].median_us) << " us), but a speedup over a wrong baseline "
       << "means nothing.\n\n";
    return os.str();
  }
  // "after": the best; for the batch size, the batch with the most tokens/s (day18 tune's best
  // there is the shortest step, i.e. the smallest batch).
  const int most = batch ? most_tokens(g) : -1;
  const TunePoint& w = g.points[most >= 0 ? most : g.best];
  if (batch) {
    if (most >= 0 && b.extra.count("tokens_per_s") && b.extra.at("tokens_per_s") > 0)
      os << "**Most tokens/s**: `" << w.label << "`, " << format_count(w.extra.at("tokens_per_s"))
         << " tokens/s vs " << format_count(b.extra.at("tokens_per_s")) << " for the baseline `"
         << b.label << "` ("
         << format_speedup(w.extra.at("tokens_per_s") / b.extra.at("tokens_per_s"))
         << " the throughput; each step takes " << format_speedup(w.median_us / b.median_us)
         << " as long).\n\n";
    const int knee = batch_knee(g);
    if (knee >= 0)
      os << "**Knee**: `" << g.points[knee].label << "`, the largest batch whose step time is "
         << "within " << fmt("%.2f", kKneeFactor) << "x of the smallest batch's ("
         << format_us(g.points[knee].median_us) << " us vs "
         << format_us(g.points[g.baseline].median_us)
         << " us): up to it a bigger batch costs little step time; beyond it the step grows with "
         << "the batch (the KV-cache reads).\n\n";
    for (size_t i = 0; i < g.points.size(); ++i)
      if (g.points[i].knee_flag && int(i) != knee)
        os << "> The file marks `" << g.points[i].label << "` as the knee; the rule here gives "
           << (knee >= 0 ? "`" + g.points[knee].label + "`" : "none") << ".\n\n";
    auto wb = b.extra.find("weight_bytes");
    if (wb != b.extra.end() && wb->second > 0)
      os << "Weight-read floor: " << format_mb(wb->second) << " MB of weights / P "
         << format_gbps(u.p_gbps) << " GB/s = " << format_us(wb->second / (u.p_gbps * 1e9) * 1e6)
         << " us per step (no step can be shorter); the x floor column is each step's median over "
            "it.\n\n";
  } else if (g.best == g.baseline) {
    os << "**Best**: the baseline `" << b.label << "` itself (" << format_us(b.median_us)
       << " us); no configuration measured beat it.\n\n";
  } else {
    os << "**Best** `" << w.label << "`: " << format_us(w.median_us) << " us vs the baseline `"
       << b.label << "` " << format_us(b.median_us) << " us: **" << format_speedup(g.speedup)
       << "**. Noise: p20-p80 " << format_us(w.p20_us) << "-" << format_us(w.p80_us) << " us vs "
       << format_us(b.p20_us) << "-" << format_us(b.p80_us) << " us";
    if (g.within_noise)
      os << ": **within noise** (the ranges overlap); not a win, keep the baseline.";
    else
      os << ": the ranges do not overlap, a real win.";
    if (g.within_noise != overlaps(w, b))
      os << " (Note: the file says within_noise = " << (g.within_noise ? "true" : "false")
         << ", but the p20-p80 ranges " << (overlaps(w, b) ? "overlap" : "do not overlap") << ".)";
    os << "\n\n";
  }
  if (&w == &b) return os.str();
  const bool occ = u.experiment == "block_size";
  os << "**Bottleneck** before (`" << b.label << "`): " << b.verdict << " at "
     << format_pct(b.pct_of_p) << " of P";
  if (occ)
    os << ", occupancy " << format_pct(b.occupancy.theoretical_pct) << ", "
       << fmt("%.2f", b.occupancy.waves) << " waves";
  os << "; after (`" << w.label << "`): " << w.verdict << " at " << format_pct(w.pct_of_p)
     << " of P";
  if (occ)
    os << ", occupancy " << format_pct(w.occupancy.theoretical_pct) << ", "
       << fmt("%.2f", w.occupancy.waves) << " waves";
  os << ".\n\n";
  return os.str();
}

std::string experiments_section(const ReportInputs& in) {
  std::ostringstream os;
  os << "## 4. Experiments\n\n";
  if (in.tunes.empty()) {
    os << "Not given. Run the experiments, e.g. `day18 tune block-size --json block_size.json`, "
          "`day18 tune batch-size --json batch_size.json`, `day18 tune precision --json "
          "precision.json` (see `day18 tune --help`), then pass each with `--tune FILE`.\n\n";
    return os.str();
  }
  for (size_t i = 0; i < in.tunes.size(); ++i) {
    const TuneInput& u = in.tunes[i];
    os << "### 4." << (i + 1) << " " << u.experiment << " (" << code(u.file) << ")\n\n";
    os << "**Hypothesis**: " << u.hypothesis << "\n\n";
    os << "Measured by `" << u.command << "` on " << u.gpu << " (" << u.sm_count << " SMs, driver "
       << u.driver << ", CUDA " << u.cuda_runtime << "), commit " << u.commit << ", " << u.date
       << "; P = " << format_gbps(u.p_gbps) << " GB/s (" << u.p_source << "). Parameters: ";
    for (size_t k = 0; k < u.parameters.size(); ++k) os << (k ? ", " : "") << code(u.parameters[k]);
    os << ".\n\n";
    const std::string png = i < in.tune_pngs.size() ? in.tune_pngs[i] : "";
    if (!png.empty()) os << "![" << u.experiment << "](" << png << ")\n\n";
    for (const TuneGroup& g : u.groups) {
      os << "#### " << g.name << "\n\n";
      os << "Kernel `" << g.kernel << "`, shape `" << g.shape << "`.\n\n";
      os << group_table(u, g) << "\n";
      os << group_findings(u, g);
    }
    if (!u.notes.empty()) {
      os << "Notes of the run:\n\n";
      for (const std::string& n : u.notes) os << "- " << n << "\n";
      os << "\n";
    }
  }
  return os.str();
}

// ---------------------------------------------------------------- 5. the ranked list

std::string proposals_section(const ReportInputs& in) {
  std::ostringstream os;
  os << "## 5. Proposed optimizations, ranked by expected gain\n\n";
  if (!in.analysis) {
    os << "Needs the kernel analysis (`--analysis`): the gains are computed from each kernel's "
          "time per step and % of roof.\n\n";
    return os.str();
  }
  const std::vector<Proposal> ps = proposals(in);
  os << "The step: " << format_us(step_us_of(in)) << " us of kernel time (the analysis's profiled "
     << "step). Expected gain = time per step x (1 - now / target) for a roof target, launches x "
     << "the trace's launch gap per launch for a latency-bound kernel, time per step x (1 - 1 / "
     << "speedup) for a measured speedup (docs/report.md states every rule).\n\n";
  Table t{{"rank", "kernel", "where", "proposal", "verdict now", "us/step", "now (% of roof)",
           "target (% of roof)", "gain (us/step)", "gain (% of step)"},
          "rllllrrrrr",
          {}};
  int rank = 0;
  for (const Proposal& p : ps) {
    if (!p.ranked) continue;
    t.rows.push_back({std::to_string(++rank), code(p.kernel), p.where.empty() ? "-" : p.where,
                      p.change, p.verdict, format_us(p.kernel_us),
                      p.pct_now < 0 ? "-" : format_pct(p.pct_now),
                      p.pct_target < 0 ? "-" : format_pct(p.pct_target), format_us(p.gain.saved_us),
                      format_pct(p.gain.pct_of_step)});
  }
  if (rank == 0)
    os << "No proposal has a computable gain.\n\n";
  else
    os << t.str() << "\n";
  // The launch-gap items together: what CUDA graphs over the whole step would remove (not a row
  // of its own: it would count the rows above twice).
  if (in.trace && in.trace->gap_us_per_launch > 0 && step_us_of(in) > 0) {
    const Gain all =
        launch_gain(double(in.analysis->launches), in.trace->gap_us_per_launch, step_us_of(in));
    os << "Together, the launch gaps of all " << in.analysis->launches << " launches of the step ("
       << "CUDA graphs over the whole step): " << format_us(all.saved_us) << " us per step, "
       << format_pct(all.pct_of_step) << " of it.\n\n";
  }
  bool header = false;
  for (const Proposal& p : ps) {
    if (p.ranked) continue;
    if (!header) os << "Not ranked:\n\n";
    header = true;
    os << "- " << code(p.kernel) << (p.where.empty() ? "" : " (" + p.where + ")") << ": " << p.why
       << "\n";
  }
  if (header) os << "\n";
  return os.str();
}

// ---------------------------------------------------------------- 6. reproduce

std::string reproduce_section(const ReportInputs& in) {
  std::ostringstream os;
  os << "## 6. Reproduce\n\n";
  os << "The commands that made the inputs (recorded in the files where the file records them, "
        "else rebuilt from its fields), then this page:\n\n```\n";
  if (in.probe) os << "day18 probe --json " << in.probe->file << "\n";
  if (in.roof) os << "day18 calibrate --json " << in.roof->file << "\n";
  if (in.trace) {
    std::string trace = in.trace->file;
    const std::string suffix = ".metrics.json";
    if (trace.size() > suffix.size() &&
        trace.compare(trace.size() - suffix.size(), suffix.size(), suffix) == 0)
      trace = trace.substr(0, trace.size() - suffix.size()) + ".json";
    os << "day18 trace --device cuda --preset " << in.trace->model << " --requests "
       << in.trace->requests << " --steps " << in.trace->traced_steps << " --cuda-graphs "
       << (in.trace->cuda_graphs ? "on" : "off") << " --out " << trace << "\n";
    if (!in.timeline_png.empty())
      os << "python3 scripts/plot_timeline.py " << trace << " --out " << in.timeline_png << "\n";
  }
  if (in.analysis)
    os << "day18 analyze --" << in.analysis->input << " " << in.analysis->source << " ... --json "
       << in.analysis->file
       << "   # cost model: " << (in.analysis->plan.empty() ? "none" : in.analysis->plan) << "\n";
  for (const TuneInput& u : in.tunes) os << u.command << "\n";
  if (!in.tunes.empty()) {
    os << "python3 scripts/plot_experiments.py";
    for (const TuneInput& u : in.tunes) os << " " << u.file;
    os << " --out DIR\n";
  }
  os << (in.command.empty() ? "day18 report ..." : in.command) << "\n```\n\n";
  return os.str();
}

std::string rounding_section() {
  return "## How the numbers are rounded\n\n"
         "Every number on this page is formatted from the input JSON: times in us with 2 decimals "
         "below 10 us and 1 decimal from 10 us on, in ms with 3; percentages with 1 decimal; "
         "bandwidths in GB/s and FLOP rates in TFLOP/s "
         "with none; speedups with 2 decimals; bytes in MB (1e6) with 1 decimal; errors and "
         "tolerances with 2 significant digits; counts, tokens/s and FLOP/byte as whole numbers. "
         "Computed numbers (gains, ridge points, x floor, P as % of the datasheet) are computed "
         "from the unrounded values.\n";
}

}  // namespace

std::string format_us(double us) {
  return fmt(std::fabs(us) < 10 ? "%.2f" : "%.1f", us);
}
std::string format_ms(double ms) {
  return fmt("%.3f", ms);
}
std::string format_pct(double pct) {
  return fmt("%.1f", pct) + "%";
}
std::string format_gbps(double gbps) {
  return fmt("%.0f", gbps);
}
std::string format_tflops(double tf) {
  return fmt("%.0f", tf);
}
std::string format_speedup(double x) {
  return fmt("%.2f", x) + "x";
}
std::string format_mb(double bytes) {
  return fmt("%.1f", bytes / 1e6);
}
std::string format_err(double e) {
  return fmt("%.1e", e);
}
std::string format_count(double n) {
  return fmt("%.0f", n);
}

std::vector<Proposal> proposals(const ReportInputs& in) {
  std::vector<Proposal> out;
  if (!in.analysis) return out;
  const AnalysisInput& a = *in.analysis;
  const double step = step_us_of(in);
  for (const KernelVerdict& k : a.kernels) {
    Proposal p;
    p.kernel = k.name;
    p.where = k.what;
    p.verdict = k.label;
    const GainTarget target = gain_target(k.verdict, k.tensor_op);
    p.rule = target.rule;
    const double t = k.total_us;
    p.kernel_us = t;
    if (step <= 0) {
      p.why = "the analysis has no kernel time (total_kernel_us is 0)";
    } else if (target.pct > 0) {
      if (!k.pct_of_roof) {
        p.why = target.rule + ", but the analysis has no % of roof for it (no bytes/FLOPs)";
      } else {
        p.pct_now = *k.pct_of_roof;
        p.pct_target = target.pct;
        p.gain = expected_gain(t, p.pct_now, p.pct_target, step);
        p.change = k.verdict == "UNCOALESCED"    ? "coalesce its loads, then stream at 90% of P"
                   : k.verdict == "MEMORY BOUND" ? "move its bytes at 90% of P (wider loads, "
                                                   "more bytes in flight) or move fewer bytes"
                   : k.tensor_op ? "reach 70% of the tensor peak (tile shape, pipelining)"
                                 : "reach 70% of the FMA peak (or use the tensor cores)";
        p.ranked = p.gain.saved_us > 0;
        if (!p.ranked)
          p.why = "already at " + format_pct(p.pct_now) + " of its roof, the target is " +
                  format_pct(p.pct_target) + ": nothing to gain by the rule";
      }
    } else if (k.verdict == "LATENCY BOUND") {
      if (!in.trace) {
        p.why = target.rule + ": needs --trace-metrics (the launch gap per launch)";
      } else if (in.trace->gap_us_per_launch <= 0) {
        p.why = target.rule + ": the trace shows no launch gap on the compute stream";
      } else {
        p.gain = launch_gain(double(k.launches), in.trace->gap_us_per_launch, step);
        p.change = "remove its " + std::to_string(k.launches) +
                   (k.launches == 1 ? " launch gap of " : " launch gaps of ") +
                   format_us(in.trace->gap_us_per_launch) +
                   " us: CUDA graphs, or fuse it into its neighbour";
        p.ranked = true;
      }
    } else {
      p.why = k.label + ": " + target.rule;
    }
    out.push_back(std::move(p));
  }
  // The block-size experiments: their measured speedup, on the analysis kernel they tuned.
  for (const TuneInput& u : in.tunes) {
    for (const TuneGroup& g : u.groups) {
      Proposal p;
      p.kernel = g.kernel;
      p.where = u.experiment + ": " + g.name;
      p.rule = "measured speedup";
      if (!g.comparable()) {
        p.why = g.best < 0 ? "no configuration passed its correctness check: no result"
                           : "the baseline failed its correctness check: nothing to compare with";
        out.push_back(std::move(p));
        continue;
      }
      const TunePoint& b = g.points[g.baseline];
      const TunePoint& w = g.points[g.best];
      p.verdict = b.verdict;
      if (u.experiment == "batch_size") {
        p.why =
            "a serving choice (how many sequences per step), not a kernel change: the knee "
            "and tokens/s are in section 4";
      } else if (g.best == g.baseline || g.speedup <= 1) {
        p.why = "the baseline `" + b.label + "` is the best measured: no change to propose";
      } else if (g.within_noise) {
        p.why = "`" + w.label + "` is " + format_speedup(g.speedup) + " but within noise: no " +
                "change to propose";
      } else if (u.experiment != "block_size") {
        p.why = "`" + w.label + "` instead of `" + b.label + "`: " + format_speedup(g.speedup) +
                " (" + format_us(b.median_us) + " -> " + format_us(w.median_us) +
                " us); a precision choice (check its accuracy in section 4), not a kernel change";
      } else {
        double t = 0;
        for (const KernelVerdict& k : in.analysis->kernels)
          if (kernel_matches(k.name, g.kernel)) t += k.total_us;
        if (t <= 0 || step <= 0) {
          p.why = "`" + w.label + "` saves " + format_us(b.median_us - w.median_us) +
                  " us per call at this shape, but the analysis has no kernel `" + g.kernel +
                  "` to apply it to";
        } else {
          p.kernel_us = t;
          p.gain = speedup_gain(t, g.speedup, step);
          p.change = "use `" + w.label + "` instead of `" + b.label + "` (measured " +
                     format_speedup(g.speedup) + ")";
          p.ranked = p.gain.saved_us > 0;
        }
      }
      out.push_back(std::move(p));
    }
  }
  // The ranked ones first, in rank_by_gain's order; then the others, in their order.
  std::vector<Proposal> ranked, rest, sorted;
  for (Proposal& p : out) (p.ranked ? ranked : rest).push_back(std::move(p));
  std::vector<Gain> gains;
  for (const Proposal& p : ranked) gains.push_back(p.gain);
  const std::vector<size_t> order = rank_by_gain(gains);
  // rank_by_gain is a lab's task (lab 07 task 4): an order that is not a permutation is refused
  // here, not followed out of bounds.
  std::vector<bool> seen(ranked.size(), false);
  if (order.size() != ranked.size())
    throw Error("rank_by_gain returned " + std::to_string(order.size()) + " indexes for " +
                std::to_string(ranked.size()) + " gains (it must return each index once)");
  for (size_t i : order) {
    if (i >= ranked.size() || seen[i])
      throw Error("rank_by_gain returned index " + std::to_string(i) +
                  (i >= ranked.size() ? " out of range" : " twice") + " for " +
                  std::to_string(ranked.size()) + " gains (it must return each index once)");
    seen[i] = true;
    sorted.push_back(std::move(ranked[i]));
  }
  for (Proposal& p : rest) sorted.push_back(std::move(p));
  return sorted;
}

std::string report_markdown(const ReportInputs& in) {
  std::ostringstream os;
  std::string gpu = in.probe ? in.probe->gpu : "";
  for (const TuneInput& u : in.tunes)
    if (gpu.empty()) gpu = u.gpu;
  os << "# Optimization report" << (gpu.empty() ? "" : ": " + gpu) << "\n\n";
  os << "Generated by `day18 report` from recorded measurements only: every number below is "
        "formatted from the JSON files of the Inputs table (rounding: the last section).\n\n";
  for (const std::string& n : in.figure_notes) os << "> " << n << "\n";
  if (!in.figure_notes.empty()) os << "\n";
  os << inputs_section(in) << machine_section(in) << step_section(in) << kernels_section(in)
     << experiments_section(in) << proposals_section(in) << reproduce_section(in)
     << rounding_section();
  return os.str();
}

}  // namespace day18::report
