// The kernel profile analysis end to end on hand-made inputs: an ncu CSV of one layer of a
// decode step with the cost model's plan attached, a Chrome trace (what `day18 trace` writes)
// classified from durations, launch gaps, the cost model and the roof, the JSON that
// scripts/plot_roofline.py reads, the markdown page, and the roof file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/core/error.h"
#include "engine/profiling/kernel_analysis.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

std::string src(const std::string& rel) {
  return std::string(DAY18_SOURCE_DIR) + "/" + rel;
}

const KernelRow* row_named(const Analysis& a, const std::string& name) {
  for (const auto& r : a.kernels)
    if (r.evidence.name == name) return &r;
  return nullptr;
}

AnalysisOptions h200_options(int64_t batch, int64_t context) {
  AnalysisOptions o;
  o.roof = {4.2e12, 790e12, 67e12, "test roof"};
  o.plan = DecodePlan{ModelConfig::preset("llama-1b"), {batch, context, DType::f16}};
  return o;
}

TEST(KernelAnalysis, NcuRowsGetTheCostModelsBytesFlopsAndPlaces) {
  const ncu::Table t = ncu::read_csv(src("reference/ncu/fixtures/decode_step_handmade.csv"));
  const Analysis a = analyze_ncu(t, h200_options(8, 1024));
  EXPECT_EQ(a.input, "ncu");
  EXPECT_EQ(a.launches, 5);
  ASSERT_EQ(a.kernels.size(), 5u);
  const KernelRow* att = row_named(a, "paged_attention_kernel");
  ASSERT_NE(att, nullptr);
  EXPECT_EQ(att->evidence.what.rfind("layer * attention", 0), 0u) << att->evidence.what;
  ASSERT_TRUE(att->analytic.has_value());
  EXPECT_EQ(att->analytic->flops, cost::paged_attention(8, 32, 8, 64, 8 * 1024, DType::f16).flops);
  // Measured bytes stay the counters'; the analytic ones are compared in the evidence.
  EXPECT_EQ(att->evidence.bytes_source, "dram__bytes_read + dram__bytes_write");
  // The cuBLAS GEMM gets its FLOPs from the cost model (the counters miss tensor-core work).
  const KernelRow& gemm = a.kernels[0].evidence.name.find("gemm") != std::string::npos
                              ? a.kernels[0]
                              : *std::find_if(a.kernels.begin(), a.kernels.end(), [](auto& r) {
                                  return r.evidence.name.find("gemm") != std::string::npos;
                                });
  EXPECT_EQ(gemm.evidence.what, "layer * qkv_proj");
  EXPECT_EQ(gemm.evidence.flops_source, "cost model");
  EXPECT_EQ(*gemm.evidence.flops, cost::linear(8, 3072, 2048, DType::f16).flops);
  double share = 0;
  for (const auto& r : a.kernels) share += r.time_share;
  EXPECT_NEAR(share, 1.0, 1e-9);
  EXPECT_GE(a.kernels[0].evidence.total_s.value_or(0), a.kernels[1].evidence.total_s.value_or(0))
      << "rows are sorted by time, longest first";
}

