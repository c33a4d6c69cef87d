// Golden outputs: every file in reference/outputs/ (made by PyTorch, see
// scripts/make_reference_outputs.py) is run through the CPU oracle and, on a GPU, the CUDA
// kernel; both must match PyTorch within the op's tolerance for the dtype.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "engine/core/safetensors.h"
#include "engine/kernels/paged_attention.h"
#include "engine/ops/registry.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> golden_files() {
  std::vector<std::string> files;
  const fs::path dir = fs::path(testing::source_dir()) / "reference" / "outputs";
  if (fs::exists(dir))
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

struct GoldenCase {
  const OpDef* op;
  TensorStore inputs{Device::cpu};
  TensorStore expected{Device::cpu};
  Attrs attrs;
};

GoldenCase load(const std::string& path) {
  TensorFile f = read_safetensors(path);
  GoldenCase c;
  std::map<std::string, std::string> attrs;
  for (auto& [k, v] : f.metadata)
    if (!k.empty() && k[0] != '_') attrs[k] = v;
  c.attrs = Attrs(attrs);
  DAY18_REQUIRE(f.metadata.count("_op"), path, ": no _op in metadata");
  c.op = &OpRegistry::instance().find(f.metadata.at("_op"));
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("in.", 0) == 0) c.inputs.put(name.substr(3), t.view());
    else if (name.rfind("out.", 0) == 0) c.expected.put(name.substr(4), t.view());
  }
  return c;
}

// PyTorch and our kernels round differently (fused ops, accumulation order): allow 2x the
// op's CUDA-vs-oracle tolerance.
constexpr double kGoldenSlack = 2.0;

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, CpuOracleMatchesPyTorch) {
  GoldenCase c = load(GetParam());
  TensorStore io = c.inputs.to(Device::cpu);
  run_op(*c.op, io, c.attrs);
  CompareResult r = compare_outputs(*c.op, io, c.expected, kGoldenSlack);
  EXPECT_TRUE(r.ok) << c.op->name << r.report;
}

TEST_P(Golden, CudaKernelMatchesPyTorch) {
  DAY18_REQUIRE_GPU();
  GoldenCase c = load(GetParam());
  TensorStore io = c.inputs.to(Device::cuda);
  Stream s;
  run_op(*c.op, io, c.attrs, s);
  CompareResult r = compare_outputs(*c.op, io, c.expected, kGoldenSlack);
  EXPECT_TRUE(r.ok) << c.op->name << r.report;
}

// The manifest the script writes and the files beside it describe the same cases: a case whose
// file is missing (or a file no run of the script made) is named here, not lost silently (the
// parameterized tests above only see the files that exist).
TEST(GoldenFiles, ManifestAndFilesListTheSameCases) {
  const fs::path dir = fs::path(testing::source_dir()) / "reference" / "outputs";
  std::ifstream in(dir / "manifest.json");
  ASSERT_TRUE(in) << "no " << (dir / "manifest.json") << ": run scripts/make_reference_outputs.py";
  const nlohmann::json manifest = nlohmann::json::parse(in);
  std::set<std::string> listed, present;
  for (const auto& c : manifest.at("cases")) listed.insert(c.at("name").get<std::string>());
  for (const std::string& f : golden_files()) present.insert(fs::path(f).stem().string());
  for (const std::string& n : listed)
    EXPECT_TRUE(present.count(n))
        << "manifest.json lists '" << n << "' but reference/outputs/" << n
        << ".safetensors is missing (rerun scripts/make_reference_outputs.py, commit its files)";
  for (const std::string& n : present)
    EXPECT_TRUE(listed.count(n)) << "reference/outputs/" << n
                                 << ".safetensors is not in manifest.json (a stale file?)";
}

// Every head size the kernels are compiled for has a golden paged_attention case. Cases added to
// scripts/reference_ops/attention.py exist only once the script has run where PyTorch is (the GPU
// machine): until then this test SKIPS, naming the sizes and the command, instead of the gap
// going unnoticed.
TEST(GoldenFiles, EveryPagedAttentionHeadSizeHasAGoldenCase) {
  std::set<int64_t> covered;
  for (const std::string& f : golden_files()) {
    const TensorFile t = read_safetensors(f);
    if (t.metadata.count("_op") && t.metadata.at("_op") == "paged_attention" &&
        t.contains("in.query") && t.at("in.query").view().dim() == 3)
      covered.insert(t.at("in.query").view().size(2));
  }
  std::string missing;
  for (int h : cuda::kPagedAttentionHeadSizes)
    if (!covered.count(h)) missing += (missing.empty() ? "" : ", ") + std::to_string(h);
  if (!missing.empty())
    GTEST_SKIP() << "no golden paged_attention case in reference/outputs for head_size " << missing
                 << ": run `python3 scripts/make_reference_outputs.py --family attention` where "
                    "PyTorch is installed (the GPU machine) and commit reference/outputs/";
}

TEST(GoldenFiles, EveryRegisteredOpHasGoldenOutputs) {
  std::set<std::string> covered;
  for (auto& f : golden_files()) covered.insert(read_safetensors(f).metadata.at("_op"));
  for (auto& op : OpRegistry::instance().all())
    EXPECT_TRUE(covered.count(op.name)) << "no golden output in reference/outputs for op '"
                                        << op.name << "'";
}

std::string case_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = fs::path(info.param).stem().string();
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(ReferenceOutputs, Golden, ::testing::ValuesIn(golden_files()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Golden);

}  // namespace
}  // namespace day18
