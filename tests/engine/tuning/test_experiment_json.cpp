// The day18.tune.v1 JSON: what `day18 tune --json` writes is what `day18 tune show` and
// `day18 report` read back, and a broken file is an error naming the field, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/tuning/experiment.h"
#include "tests/engine/tuning/tuning_fixtures.h"
#include "tests/support/test_support.h"

namespace day18::tuning {
namespace {

using testing::small_experiment;

TEST(TuneJson, RoundTripKeepsEveryField) {
  const Experiment e = small_experiment();
  const Experiment r = experiment_from_json(to_json(e), "test");
  EXPECT_EQ(r.experiment, "block_size");
  EXPECT_EQ(r.provenance.gpu, "NVIDIA H200");
  EXPECT_EQ(r.provenance.sm_count, 132);
  EXPECT_EQ(r.provenance.command, "day18 tune block-size --quick");
  EXPECT_DOUBLE_EQ(r.roof.p_gbps, 4172);
  EXPECT_EQ(r.parameters, std::vector<std::string>{"threads"});
  ASSERT_EQ(r.groups.size(), 1u);
  const Group& g = r.groups[0];
  EXPECT_EQ(g.baseline, 1);
  EXPECT_EQ(g.best, 2);
  EXPECT_NEAR(g.speedup, 101.0 / 91.0, 1e-12);
  ASSERT_EQ(g.points.size(), 4u);
  EXPECT_TRUE(g.points[2].timed);
  EXPECT_DOUBLE_EQ(g.points[2].median_us, 91);
  EXPECT_DOUBLE_EQ(g.points[2].p20_us, 90);
  EXPECT_EQ(g.points[2].repeats, 30);
  ASSERT_TRUE(g.points[2].occupancy);
  EXPECT_EQ(g.points[2].occupancy->blocks_per_sm, 4);
  EXPECT_DOUBLE_EQ(g.points[2].occupancy->waves, 1.5);
  EXPECT_EQ(g.points[2].verdict, "MEMORY BOUND (DRAM)");
  EXPECT_FALSE(g.points[3].correct);
  EXPECT_FALSE(g.points[3].timed);
  EXPECT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(to_json(r), to_json(e)) << "write -> read -> write is the identity";
}

TEST(TuneJson, HasTheContractFieldsAndNoTimingOnAWrongPoint) {
  const nlohmann::json j = to_json(small_experiment());
  EXPECT_EQ(j.at("schema"), "day18.tune.v1");
  for (const char* k :
       {"experiment", "provenance", "roof", "hypothesis", "parameters", "groups", "notes"})
    EXPECT_TRUE(j.contains(k)) << k;
  for (const char* k : {"gpu", "driver", "cuda_runtime", "commit", "date", "command", "sm_count"})
    EXPECT_TRUE(j.at("provenance").contains(k)) << k;
  for (const char* k : {"p_gbps", "p_source", "peak_tflops", "peak_fma_tflops"})
    EXPECT_TRUE(j.at("roof").contains(k)) << k;
  const nlohmann::json& g = j.at("groups")[0];
  for (const char* k :
       {"name", "kernel", "shape", "baseline", "best", "speedup", "within_noise", "points"})
    EXPECT_TRUE(g.contains(k)) << k;
  const nlohmann::json& ok = g.at("points")[2];
  for (const char* k :
       {"config", "label", "correct", "max_abs_err", "tolerance", "median_us", "p20_us", "p80_us",
        "repeats", "bytes", "flops", "pct_of_p", "occupancy", "verdict", "extra"})
    EXPECT_TRUE(ok.contains(k)) << k;
  for (const char* k : {"theoretical_pct", "blocks_per_sm", "registers", "shared_bytes", "waves"})
    EXPECT_TRUE(ok.at("occupancy").contains(k)) << k;
  EXPECT_TRUE(ok.at("median_us").is_number()) << "numbers, not strings with units";
  const nlohmann::json& bad = g.at("points")[3];
  EXPECT_FALSE(bad.at("correct").get<bool>());
  for (const char* k : {"median_us", "p20_us", "p80_us", "repeats", "bytes", "flops", "pct_of_p",
                        "occupancy", "verdict"})
    EXPECT_FALSE(bad.contains(k)) << "a point that failed its check was not timed, yet has " << k;
  EXPECT_TRUE(bad.contains("max_abs_err"));
}

TEST(TuneJson, WriteThenReadAFile) {
  const std::string path = ::testing::TempDir() + "/tune_roundtrip.json";
  write_experiment(path, small_experiment());
  const Experiment r = read_experiment(path);
  EXPECT_EQ(r.groups.at(0).points.size(), 4u);
  std::filesystem::remove(path);
}

nlohmann::json broken(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = to_json(small_experiment());
  edit(j);
  return j;
}

TEST(TuneJson, BrokenFilesNameTheField) {
  EXPECT_INVALID_NAMING(
      experiment_from_json(broken([](auto& j) { j["schema"] = "day18.tune.v0"; }), "f.json"),
      "schema");
  EXPECT_INVALID_NAMING(experiment_from_json(broken([](auto& j) { j.erase("groups"); }), "f.json"),
                        "groups: missing");
  EXPECT_INVALID_NAMING(
      experiment_from_json(broken([](auto& j) { j["experiment"] = "thread_size"; }), "f.json"),
      "thread_size");
  EXPECT_INVALID_NAMING(
      experiment_from_json(
          broken([](auto& j) { j["groups"][0]["points"][2]["median_us"] = "91 us"; }), "f.json"),
      "groups[0].points[2].median_us");
  EXPECT_INVALID_NAMING(
      experiment_from_json(broken([](auto& j) { j["groups"][0]["points"][3]["median_us"] = 5.0; }),
                           "f.json"),
      "not timed");
  EXPECT_INVALID_NAMING(
      experiment_from_json(broken([](auto& j) { j["groups"][0]["points"][1].erase("p80_us"); }),
                           "f.json"),
      "points[1].median_us");
  EXPECT_INVALID_NAMING(
      experiment_from_json(broken([](auto& j) { j["groups"][0]["baseline"] = 7; }), "f.json"),
      "groups[0].baseline");
  EXPECT_INVALID_NAMING(
      experiment_from_json(broken([](auto& j) { j["groups"][0]["points"][0]["p20_us"] = 500.0; }),
                           "f.json"),
      "p20_us <= median_us");
  EXPECT_INVALID_NAMING(experiment_from_json(nlohmann::json::array(), "f.json"), "f.json");
}

TEST(TuneJson, MissingAndNonJsonFilesAreClearErrors) {
  EXPECT_INVALID_NAMING(read_experiment("/nonexistent/tune.json"), "/nonexistent/tune.json");
  const std::string path = ::testing::TempDir() + "/tune_not_json.json";
  std::ofstream(path) << "{ not json";
  EXPECT_INVALID_NAMING(read_experiment(path), "is not JSON");
  std::filesystem::remove(path);
}

TEST(TuneShow, TablesMarkBaselineBestAndAWrongPoint) {
  const std::string t = experiment_tables(small_experiment());
  EXPECT_NE(t.find("paged_attention v1, B=16 ctx 1024"), std::string::npos) << t;
  EXPECT_NE(t.find("best: 256 threads, 1.110x the baseline (128 threads)"), std::string::npos) << t;
  EXPECT_NE(t.find("not timed"), std::string::npos) << t;
  EXPECT_EQ(t.find("WITHIN THE NOISE"), std::string::npos) << t;
  Experiment e = small_experiment();
  e.groups[0].within_noise = true;
  EXPECT_NE(experiment_tables(e).find("WITHIN THE NOISE"), std::string::npos);
}

}  // namespace
}  // namespace day18::tuning
