// The `day18` command line as a user who makes mistakes meets it: every bad value is refused with
// exit status 2 and a message naming the flag and the value as typed; nothing crashes, hangs, or
// reports success without doing the work; the conventions hold (--version, defaults in --help).
// Each test is the regression test of an item of issue 11 (its comment says what happened before).
// Runs the day18 executable next to this test binary (build/engine/day18), or $DAY18_BIN.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "engine/core/build_info.h"
#include "engine/core/rng.h"
#include "engine/core/safetensors.h"
#include "engine/runtime/model_weights.h"
#include "tests/support/temp_dir.h"

namespace {

namespace fs = std::filesystem;

std::string day18_binary() {
  if (const char* env = std::getenv("DAY18_BIN")) return env;
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  return (exe.parent_path().parent_path() / "engine" / "day18").string();
}

struct Result {
  int rc;           // exit status; -1 when killed by a signal (a crash)
  std::string out;  // stdout + stderr
};

// `cmd` through the shell, with a time limit (a hang fails the test instead of blocking it).
Result shell(const std::string& cmd, int timeout_s = 60) {
  const std::string full = "timeout -s KILL " + std::to_string(timeout_s) + " " + cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  EXPECT_NE(p, nullptr) << full;
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  // timeout reports a KILLed child as 137.
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return {rc == 137 ? -1 : rc, out};
}

Result day18(const std::string& args, int timeout_s = 60) {
  const std::string bin = day18_binary();
  EXPECT_TRUE(fs::exists(bin)) << bin << " not found: build the day18 target";
  return shell(bin + " " + args, timeout_s);
}

// Exit status 2 (bad input), and the output names every part.
void expect_refused(const std::string& args, std::initializer_list<const char*> parts) {
  const Result r = day18(args);
  EXPECT_EQ(r.rc, 2) << "day18 " << args << "\n" << r.out;
  for (const char* p : parts)
    EXPECT_NE(r.out.find(p), std::string::npos)
        << "day18 " << args << ": output lacks \"" << p << "\":\n"
        << r.out;
}

fs::path fresh_dir(const std::string& name) {
  return day18::testing::fresh_temp_dir("day18_cli_bad_input", name);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const std::string kTinyRun =
    "run --preset tiny --device cpu --requests 2 --prompt-len 4 "
    "--output-len 2 --quiet ";

// ---- conventions ---------------------------------------------------------------------------

TEST(CliConventions, VersionPrintsTheVersionAndTheCommit) {
  // Before: "A subcommand is required", exit 2.
  const Result r = day18("--version");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find(std::string("day18 ") + day18::version()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::string("commit ") + day18::git_commit()), std::string::npos) << r.out;
}

TEST(CliConventions, EveryHelpShowsEachOptionsDefault) {
  // Before: only a few help strings spelt their default out, by hand ("(default 16)").
  // Options whose default is "nothing" (a path to give, a choice made at run time) show none.
  const std::set<std::string> no_default = {"--model", "--prompt-ids",  "--prompt-file",
                                            "--json",  "--dump-logits", "--in",
                                            "--out",   "--preset"};
  const std::regex option_line(R"(^\s+(--[a-z0-9-]+) (TEXT|INT|UINT|FLOAT)\b(.*)$)");
  for (const char* sub : {"tour", "kernel", "generate", "run"}) {
    const Result r = day18(std::string(sub) + " --help");
    ASSERT_EQ(r.rc, 0) << r.out;
    std::istringstream lines(r.out);
    std::string line;
    int checked = 0;
    for (; std::getline(lines, line);) {
      std::smatch m;
      if (!std::regex_match(line, m, option_line)) continue;
      const std::string flag = m[1];
      if (no_default.count(flag)) continue;
      ++checked;
      EXPECT_NE(m[3].str().find('='), std::string::npos)
          << "day18 " << sub << " --help: " << flag << " shows no default:\n"
          << line;
    }
    EXPECT_GE(checked, 2) << r.out;
  }
  // A few by value.
  EXPECT_NE(day18("run --help").out.find("=16"), std::string::npos);
  EXPECT_NE(day18("tour --help").out.find("=18"), std::string::npos);  // --seed
  EXPECT_NE(day18("generate --help").out.find("--device TEXT:{auto,cpu,cuda}=cpu"),
            std::string::npos);
}

TEST(CliConventions, SharedFlagsAreSpelledAndTypedTheSameEverywhere) {
  // Before: --device took auto in tour and run only; --seed was UINT in tour, INT in run.
  for (const char* sub : {"tour", "kernel", "generate", "run"}) {
    const std::string help = day18(std::string(sub) + " --help").out;
    EXPECT_NE(help.find("--device TEXT:{auto,cpu,cuda}"), std::string::npos) << sub << help;
    if (std::string(sub) != "kernel") {
      EXPECT_NE(help.find("--seed UINT:in [0, 2^64 - 1]"), std::string::npos) << sub << help;
      EXPECT_NE(help.find("--preset TEXT:{tiny,llama-1b,llama-8b}"), std::string::npos)
          << sub << help;
    }
  }
  for (const char* sub : {"generate", "run"})
    EXPECT_NE(day18(std::string(sub) + " --help").out.find("--block-size INT:{8,16,32}"),
              std::string::npos)
        << sub;
}

TEST(CliConventions, UnknownTourOpIsRejectedListingTheValidOnes) {
  // Before: an empty table and exit 0.
  expect_refused("tour --kernels --device cpu --ops bogus",
                 {"--ops", "bogus", "rms_norm", "sample"});
  expect_refused("tour --device cpu --ops rms_norm,bogus", {"bogus"});
}

TEST(CliConventions, RunRejectsPresetWithModelLikeGenerate) {
  // Before: run ignored --preset when --model was given.
  expect_refused("run --preset tiny --model /nonexistent --device cpu", {"--model", "--preset"});
  expect_refused("generate --preset tiny --model /nonexistent --prompt-ids 1",
                 {"--model", "--preset"});
}

// ---- crashes and hangs -----------------------------------------------------------------------

TEST(CliConventions, SourceLocationsOnlyWithVerbose) {
  // Before: every argument error ended in " [/work/main/engine/cli/generate_cmd.cpp:72]".
  const std::regex location(R"([A-Za-z0-9_./+-]+\.(cpp|cu|h):[0-9]+)");
  const Result plain = day18("generate --model /nonexistent --prompt-ids 1,2");
  EXPECT_EQ(plain.rc, 2) << plain.out;
  EXPECT_NE(plain.out.find("--model: '/nonexistent'"), std::string::npos) << plain.out;
  EXPECT_FALSE(std::regex_search(plain.out, location)) << plain.out;
  const Result verbose = day18("--verbose generate --model /nonexistent --prompt-ids 1,2");
  EXPECT_EQ(verbose.rc, 2) << verbose.out;
  EXPECT_TRUE(std::regex_search(verbose.out, location)) << verbose.out;
}

TEST(CliConventions, TooFewKvBlocksIsSaidInTheFlagsNames) {
  // Before: "RuntimeLimits: kv.num_blocks = 1 cannot hold even one sequence of max_model_len".
  expect_refused("run --preset tiny --device cpu --requests 2 --num-gpu-blocks 1",
                 {"--num-gpu-blocks 1", "--block-size 16", "--max-model-len"});
  const Result r = day18("run --preset tiny --device cpu --requests 2 --num-gpu-blocks 1");
  EXPECT_EQ(r.out.find("RuntimeLimits"), std::string::npos) << r.out;
}

TEST(PythonScripts, BadInputsGiveOneLineErrors) {
  // Before: plot_benchmarks.py on a missing file and bench_decode.py --plot-only on a malformed
  // one ended in a traceback; plot_bandwidth.py on a JSON array too.
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = DAY18_SOURCE_DIR;
  const std::string venv = src + "/.venv/bin/python";
  const std::string py = fs::exists(venv) ? venv : "python3";
  const Result r = shell(py + " " + src + "/tests/scripts/test_script_errors.py", 600);
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(DocsCheck, EveryQuotedCommandAndFlagExistsAndTablesAreWhole) {
  // Before: docs/ops.md's tables broke on "gate | up"; docs quoted `scripts/lab --build ...`,
  // which scripts/lab does not take. scripts/check_docs.py runs every quoted command's --help.
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = DAY18_SOURCE_DIR;
  const Result r =
      shell("python3 " + src + "/scripts/check_docs.py --day18 " + day18_binary(), 300);
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(CliBadInput, BlockSizeZeroIsRefusedNotADivisionByZero) {
  // Before: SIGFPE in generate and run.
  expect_refused(kTinyRun + "--block-size 0", {"--block-size", "0", "8,16,32"});
  expect_refused("generate --preset tiny --prompt-ids 1,2 --block-size 0", {"--block-size", "0"});
  expect_refused("generate --preset tiny --prompt-ids 1,2 --block-size 12", {"--block-size", "12"});
}

TEST(CliBadInput, AbsurdSizesAreRefusedAtOnce) {
  // Before: `run --requests 1000000000` hung generating a billion prompts.
  expect_refused("run --preset tiny --device cpu --requests 1000000000",
                 {"--requests", "1000000000"});
  expect_refused("run --preset tiny --device cpu --requests 1000000 --prompt-len 2000",
                 {"--requests", "prompt tokens"});
  expect_refused("generate --preset tiny --prompt-ids 1 --max-tokens 100000",
                 {"--max-tokens", "100000", "context"});
}

TEST(CliBadInput, AModelThatDoesNotFitIsRefusedWithTheNumbers) {
  // Before: the OOM killer, a minute later. 10^8 KV blocks of tiny are 3.2 TB.
  expect_refused("run --preset tiny --device cpu --requests 1 --num-gpu-blocks 100000000",
                 {"does not fit in host memory", "KV cache 3276.8 GB", "is available"});
}

// ---- silent wrong results --------------------------------------------------------------------

TEST(CliBadInput, JsonInAMissingFolderFailsNamingTheFlag) {
  // Before: "wrote PATH", exit 0, no file.
  const fs::path d = fresh_dir("json");
  const std::string path = (d / "missing" / "out.json").string();
  const Result r = day18(kTinyRun + "--json " + path);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("--json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("wrote"), std::string::npos) << r.out;
}

TEST(CliBadInput, JsonIsWrittenWholeAndAPreExistingTmpIsKept) {
  // Before: <out>.tmp (of safetensors outputs) was overwritten and renamed away.
  const fs::path d = fresh_dir("json_ok");
  std::ofstream(d / "out.json.tmp") << "mine";
  const Result r = day18(kTinyRun + "--json " + (d / "out.json").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(slurp(d / "out.json"))["requests"], 2);
  EXPECT_EQ(slurp(d / "out.json.tmp"), "mine");
}

TEST(CliBadInput, TokenIdsAreParsedStrictly) {
  // Before: "5x" was read as 5, "abc" dropped, 4294967297 wrapped to 1.
  expect_refused("generate --preset tiny --prompt-ids 1,5x", {"--prompt-ids", "'5x'"});
  expect_refused("generate --preset tiny --prompt-ids 4294967297", {"--prompt-ids", "4294967297"});
  const fs::path d = fresh_dir("prompts");
  for (const char* bad : {"1 2 abc", "3,5x", "4294967297", "-1"}) {
    std::ofstream(d / "p.txt") << "1 2 3\n" << bad << "\n";
    expect_refused("run --preset tiny --device cpu --output-len 2 --quiet --prompt-file " +
                       (d / "p.txt").string(),
                   {"--prompt-file", "line 2"});
  }
}

TEST(CliBadInput, LengthsAndCountsAreParsedStrictly) {
  const std::string run = "run --preset tiny --device cpu --requests 2 --quiet ";
  expect_refused(run + "--prompt-len 5x", {"--prompt-len", "'5x'"});
  expect_refused(run + "--output-len 4294967297", {"--output-len", "4294967297"});
  expect_refused(run + "--output-len 3:", {"--output-len", "'3:'"});
  expect_refused(kTinyRun + "--top-k 5x", {"--top-k", "'5x'"});
  expect_refused(kTinyRun + "--seed -1", {"--seed", "-1"});
  expect_refused(kTinyRun + "--seed 18446744073709551616", {"--seed", "18446744073709551616"});
  expect_refused("generate --preset tiny --prompt-ids 1 --max-tokens 4294967297",
                 {"--max-tokens", "4294967297"});
}

TEST(CliBadInput, NegativeBlockCountsAndUtilizationAreRefused) {
  // Before: both silently ignored (<= 0 meant "derive").
  expect_refused(kTinyRun + "--num-gpu-blocks -1", {"--num-gpu-blocks", "-1"});
  expect_refused(kTinyRun + "--gpu-memory-utilization -0.5", {"--gpu-memory-utilization", "-0.5"});
  expect_refused(kTinyRun + "--gpu-memory-utilization 1.5", {"--gpu-memory-utilization", "1.5"});
  expect_refused(kTinyRun + "--num-cpu-blocks -3", {"--num-cpu-blocks", "-3"});
}

TEST(CliBadInput, AMisspeltKernelAttributeIsRefusedNamingTheKnownOnes) {
  // Before: `--attr sacle=0.5` ran with the default scale, exit 0.
  const std::string in =
      std::string(DAY18_SOURCE_DIR) + "/reference/outputs/rms_norm_basic_fp32.safetensors";
  const fs::path d = fresh_dir("kernel");
  const std::string out = (d / "o.safetensors").string();
  expect_refused("kernel rms_norm --in " + in + " --out " + out + " --attr epss=1e-5",
                 {"--attr", "epss", "known: eps"});
  EXPECT_FALSE(fs::exists(out));
  const Result ok = day18("kernel rms_norm --in " + in + " --out " + out + " --attr eps=1e-5");
  EXPECT_EQ(ok.rc, 0) << ok.out;
  expect_refused("kernel rms_norm --in " + in + " --out " + (d / "no" / "o.st").string(),
                 {"--out", "does not exist"});
}

TEST(CliBadInput, NanWeightsStopGenerateWithAClearError) {
  // Before: a NaN model gave token 0 forever (greedy) or crashed in top-p (engine).
  const fs::path d = fresh_dir("nan_model");
  std::ofstream(d / "config.json") << R"({"model_type": "llama", "hidden_act": "silu",
    "hidden_size": 128, "intermediate_size": 192, "num_attention_heads": 2,
    "num_key_value_heads": 1, "head_dim": 64, "num_hidden_layers": 1, "vocab_size": 97,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
    "tie_word_embeddings": false})";
  const day18::ModelConfig c = day18::ModelConfig::from_json_file((d / "config.json").string());
  day18::Rng rng(1);
  std::map<std::string, day18::OwnedTensor> w;
  for (auto& [name, shape] : day18::hf_tensor_shapes(c)) {
    day18::OwnedTensor t = rng.normal_tensor(shape, day18::DType::f32, 0.0, 0.05);
    if (name == "model.norm.weight")
      for (int64_t i = 0; i < t.numel(); ++i)
        t.ptr<float>()[i] = std::numeric_limits<float>::quiet_NaN();
    w.emplace(name, std::move(t));
  }
  std::map<std::string, day18::Tensor> views;
  for (auto& [k, v] : w) views.emplace(k, v.view());
  day18::write_safetensors((d / "model.safetensors").string(), views);
  expect_refused("generate --model " + d.string() + " --prompt-ids 1,2,3 --device cpu",
                 {"step 0", "not finite"});
  std::ofstream(d / "p.txt") << "1 2 3\n4 5\n";
  expect_refused("run --model " + d.string() +
                     " --device cpu --output-len 3 --quiet "
                     "--temperature 1 --top-p 0.5 --prompt-file " +
                     (d / "p.txt").string(),
                 {"NaN or +inf", "not finite"});
}

// ---- scripts/lab -----------------------------------------------------------------------------

TEST(LabScript, TourPassesAModelPresetToTheEngine) {
  // Before: `scripts/lab tour --preset llama-1b` died "unknown preset 'llama-1b' (cpu or gpu)":
  // the runner took --preset (its build preset) for itself.
  const std::string lab = std::string(DAY18_SOURCE_DIR) + "/scripts/lab";
  const std::string probe =
      "bash -c 'source " + lab +
      "; DAY18_NO_GPU=1 PASS_MODEL_PRESETS=1 parse_build_opts "
      "--preset llama-1b --kernels; echo \"build=$PRESET\"; printf \"[%s]\" \"${REST[@]}\"'";
  const Result r = shell(probe);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("build=cpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[--preset][llama-1b][--kernels]"), std::string::npos) << r.out;
  // The build presets keep their meaning, with or without the pass-through.
  const Result b =
      shell("bash -c 'source " + lab +
            "; PASS_MODEL_PRESETS=1 parse_build_opts --preset gpu; echo \"build=$PRESET "
            "rest=${#REST[@]}\"'");
  EXPECT_NE(b.out.find("build=gpu rest=0"), std::string::npos) << b.out;
  // And cmd_tour is the one that passes model presets through.
  EXPECT_NE(slurp(lab).find("PASS_MODEL_PRESETS=1 parse_build_opts \"$@\""), std::string::npos);
}

}  // namespace
