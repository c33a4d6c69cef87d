// `day18 classify`: what limits each kernel of a profile, with its evidence and what to try.
//
//   day18 classify --ncu reference/ncu/h200/calibration.csv
//   day18 classify --ncu decode.csv --roof roof.json --preset llama-1b --batch 8 --context 1024
//   day18 classify --trace trace.json --peak-bw 4200 --peak-flops 790 --preset llama-1b ...
//   day18 classify --seed-example        (the seed's example, its tree beside the right one)
//   day18 classify --thresholds          (the table every verdict uses)
#include <cstdio>
#include <filesystem>

#include "engine/cli/flags.h"
#include "engine/cli/kernel_analysis_cmds.h"
#include "engine/core/device.h"
#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/core/memory.h"
#include "engine/core/parse.h"

namespace day18::cli {

void add_profile_input_flags(CLI::App* sub, ProfileInputs& in) {
  auto* ncu = sub->add_option("--ncu", in.ncu,
                              "Nsight Compute CSV (ncu --csv --page raw; scripts/profile_ncu.sh "
                              "writes one): the full evidence");
  auto* trace =
      sub->add_option("--trace", in.trace,
                      "Chrome trace JSON of `day18 trace`: kernel durations and launch "
                      "gaps; bytes and FLOPs from the cost model (--preset ...), the roof "
                      "from --peak-bw/--peak-flops or --roof");
  ncu->excludes(trace);
  sub->add_option("--peak-bw", in.peak_bw_gbps,
                  "P in GB/s: the device-to-device copy bandwidth the probe measured (day18 probe)")
      ->check(positive_finite_number());
  sub->add_option("--peak-flops", in.peak_tflops,
                  "Compute roof in TFLOP/s: the tensor-core GEMM rate measured on this GPU "
                  "(day18 calibrate)")
      ->check(positive_finite_number());
  sub->add_option("--peak-fma-flops", in.peak_fma_tflops,
                  "FP32 FMA-pipe roof in TFLOP/s (default: --peak-flops)")
      ->check(positive_finite_number());
  sub->add_option("--roof", in.roof_file,
                  "JSON with the roof: day18 calibrate --json (P and both FLOP peaks) or day18 "
                  "probe --json (P); --peak-* flags override it");
  sub->add_option("--preset", in.preset,
                  "The model of the profiled decode step, for the cost model's bytes and FLOPs per "
                  "kernel (with --batch and --context)")
      ->check(CLI::IsMember(ModelConfig::preset_names()));
  sub->add_option("--batch", in.batch, "Sequences in the profiled decode step (one token each)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("--context", in.context, "Context length of each sequence at that step")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  sub->add_option("--dtype", in.dtype, "dtype of the profiled run: fp32, fp16 or bf16")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "float32", "float16", "bfloat16"}))
      ->capture_default_str();
  sub->add_option("--sm-count", in.sm_count,
                  "SMs of the traced GPU (a trace has no launch statistics; default: this "
                  "machine's GPU, else 132 as on an H100/H200)")
      ->check(integer_in(1, 100000));
  sub->add_option("--trace-steps", in.trace_steps,
                  "With --trace: only the kernels of these engine steps, N or LO:HI (args.step): "
                  "the decode steps of the shape --batch/--context describe, not the prefill");
  sub->add_flag(
      "--per-launch", in.per_launch,
      "One row per launch instead of one per kernel (name, grid, block, place in the step)");
  sub->add_flag("--calibration", in.calibration,
                "The profile is `day18 calibrate --once`: give its cuBLAS GEMM its known FLOPs "
                "(the counters miss tensor-core work)");
  sub->add_option("--json", in.json,
                  "Also write the analysis as JSON (scripts/plot_roofline.py reads it)");
}

Analysis run_profile_analysis(const ProfileInputs& in, const char* command) {
  DAY18_REQUIRE(!in.ncu.empty() || !in.trace.empty(), command,
                ": give the profile to read: --ncu FILE.csv (Nsight Compute) or --trace FILE.json "
                "(day18 trace)");
  AnalysisOptions o;
  if (!in.roof_file.empty()) o.roof = read_roof_json(in.roof_file);
  std::string flags;
  if (in.peak_bw_gbps > 0) {
    o.roof.peak_bw = in.peak_bw_gbps * 1e9;
    flags += " --peak-bw " + CLI::detail::to_string(in.peak_bw_gbps);
  }
  if (in.peak_tflops > 0) {
    o.roof.peak_flops = in.peak_tflops * 1e12;
    flags += " --peak-flops " + CLI::detail::to_string(in.peak_tflops);
  }
  if (in.peak_fma_tflops > 0) {
    o.roof.peak_fma_flops = in.peak_fma_tflops * 1e12;
    flags += " --peak-fma-flops " + CLI::detail::to_string(in.peak_fma_tflops);
  }
  if (!flags.empty()) o.roof.source = (o.roof.source.empty() ? "" : o.roof.source + ";") + flags;
  const bool any_plan = !in.preset.empty() || in.batch > 0 || in.context > 0;
  if (any_plan) {
    DAY18_REQUIRE(!in.preset.empty() && in.batch > 0 && in.context > 0, command,
                  ": the cost model needs all of --preset, --batch and --context (got --preset '",
                  in.preset, "', --batch ", in.batch, ", --context ", in.context, ")");
    DecodePlan p{ModelConfig::preset(in.preset), {in.batch, in.context, parse_dtype(in.dtype)}};
    o.plan = p;
  }
  o.group = !in.per_launch;
  o.calibration = in.calibration;
  DAY18_REQUIRE(in.trace_steps.empty() || !in.trace.empty(), command,
                ": --trace-steps selects steps of a --trace (an ncu CSV has none)");
  if (!in.ncu.empty()) return analyze_ncu(ncu::read_csv(in.ncu), o);
  if (!in.trace_steps.empty()) {
    const auto [lo, hi] = parse_int_range("--trace-steps", in.trace_steps, 0, int64_t{1} << 40);
    o.first_step = lo;
    o.last_step = hi;
  }
  if (in.sm_count > 0)
    o.sm_count = in.sm_count;
  else
    o.sm_count = device_limits_or_nominal().sm_count;
  DAY18_REQUIRE(o.roof.peak_bw > 0, command, " --trace ", in.trace,
                ": a trace has durations but no counters, so the verdict comes from the roofline: "
                "give P (--peak-bw GBPS, or --roof FILE from day18 calibrate --json / day18 probe "
                "--json)");
  DAY18_REQUIRE(o.plan.has_value(), command, " --trace ", in.trace,
                ": the bytes and FLOPs of each kernel come from the cost model: give --preset, "
                "--batch and --context of the traced decode step");
  Analysis a = analyze_trace(read_chrome_trace(in.trace), o);
  if (in.sm_count <= 0)
    a.notes.push_back("grid below one wave judged against " + std::to_string(int(o.sm_count)) +
                      " SMs (" +
                      (cuda_available() ? "this GPU" : "an H100/H200; --sm-count sets it") + ")");
  return a;
}

void write_analysis_json(const Analysis& a, const std::string& path, const char* flag) {
  if (path.empty()) return;
  write_file_atomically(path, flag,
                        [&](std::ostream& out) { out << analysis_json(a).dump(1) << "\n"; });
}

namespace {

struct ClassifyOptions {
  ProfileInputs in;
  bool brief = false;
  bool thresholds = false;
  bool seed_example = false;
};

int print_thresholds() {
  std::printf("The classifier's thresholds (engine/profiling/classifier.h, one table):\n\n");
  for (const ThresholdRow& r : threshold_table())
    std::printf("  %-26s %6g %-18s %s\n  %-26s %6s %-18s (%s)\n", r.name.c_str(), r.value,
                r.unit.c_str(), r.rule.c_str(), "", "", "", r.source.c_str());
  return 0;
}

int print_seed_example() {
  const SeedMetrics& m = kSeedExample;
  std::printf(
      "The seed's example: SM %.1f%%, memory %.1f%%, occupancy %.1f%%, load efficiency "
      "%.1f%% (its comment: \"Output: MEMORY BOUND\")\n\n",
      m.sm_utilization, m.memory_utilization, m.occupancy, m.load_efficiency);
  std::printf(
      "  the seed's tree:          %s   <- tests sm < 50 first and calls it compute-bound\n",
      seed_verdict_name(seed_classify(m)));
  std::printf("  the seed's tree, fixed:   %s\n", seed_verdict_name(seed_classify_fixed(m)));
  const Classification c = classify(evidence_from_seed(m));
  std::printf("  the classifier:           %s\n", c.label().c_str());
  for (const auto& e : c.evidence) std::printf("      - %s\n", e.c_str());
  std::printf(
      "\n  Low SM throughput alone says nothing: the memory is at %.1f%% of its peak. Low "
      "SM AND low memory\n  throughput (both below %.0f%%) would mean latency-bound, not "
      "compute-bound.\n",
      m.memory_utilization, default_thresholds().high_throughput_pct);
  return 0;
}

int run_classify(const ClassifyOptions& o) {
  if (o.thresholds) return print_thresholds();
  if (o.seed_example) return print_seed_example();
  // Before the table: a --json that cannot be written is said at once, not after it.
  if (!o.in.json.empty()) require_writable_path(o.in.json, "--json");
  require_distinct_paths({{"--ncu", o.in.ncu},
                          {"--trace", o.in.trace},
                          {"--roof", o.in.roof_file},
                          {"--json", o.in.json}});
  const Analysis a = run_profile_analysis(o.in, "classify");
  std::fputs(analysis_table(a, !o.brief).c_str(), stdout);
  write_analysis_json(a, o.in.json, "--json");
  if (!o.in.json.empty())
    std::printf("\nwrote %s (plot it: scripts/plot_roofline.py %s)\n", o.in.json.c_str(),
                o.in.json.c_str());
  return 0;
}

}  // namespace

Runner add_classify_command(CLI::App& app) {
  auto o = std::make_shared<ClassifyOptions>();
  CLI::App* sub = app.add_subcommand(
      "classify",
      "What limits each kernel of an ncu profile or a trace: memory (DRAM/L2/L1), "
      "compute (tensor/FMA pipe), latency (launch, grid, occupancy, stalls), "
      "uncoalesced, near the roof; with evidence and what to try");
  add_profile_input_flags(sub, o->in);
  sub->add_flag("--brief", o->brief, "One line per kernel, no evidence");
  sub->add_flag("--thresholds", o->thresholds, "Print the thresholds table and exit");
  sub->add_flag("--seed-example", o->seed_example,
                "Classify the seed's example with its tree, the fixed tree and the classifier");
  return [o] { return run_classify(*o); };
}

Runner add_kernel_analysis_commands(CLI::App& app) {
  Runner classify = add_classify_command(app);
  Runner analyze = add_analyze_command(app);
  Runner calibrate = add_calibrate_command(app);
  return [&app, classify, analyze, calibrate] {
    if (app.got_subcommand("classify")) return classify();
    if (app.got_subcommand("analyze")) return analyze();
    return calibrate();
  };
}

}  // namespace day18::cli
