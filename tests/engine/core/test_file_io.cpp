// write_file_atomically (engine/core/file_io.h) and write_safetensors on top of it: an output file
// is complete or absent, an error names the flag and the path, and no other file is touched.
// Regressions: `--json PATH` in a missing folder printed "wrote PATH" and exited 0; a pre-existing
// <out>.tmp was overwritten and then renamed away.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/core/safetensors.h"
#include "tests/support/temp_dir.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  return testing::fresh_temp_dir("day18_file_io_test", name);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

size_t files_in(const fs::path& d) {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(d)) ++n;
  return n;
}

TEST(WriteFileAtomically, WritesTheContent) {
  const fs::path d = fresh_dir("ok");
  write_file_atomically((d / "out.json").string(), "--json", [](std::ostream& o) { o << "{}\n"; });
  EXPECT_EQ(slurp(d / "out.json"), "{}\n");
  EXPECT_EQ(files_in(d), 1u) << "a temporary file was left behind";
}

TEST(WriteFileAtomically, MissingFolderIsAnErrorNamingTheFlagAndPath) {
  const fs::path d = fresh_dir("missing");
  const std::string path = (d / "no" / "such" / "out.json").string();
  EXPECT_THROW_WITH(write_file_atomically(path, "--json", [](std::ostream& o) { o << "x"; }),
                    InvalidArgument, "--json", path.c_str(), "does not exist");
  EXPECT_FALSE(fs::exists(path));
}

TEST(WriteFileAtomically, APathThatIsAFolderIsAnError) {
  const fs::path d = fresh_dir("isdir");
  EXPECT_THROW_WITH(write_file_atomically(d.string(), "--out", [](std::ostream& o) { o << "x"; }),
                    InvalidArgument, "--out", "is a folder");
}

TEST(WriteFileAtomically, APreExistingDotTmpFileIsNeitherClobberedNorConsumed) {
  const fs::path d = fresh_dir("tmp");
  { std::ofstream(d / "out.json.tmp") << "the user's own file"; }
  write_file_atomically((d / "out.json").string(), "--json", [](std::ostream& o) { o << "new"; });
  EXPECT_EQ(slurp(d / "out.json"), "new");
  ASSERT_TRUE(fs::exists(d / "out.json.tmp"));
  EXPECT_EQ(slurp(d / "out.json.tmp"), "the user's own file");
  EXPECT_EQ(files_in(d), 2u);
}

TEST(WriteFileAtomically, AWriterThatThrowsLeavesTheOldFileAndNoTemporary) {
  const fs::path d = fresh_dir("throws");
  { std::ofstream(d / "out.json") << "old"; }
  EXPECT_THROW(write_file_atomically((d / "out.json").string(), "--json",
                                     [](std::ostream& o) {
                                       o << "half";
                                       throw std::runtime_error("boom");
                                     }),
               std::runtime_error);
  EXPECT_EQ(slurp(d / "out.json"), "old");
  EXPECT_EQ(files_in(d), 1u);
}

TEST(WriteSafetensors, KeepsAPreExistingDotTmpAndNamesTheFlagOnFailure) {
  const fs::path d = fresh_dir("st");
  { std::ofstream(d / "o.safetensors.tmp") << "keep me"; }
  OwnedTensor t({3}, DType::f32, Storage::host);
  for (int i = 0; i < 3; ++i) t.ptr<float>()[i] = float(i);
  write_safetensors((d / "o.safetensors").string(), {{"x", t.view()}}, {}, "--out");
  EXPECT_EQ(slurp(d / "o.safetensors.tmp"), "keep me");
  EXPECT_EQ(read_safetensors((d / "o.safetensors").string()).at("x").ptr<float>()[2], 2.f);
  EXPECT_THROW_WITH(
      write_safetensors((d / "nope" / "o.safetensors").string(), {{"x", t.view()}}, {}, "--out"),
      InvalidArgument, "--out", "does not exist");
}

}  // namespace
}  // namespace day18