TEST(KernelAnalysis, ALaunchRepeatedIsOneRowWithItsCount) {
  const ncu::Table t = ncu::read_csv(src("tests/engine/profiling/data/preamble_and_na.csv"));
  AnalysisOptions o;
  const Analysis grouped = analyze_ncu(t, o);
  ASSERT_EQ(grouped.kernels.size(), 2u);
  EXPECT_EQ(grouped.kernels[0].evidence.name, "k1");
  EXPECT_EQ(grouped.kernels[0].evidence.launches, 2);
  EXPECT_DOUBLE_EQ(*grouped.kernels[0].evidence.duration_s, 3152e-9);  // mean of 3104 and 3200 ns
  EXPECT_DOUBLE_EQ(*grouped.kernels[0].evidence.total_s, 6304e-9);
  o.group = false;
  EXPECT_EQ(analyze_ncu(t, o).kernels.size(), 3u);
  // No SOL columns: said, and the verdict is unknown rather than a guess.
  EXPECT_EQ(grouped.kernels[0].result.verdict, "UNKNOWN");
  bool noted = false;
  for (const auto& n : grouped.notes)
    noted |= n.find("no speed-of-light columns") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(KernelAnalysis, ChromeTraceKernelsWithGapsPerStream) {
  const KernelTrace tr =
      read_chrome_trace(src("tests/engine/profiling/data/decode_trace_handmade.json"));
  ASSERT_EQ(tr.kernels.size(), 7u);
  EXPECT_EQ(tr.gpu_ops, 8);  // 7 kernels and 1 copy (on another stream)
  EXPECT_EQ(tr.kernels[0].gap_us, -1) << "the stream's first op has no gap";
  EXPECT_NEAR(tr.kernels[1].gap_us, 4.0, 1e-9);
  EXPECT_EQ(tr.kernels[1].grid_blocks, 384);
  EXPECT_EQ(tr.kernels[1].block_threads, 256);
  EXPECT_EQ(tr.kernels[1].stream, "compute");
}

TEST(KernelAnalysis, ATraceIsClassifiedFromTheRooflineAndTheGaps) {
  const KernelTrace tr =
      read_chrome_trace(src("tests/engine/profiling/data/decode_trace_handmade.json"));
  AnalysisOptions o = h200_options(1, 512);
  o.sm_count = 132;
  o.group = false;
  const Analysis a = analyze_trace(tr, o);
  ASSERT_EQ(a.kernels.size(), 7u);
  for (const auto& r : a.kernels) {
    SCOPED_TRACE(r.evidence.name + " " + r.evidence.what);
    EXPECT_TRUE(r.analytic.has_value()) << "every kernel of the step matched the plan";
    EXPECT_TRUE(r.result.sol_from_roofline);
  }
  auto verdict_of = [&](const std::string& what) {
    for (const auto& r : a.kernels)
      if (r.evidence.what.rfind(what, 0) == 0) return r.result.label();
    return std::string("(none)");
  };
  EXPECT_EQ(verdict_of("layer * post_attention_layernorm + gate_up_proj"), "MEMORY BOUND (DRAM)");
  EXPECT_EQ(verdict_of("layer * o_proj"), "LATENCY BOUND (launch/overhead)");
  EXPECT_EQ(verdict_of("layer * attention ("), "LATENCY BOUND (grid below one wave)");
}

TEST(KernelAnalysis, ATraceCanBeCutToTheDecodeSteps) {
  const KernelTrace tr =
      read_chrome_trace(src("tests/engine/profiling/data/decode_trace_handmade.json"));
  EXPECT_EQ(tr.kernels[0].step, 3);
  AnalysisOptions o = h200_options(1, 512);
  o.first_step = o.last_step = 3;
  EXPECT_EQ(analyze_trace(tr, o).launches, 7);
  o.first_step = o.last_step = 4;
  const Analysis none = analyze_trace(tr, o);
  EXPECT_EQ(none.launches, 0);
  EXPECT_NE(none.notes[0].find("7 kernels outside steps 4..4"), std::string::npos) << none.notes[0];
}

TEST(KernelAnalysis, ATraceNeedsThePlanAndTheRoofToSayMore) {
  const KernelTrace tr =
      read_chrome_trace(src("tests/engine/profiling/data/decode_trace_handmade.json"));
  const AnalysisOptions none;
  const Analysis a = analyze_trace(tr, none);
  EXPECT_GE(a.notes.size(), 2u);
  for (const auto& r : a.kernels) EXPECT_EQ(r.result.verdict, "UNKNOWN") << r.evidence.name;
}

TEST(KernelAnalysis, NotAChromeTraceIsAClearError) {
  EXPECT_THROW_WITH(parse_chrome_trace(nlohmann::json{{"activities", 1}}, "x.json"),
                    InvalidArgument, "--trace x.json", "not a Chrome trace", "day18 trace");
  nlohmann::json bad = {{"traceEvents", {{{"ph", "X"}, {"cat", "kernel"}, {"name", "k"}}}}};
  EXPECT_THROW_WITH(parse_chrome_trace(bad, "y.json"), InvalidArgument, "traceEvents[0]",
                    "no \"ts\"", "ts and dur");
  EXPECT_THROW_WITH(read_chrome_trace("/no/such.json"), InvalidArgument, "--trace /no/such.json");
}

TEST(KernelAnalysis, AWrongTypedTraceFieldIsNamedWithItsEventNotANlohmannTypeError) {
  // Before: "a JSON input has the wrong structure ([json.exception.type_error.302] type must be
  // string, but is number)", exit 3, naming neither the file nor the field; a wrong-typed
  // args.step or args.grid was dropped without a word (the kernel then fell outside
  // --trace-steps, or had no grid).
  auto slice = [](nlohmann::json patch) {
    nlohmann::json e = {
        {"ph", "X"},   {"cat", "kernel"},
        {"name", "k"}, {"ts", 1.0},
        {"dur", 2.0},  {"pid", 1},
        {"tid", 2},    {"args", {{"grid", {4, 1, 1}}, {"block", {128, 1, 1}}, {"step", 3}}}};
    e.merge_patch(patch);
    return nlohmann::json{{"traceEvents", {e}}};
  };
  const std::pair<nlohmann::json, const char*> cases[] = {
      {{{"ph", 5}}, "traceEvents[0].ph: expected a string, got 5"},
      {{{"cat", {{"a", 1}}}}, "traceEvents[0].cat: expected a string"},
      {{{"name", 7}}, "traceEvents[0].name: expected a string, got 7"},
      {{{"ts", "abc"}}, "traceEvents[0].ts: expected a finite number, got \"abc\""},
      {{{"dur", -1}}, "traceEvents[0].dur: expected a duration >= 0, got -1"},
      {{{"pid", {{"x", 1}}}}, "traceEvents[0].pid: expected an integer or a string"},
      {{{"args", 7}}, "traceEvents[0].args: expected an object, got 7"},
      {{{"args", {{"grid", "abc"}}}}, "traceEvents[0].args.grid: expected an array of positive"},
      {{{"args", {{"block", {128, "x"}}}}}, "traceEvents[0].args.block"},
      {{{"args", {{"step", "3"}}}}, "traceEvents[0].args.step: expected an integer, got \"3\""},
  };
  for (const auto& [patch, want] : cases)
    EXPECT_THROW_WITH(parse_chrome_trace(slice(patch), "t.json"), InvalidArgument, "--trace t.json",
                      want);
  nlohmann::json not_event = {{"traceEvents", {5}}};
  EXPECT_THROW_WITH(parse_chrome_trace(not_event, "t.json"), InvalidArgument, "traceEvents[0]",
                    "expected an event");
  // What other tools write where the format allows it: a named tid, an integer stream.
  const KernelTrace ok =
      parse_chrome_trace(slice({{"tid", "stream 7"}, {"args", {{"stream", 7}}}}), "t.json");
  ASSERT_EQ(ok.kernels.size(), 1u);
  EXPECT_EQ(ok.kernels[0].stream, "7");
  EXPECT_EQ(ok.kernels[0].grid_blocks, 4);
  EXPECT_EQ(ok.kernels[0].block_threads, 128);
  EXPECT_EQ(ok.kernels[0].step, 3);
}

TEST(KernelAnalysis, JsonHasWhatThePlotNeeds) {
  const ncu::Table t = ncu::read_csv(src("reference/ncu/fixtures/calibration_handmade.csv"));
  AnalysisOptions o;
  o.roof = {4.2e12, 790e12, 67e12, "r"};
  const nlohmann::json j = analysis_json(analyze_ncu(t, o));
  EXPECT_EQ(j["roof"]["peak_bw_gbps"], 4200.0);
  EXPECT_EQ(j["roof"]["peak_tflops"], 790.0);
  ASSERT_EQ(j["kernels"].size(), 6u);
  for (const auto& k : j["kernels"]) {
    for (const char* key : {"name", "label", "verdict", "intensity", "achieved_tflops",
                            "achieved_gbps", "pct_of_roof", "time_share", "evidence"})
      EXPECT_TRUE(k.contains(key)) << k["name"] << " lacks " << key;
  }
}

TEST(KernelAnalysis, MarkdownPageHasEveryKernelItsVerdictAndTheFigure) {
  const ncu::Table t = ncu::read_csv(src("reference/ncu/fixtures/calibration_handmade.csv"));
  AnalysisOptions o;
  o.roof = {4.2e12, 790e12, 67e12, "r"};
  const std::string md = analysis_markdown(analyze_ncu(t, o), "roofline.png", "day18 analyze ...");
  for (const char* part :
       {"# Kernel profile analysis", "![The kernels on the roofline](roofline.png)",
        "| kernel | where | calls | time share", "calib_stream_copy", "MEMORY BOUND (DRAM)",
        "UNCOALESCED", "What to try:", "high_throughput_pct"})
    EXPECT_NE(md.find(part), std::string::npos) << "lacks '" << part << "'";
}

TEST(KernelAnalysis, RoofFilesFromCalibrateOrTheProbe) {
  const std::string dir = ::testing::TempDir();
  const std::string cal = dir + "/roof_cal.json", probe = dir + "/roof_probe.json",
                    bad = dir + "/roof_bad.json";
  std::ofstream(cal)
      << R"({"gpu": "NVIDIA H200", "p_gbps": 4180, "peak_tensor_tflops": 790, "peak_fma_tflops": 66})";
  std::ofstream(probe) << R"({"p_gbps": 4200, "kinds": []})";
  std::ofstream(bad) << R"({"p_gbps": "fast"})";
  const Roof r = read_roof_json(cal);
  EXPECT_EQ(r.peak_bw, 4180e9);
  EXPECT_EQ(r.peak_flops, 790e12);
  EXPECT_EQ(r.peak_fma_flops, 66e12);
  EXPECT_NE(r.source.find("NVIDIA H200"), std::string::npos);
  EXPECT_EQ(read_roof_json(probe).peak_bw, 4200e9);
  EXPECT_EQ(read_roof_json(probe).peak_flops, 0);
  EXPECT_THROW_WITH(read_roof_json(bad), InvalidArgument, "--roof", "p_gbps", "not a number");
  EXPECT_THROW_WITH(read_roof_json(dir + "/none.json"), InvalidArgument, "--roof", "cannot open");
}

// scripts/profile_ncu.sh asks for every metric the analysis reads (one list there, one here).
TEST(KernelAnalysis, TheProfileScriptCollectsEveryMetricTheAnalysisReads) {
  std::ifstream f(src("scripts/profile_ncu.sh"));
  ASSERT_TRUE(f) << "scripts/profile_ncu.sh";
  std::set<std::string> listed;
  bool inside = false;
  for (std::string line; std::getline(f, line);) {
    if (line.find("# BEGIN METRICS") == 0) inside = true;
    if (line.find("# END METRICS") == 0) inside = false;
    const size_t b = line.find_first_not_of(' ');
    if (inside && b != std::string::npos && line[b] != '#' && line.find('(') == std::string::npos &&
        line.find(')') == std::string::npos)
      listed.insert(line.substr(b, line.find_last_not_of(' ') - b + 1));
  }
  ASSERT_GT(listed.size(), 20u);
  for (const std::string& m : ncu_metrics_read())
    EXPECT_TRUE(listed.count(m)) << m << " is read by the analysis but not in profile_ncu.sh";
}

}  // namespace
}  // namespace day18
