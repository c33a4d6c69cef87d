// main() of every lab test binary: GoogleTest, plus a listener that follows each failed test with
// the task it belongs to and where its README section is, so a failure says what to do next.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <vector>
#include <fstream>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/labs/support/lab.h"

namespace {

class HintPrinter : public ::testing::EmptyTestEventListener {
 public:
  HintPrinter() {
    // labs/NN-name/lab.json of every lab: its slug and task titles.
    namespace fs = std::filesystem;
    const fs::path labs = fs::path(DAY18_SOURCE_DIR) / "labs";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(labs, ec)) {
      std::ifstream f(e.path() / "lab.json");
      if (!f) continue;
      nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("id")) manifests_.push_back(std::move(j));
    }
  }

  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (!info.result()->Failed()) return;
    static const std::regex re(R"(Lab(\d\d)_Task(\d+)_\w+)");
    std::smatch m;
    const std::string suite = info.test_suite_name();
    if (!std::regex_match(suite, m, re)) return;
    const std::string lab = m[1];
    const int task = std::stoi(m[2]);
    bool stub = false;
    for (int i = 0; i < info.result()->total_part_count(); ++i)
      if (std::string(info.result()->GetTestPartResult(i).message()).find("not implemented yet") !=
          std::string::npos)
        stub = true;
    std::string where = "labs/" + lab + "-*/README.md", title;
    for (const auto& l : manifests_)
      if (l["id"] == lab) {
        where = "labs/" + lab + "-" + l["slug"].get<std::string>() + "/README.md";
        if (task >= 1 && task <= static_cast<int>(l["tasks"].size()))
          title = l["tasks"][task - 1]["title"].get<std::string>();
      }
    std::printf("[ hint     ] %s task %d%s%s: %s, section \"Task %d\"%s\n", lab.c_str(), task,
                title.empty() ? "" : " - ", title.c_str(), where.c_str(), task,
                stub ? " (this task's region still holds its stub)" : "");
    if (day18::lab::is_student())
      std::printf("[ hint     ] compare with the engine: scripts/lab diff %s   (the solution)\n",
                  lab.c_str());
  }

 private:
  std::vector<nlohmann::json> manifests_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new HintPrinter);
  return RUN_ALL_TESTS();
}
