// The classifier on the labelled calibration kernels (reference/ncu/labels.json): the hand-made
// fixture always, and every measured reference/ncu/<gpu>/calibration.csv there is. Each labelled
// kernel must be found and get its verdict.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/profiling/calibration_kernels.h"
#include "engine/profiling/kernel_analysis.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;

nlohmann::json labels() {
  std::ifstream f(std::string(DAY18_SOURCE_DIR) + "/reference/ncu/labels.json");
  return nlohmann::json::parse(f);
}

// Every labelled kernel of `csv` gets the labelled verdict (one launch per kernel).
void check_labels(const std::string& csv) {
  SCOPED_TRACE(csv);
  const ncu::Table t = ncu::read_csv(csv);
  const nlohmann::json L = labels();
  for (const auto& l : L["kernels"]) {
    const std::regex re(l["match"].get<std::string>());
    int found = 0;
    for (size_t r = 0; r < t.rows.size(); ++r) {
      if (!std::regex_search(ncu::kernel_name(t, r), re)) continue;
      ++found;
      const Classification c = classify(evidence_from_ncu(t, r));
      EXPECT_EQ(c.verdict, l["verdict"].get<std::string>())
          << l["key"] << " (" << ncu::kernel_name(t, r) << "): " << c.label();
      EXPECT_EQ(c.detail, l["detail"].get<std::string>()) << l["key"] << ": " << c.label();
    }
    EXPECT_GE(found, 1) << "no kernel matching '" << l["match"] << "' (" << l["key"] << ")";
  }
}

TEST(LabelledFixtures, EveryLabelHasAKernelOfTheCalibrationRun) {
  std::set<std::string> keys;
  for (const auto& k : calibration::calibration_kernels()) keys.insert(k.key);
  std::set<std::string> labelled;
  const nlohmann::json L = labels();
  for (const auto& l : L["kernels"]) labelled.insert(l["key"].get<std::string>());
  EXPECT_EQ(keys, labelled);
}

TEST(LabelledFixtures, TheHandMadeFixturesGetTheirLabels) {
  const nlohmann::json L = labels();
  for (const auto& csv : L["csv"])
    check_labels(std::string(DAY18_SOURCE_DIR) + "/" + csv.get<std::string>());
}

TEST(LabelledFixtures, MeasuredCalibrationCsvsGetTheirLabels) {
  int n = 0;
  for (const auto& d : fs::directory_iterator(fs::path(DAY18_SOURCE_DIR) / "reference/ncu")) {
    const fs::path csv = d.path() / "calibration.csv";
    if (d.is_directory() && fs::exists(csv)) {
      check_labels(csv.string());
      ++n;
    }
  }
  if (n == 0)
    GTEST_SKIP() << "no measured reference/ncu/<gpu>/calibration.csv yet (scripts/profile_ncu.sh "
                    "--calibration on a GPU makes one)";
}

}  // namespace
}  // namespace day18
