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
void expect_refused(const std::string& args, std::initializer_list<std::string> parts) {
  const Result r = day18(args);
  EXPECT_EQ(r.rc, 2) << "day18 " << args << "\n" << r.out;
  for (const std::string& p : parts)
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
  // Before: `--ops rms_norm,linear` was refused as one unknown op "rms_norm,linear" although every
  // other list flag (--kinds, --presets, --batches) takes commas.
  const Result two = day18("tour --kernels --device cpu --ops rms_norm,silu_and_mul");
  EXPECT_EQ(two.rc, 0) << two.out;
  EXPECT_NE(two.out.find("silu_and_mul"), std::string::npos) << two.out;
  EXPECT_NE(two.out.find("rms_norm"), std::string::npos) << two.out;
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

TEST(CliBadInput, JsonOfTheWrongShapeIsNamedWithItsFileAndKey) {
  // Before: a wrong-typed field of a trace ("ph": 5) ended in "a JSON input has the wrong
  // structure ([json.exception.type_error.302] ...)", exit 3, naming neither file nor key;
  // plot_roofline.py, plot_timeline.py, plot_bandwidth.py, plot_lab.py and bench_decode.py
  // --plot-only died in a TypeError traceback on a string where a number belongs.
  if (shell("python3 --version").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string src = DAY18_SOURCE_DIR;
  const std::string venv = src + "/.venv/bin/python";
  const std::string py = fs::exists(venv) ? venv : "python3";
  const Result r =
      shell(py + " " + src + "/tests/scripts/test_json_shapes.py --day18 " + day18_binary(), 900);
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

// ---- paths: folders, empty values, outputs checked first, one file per flag -----------------

const std::string kSrc = DAY18_SOURCE_DIR;
std::string fixture(const std::string& rel) {
  return kSrc + "/tests/engine/" + rel;
}
const std::string kTraceArgs = "--peak-bw 4000 --preset llama-1b --batch 1 --context 512";

TEST(CliBadInput, AFolderGivenAsAnInputFileIsNamedAsAFolder) {
  // Before: --roof, --trace, --probe and tune show on a folder died "day18: unexpected error:
  // basic_filebuf::underflow error reading the file: Is a directory" (exit 3, no flag named);
  // --prompt-file said "no token ids found", kernel --in "0 bytes", --ncu "the file is empty",
  // --timeline-png "no such file".
  const fs::path d = fresh_dir("folder_inputs");
  const std::string dir = (d / "adir").string();
  fs::create_directories(dir);
  const std::string folder = "it is a folder, not a file";
  expect_refused("classify --trace " + fixture("profiling/data/decode_trace_handmade.json") +
                     " --roof " + dir + " --preset llama-1b --batch 1 --context 512",
                 {"--roof " + dir, folder});
  expect_refused("classify --trace " + dir + " " + kTraceArgs, {"--trace " + dir, folder});
  expect_refused("classify --ncu " + dir, {"--ncu " + dir, folder});
  expect_refused("report --out " + (d / "r").string() + " --probe " + dir,
                 {"--probe " + dir, folder});
  expect_refused("report --out " + (d / "r").string() + " --timeline-png " + dir,
                 {"--timeline-png " + dir, folder});
  expect_refused("tune show " + dir, {"tune show", dir, folder});
  expect_refused("tune block-size --roof " + dir, {"--roof " + dir, folder});
  expect_refused("run --preset tiny --device cpu --quiet --prompt-file " + dir,
                 {"--prompt-file " + dir, folder});
  expect_refused("kernel rms_norm --in " + dir + " --out " + (d / "o.safetensors").string(),
                 {dir, folder});
  EXPECT_FALSE(fs::exists(d / "r")) << "report made --out before refusing an input";
}

TEST(CliBadInput, AnEmptyValueIsRefusedNotTakenAsNotGiven) {
  // Before: `--json ''` ran and wrote nothing (exit 0), `report --probe ''` wrote a report
  // without the probe, `--prompt-file ''` ran random prompts, `--trace-steps ''` took every step:
  // an unset shell variable ($OUT) silently meant "not given".
  const fs::path d = fresh_dir("empty_values");
  for (const std::string& args :
       {kTinyRun + "--json ''", kTinyRun + "--prompt-file ''",
        "report --probe '' --out " + (d / "r").string(),
        "classify --trace " + fixture("profiling/data/decode_trace_handmade.json") + " " +
            kTraceArgs + " --trace-steps ''",
        std::string("generate --preset tiny --prompt-ids 1 --dump-logits ''"),
        std::string("tune show ''"), std::string("kernel rms_norm --in '' --out x")}) {
    const Result r = day18(args);
    EXPECT_EQ(r.rc, 2) << "day18 " << args << "\n" << r.out;
    EXPECT_NE(r.out.find("is empty ('')"), std::string::npos) << "day18 " << args << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(d / "r"));
  expect_refused(kTinyRun + "--json ''",
                 {"--json: the value is empty (''): give one, or leave --json out"});
  expect_refused("tune show ''", {"show: the file argument is empty ('')"});
}

TEST(CliBadInput, OutputPathsAreCheckedBeforeTheWorkNotAfterIt) {
  // Before: classify printed its whole table and then failed on --json; run, generate and
  // trace ran the whole workload before finding that --json/--dump-logits/--out is a folder;
  // tune show printed its tables before refusing --plot.
  const fs::path d = fresh_dir("outputs_first");
  const std::string dir = (d / "adir").string();
  fs::create_directories(dir);
  const std::string trace = fixture("profiling/data/decode_trace_handmade.json");
  for (const std::string& json : {dir, (d / "no" / "a.json").string()}) {
    const Result r = day18("classify --trace " + trace + " " + kTraceArgs + " --json " + json);
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_NE(r.out.find("--json: cannot write '" + json + "'"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("Kernel profile"), std::string::npos) << "the table came first:\n"
                                                               << r.out;
  }
  struct Case {
    std::string args, said, not_before;
  };
  const Case cases[] = {
      {kTinyRun + "--json " + dir, "--json: cannot write '" + dir + "': it is a folder",
       "tokens/s"},
      {"generate --preset tiny --prompt-ids 1,2 --dump-logits " + dir,
       "--dump-logits: cannot write '" + dir + "': it is a folder", "tokens:"},
      {"trace --device cpu --preset tiny --requests 2 --output-len 4 --out " + dir,
       "--out: cannot write '" + dir + "': it is a folder", "trace:"},
      {"tune show " + fixture("report/data/block_size.json") + " --plot " + (d / "no").string(),
       "--plot", "(b = baseline"},
  };
  for (const Case& c : cases) {
    const Result r = day18(c.args);
    EXPECT_EQ(r.rc, 2) << "day18 " << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.said), std::string::npos) << "day18 " << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.find(c.not_before), std::string::npos)
        << "day18 " << c.args << ": worked before refusing:\n"
        << r.out;
  }
}

TEST(CliBadInput, TwoFlagsNamingOneFileAreRefusedAndNothingIsOverwritten) {
  // Before: `kernel --in x --out x` replaced the inputs with the outputs; `analyze --out a.md
  // --json a.md` left the JSON where the page should be; `--roofline a.md` the PNG; `trace
  // --out t.json --records t.json` the records where the trace should be. Each exit 0 or 2
  // after the damage.
  const fs::path d = fresh_dir("same_file");
  const std::string in = (d / "in.safetensors").string();
  fs::copy_file(kSrc + "/reference/outputs/rms_norm_basic_fp32.safetensors", in);
  const std::string before = slurp(in);
  expect_refused("kernel rms_norm --in " + in + " --out " + in, {"--out", "is also the --in file"});
  // The same file through another spelling of its path.
  expect_refused("kernel rms_norm --in " + in + " --out " + (d / "." / "in.safetensors").string(),
                 {"--out", "is also the --in file"});
  EXPECT_EQ(slurp(in), before) << "the input was overwritten";
  const std::string ncu = fixture("profiling/data/details_page.csv");
  const std::string page = (d / "a.md").string();
  expect_refused("analyze --ncu " + ncu + " --out " + page + " --json " + page,
                 {"--json", "is also the --out file"});
  expect_refused("analyze --ncu " + ncu + " --out " + page + " --roofline " + page,
                 {"--roofline", "is also the --out file"});
  expect_refused("analyze --ncu " + ncu + " --out " + ncu, {"--out", "is also the --ncu file"});
  EXPECT_FALSE(fs::exists(page));
  const std::string t = (d / "t.json").string();
  expect_refused(
      "trace --device cpu --preset tiny --requests 2 --output-len 4 --out " + t + " --records " + t,
      {"--records", "is also the --out file"});
  expect_refused(
      "trace --device cpu --preset tiny --requests 2 --output-len 4 --out " + t + " --metrics " + t,
      {"--metrics", "is also the --out file"});
  EXPECT_FALSE(fs::exists(t));
}

TEST(CliBadInput, ReportFiguresOfOneNameAreRefusedBeforeOutIsMade) {
  // Before: --timeline-png a/fig.png --roofline-png b/fig.png copied both to OUT/fig.png (the
  // second over the first) and linked both; a missing --timeline-png was found after --out was
  // made.
  const fs::path d = fresh_dir("report_names");
  fs::create_directories(d / "a");
  fs::create_directories(d / "b");
  std::ofstream(d / "a" / "fig.png") << "a";
  std::ofstream(d / "b" / "fig.png") << "b";
  const std::string out = (d / "r").string();
  expect_refused("report --no-plots --out " + out + " --timeline-png " +
                     (d / "a" / "fig.png").string() + " --roofline-png " +
                     (d / "b" / "fig.png").string(),
                 {"--roofline-png and --timeline-png would both be", "fig.png"});
  std::ofstream(d / "a" / "block_size.png") << "a";
  expect_refused("report --out " + out + " --tune " + fixture("report/data/block_size.json") +
                     " --timeline-png " + (d / "a" / "block_size.png").string(),
                 {"block_size.png", "--timeline-png"});
  expect_refused("report --out " + out + " --timeline-png " + (d / "missing.png").string(),
                 {"--timeline-png", "no such file"});
  EXPECT_FALSE(fs::exists(out)) << "report made --out before refusing";
}

TEST(CliBadInput, ARepeatedAttributeOrModelIsRefused) {
  // Before: `--attr eps=1e-5 --attr eps=1e-6` ran with the last one, without a word; `tune
  // batch-size --presets llama-1b,llama-1b` would measure llama-1b twice (--batches 8,8 was
  // already refused).
  expect_refused("tune batch-size --presets llama-1b,llama-1b",
                 {"--presets", "llama-1b is given twice"});
  const fs::path d = fresh_dir("attr_twice");
  expect_refused("kernel rms_norm --in " + kSrc +
                     "/reference/outputs/rms_norm_basic_fp32.safetensors --out " +
                     (d / "o.safetensors").string() + " --attr eps=1e-5 --attr eps=1e-6",
                 {"--attr eps", "given twice"});
  EXPECT_FALSE(fs::exists(d / "o.safetensors"));
}

TEST(CliBadInput, EngineLimitsAreSaidInTheFlagsNames) {
  // Before: "RuntimeLimits: max_num_seqs must be in [1, max_num_tokens = 1], got 64" and
  // "RuntimeLimits: kv.num_blocks = 4294967297 too large for int32 block ids".
  expect_refused(kTinyRun + "--max-num-batched-tokens 1",
                 {"--max-num-seqs 64", "--max-num-batched-tokens 1"});
  expect_refused(kTinyRun + "--max-num-seqs 4294967297",
                 {"--max-num-seqs 4294967297", "--max-num-batched-tokens 1024"});
  expect_refused(kTinyRun + "--num-gpu-blocks 4294967297", {"--num-gpu-blocks 4294967297", "2^31"});
  for (const char* args : {"--max-num-batched-tokens 1", "--num-gpu-blocks 4294967297"})
    EXPECT_EQ(day18(kTinyRun + args).out.find("RuntimeLimits"), std::string::npos) << args;
}

TEST(CliBadInput, AValueThatWouldBeIgnoredIsRefused) {
  // Before: --max-model-len 4294967297 ran with tiny's 2048 (exit 0); --prompt-len and
  // --requests beside --prompt-file were dropped; --peak-bw nan was taken as "no P given" (and
  // the error then asked for --peak-bw); --sm-count 0.5 was accepted.
  expect_refused(kTinyRun + "--max-model-len 4294967297",
                 {"--max-model-len 4294967297", "max_position_embeddings 2048"});
  const fs::path d = fresh_dir("ignored");
  std::ofstream(d / "p.txt") << "1 2 3\n";
  const std::string file = " --prompt-file " + (d / "p.txt").string();
  expect_refused("run --preset tiny --device cpu --quiet --prompt-len 4" + file,
                 {"--prompt-file", "--prompt-len would be ignored"});
  expect_refused("run --preset tiny --device cpu --quiet --requests 4" + file,
                 {"--prompt-file", "--requests would be ignored"});
  EXPECT_EQ(day18("run --preset tiny --device cpu --quiet --output-len 2" + file).rc, 0);
  const std::string trace = fixture("profiling/data/decode_trace_handmade.json");
  expect_refused("classify --trace " + trace +
                     " --preset llama-1b --batch 1 --context 512 "
                     "--peak-bw nan",
                 {"--peak-bw", "nan"});
  expect_refused("classify --trace " + trace + " " + kTraceArgs + " --sm-count 0.5",
                 {"--sm-count", "0.5"});
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

TEST(LabScript, BadArgumentsAreRefusedBeforeAnyBuild) {
  // Before: `scripts/lab check 99` (and run, plot, mutate) built the whole tree, minutes on a
  // fresh clone, before saying "no lab '99'"; `--arch abc` went into cmake and was written into
  // the build folder's cache (every later build of it failed); `--arch` with no value died
  // "$2: unbound variable"; `diff 02 99` printed nothing and exited 0.
  const std::string lab = "env DAY18_NO_GPU=1 " + kSrc + "/scripts/lab";
  for (const char* args : {"check 99", "run abc -- tour", "plot 99", "mutate 99", "solution ''"}) {
    const Result r = shell(lab + " " + args, 60);
    EXPECT_EQ(r.rc, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("no lab '"), std::string::npos) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("labs: 01 02"), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(r.out.find("building"), std::string::npos) << args << ": it built first\n" << r.out;
  }
  for (const char* args : {"build --arch abc", "build --arch=9x", "check 02 --arch sm_90"}) {
    const Result r = shell(lab + " " + args, 60);
    EXPECT_EQ(r.rc, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("is not a compute capability"), std::string::npos) << args << "\n"
                                                                            << r.out;
  }
  for (const char* args : {"build --arch", "build --arch ''", "check 02 --arch"}) {
    const Result r = shell(lab + " " + args, 60);
    EXPECT_EQ(r.rc, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("--arch needs a value"), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(r.out.find("unbound variable"), std::string::npos) << args << "\n" << r.out;
  }
  const Result d = shell(lab + " diff 02 99", 60);
  EXPECT_EQ(d.rc, 1) << d.out;
  EXPECT_NE(d.out.find("lab 02 has no task '99' (tasks: cpu_reference"), std::string::npos)
      << d.out;
}

}  // namespace
