// A fresh, empty folder for one test: <TempDir>/<suite>_<pid>/<name>.
//
// The pid keeps two builds of this tree that test at the same time (two ctest runs, or ctest -j)
// from sharing files; every <suite>_<pid> folder is removed when the test process exits.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

namespace day18::testing {

inline std::filesystem::path fresh_temp_dir(const std::string& suite, const std::string& name) {
  namespace fs = std::filesystem;
  struct Roots {
    std::set<fs::path> paths;
    ~Roots() {
      std::error_code ec;
      for (const fs::path& p : paths) fs::remove_all(p, ec);
    }
  };
  static Roots roots;
  const fs::path root = fs::path(::testing::TempDir()) / (suite + "_" + std::to_string(getpid()));
  roots.paths.insert(root);
  const fs::path d = root / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace day18::testing
