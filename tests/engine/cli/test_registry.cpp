// The op registry's mechanics, which `day18 kernel`, `day18 tour` and the golden test rely on:
// lookups that list the known ops, inputs and attributes checked before an op runs, outputs
// checked after, and comparisons that name the output that differs. Tested on tiny ops
// registered here in a local OpRegistry, so these tests do not depend on any kernel family.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "engine/ops/registry.h"
#include "tests/support/throws.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

// y = alpha * x (f32, cpu only): an op with one input, one output and one required attribute.
OpDef scale_op() {
  OpDef op;
  op.name = "scale";
  op.family = "test";
  op.summary = "y = alpha * x";
  op.inputs = {{"x", "[n] f32"}};
  op.outputs = {{"y", "[n] f32"}};
  op.attrs = {{"alpha", "the factor", ""}, {"unused", "an optional attribute", "0"}};
  op.run = [](OpContext& ctx) {
    const Tensor& x = ctx.io.get("x");
    expect_dtype(x, "x", DType::f32);
    DAY18_REQUIRE(ctx.device() == Device::cpu, "scale: cpu only in this test");
    const Tensor& y = ctx.output("y", x.sizes(), DType::f32);
    const double a = ctx.attrs.real("alpha");
    for (int64_t i = 0; i < x.numel(); ++i) host_set(y, i, a * host_get(x, i));
  };
  op.make_case = [](Rng& rng, DType dt, TensorStore& io, Attrs& attrs) {
    io.put_owned("x", rng.normal_tensor({16}, dt, 0, 1));
    attrs.set("alpha", 2.5);
  };
  op.bytes_moved = [](const TensorStore& io, const Attrs&) {
    return 2.0 * static_cast<double>(io.get("x").nbytes());
  };
  op.tour_dtypes = {DType::f32};
  return op;
}

// x += 1 in place: the output name is also an input name.
OpDef add_one_op() {
  OpDef op;
  op.name = "add_one";
  op.family = "test";
  op.summary = "x += 1, in place";
  op.inputs = {{"x", "[n] f32"}};
  op.outputs = {{"x", "[n] f32"}};
  op.run = [](OpContext& ctx) {
    const Tensor& x = ctx.io.get("x");
    for (int64_t i = 0; i < x.numel(); ++i) host_set(x, i, host_get(x, i) + 1);
  };
  return op;
}

// Documents an output it never writes.
OpDef forgetful_op() {
  OpDef op;
  op.name = "forgetful";
  op.family = "test";
  op.summary = "forgets to write its output";
  op.outputs = {{"out", "[1] f32"}};
  op.run = [](OpContext&) {};
  return op;
}

Attrs make_attrs(std::map<std::string, std::string> kv) {
  return Attrs(std::move(kv));
}

OpRegistry test_registry() {
  OpRegistry r;
  r.add(scale_op());
  r.add(add_one_op());
  r.add(forgetful_op());
  return r;
}

TEST(OpRegistry, FindReturnsTheRegisteredOp) {
  OpRegistry r = test_registry();
  EXPECT_EQ(r.all().size(), 3u);
  EXPECT_EQ(r.find("scale").summary, "y = alpha * x");
  EXPECT_EQ(r.all()[1].name, "add_one");  // registration order is kept (tour and docs order)
}

TEST(OpRegistry, UnknownOpListsTheKnownOnes) {
  OpRegistry r = test_registry();
  EXPECT_THROW_WITH(r.find("rms_nrom"), InvalidArgument, "unknown op 'rms_nrom'",
                    "known: scale, add_one, forgetful");
}

TEST(OpRegistry, RegisteringANameTwiceIsAnError) {
  OpRegistry r = test_registry();
  EXPECT_THROW_WITH(r.add(scale_op()), InvalidArgument, "op 'scale' registered twice");
}

TEST(RunOp, RunsTheOpOnTheCpuBackend) {
  OpRegistry r = test_registry();
  TensorStore io(Device::cpu);
  Rng rng(1);
  io.put_owned("x", rng.normal_tensor({5}, DType::f32, 0, 1));
  run_op(r.find("scale"), io, make_attrs({{"alpha", "-2"}}));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(host_get(io.get("y"), i), -2 * host_get(io.get("x"), i));
}

TEST(RunOp, MissingInputIsNamedWithItsLayout) {
  OpRegistry r = test_registry();
  TensorStore io(Device::cpu);
  io.put_owned("z", OwnedTensor({5}, DType::f32, Storage::host));
  EXPECT_THROW_WITH(run_op(r.find("scale"), io, make_attrs({{"alpha", "1"}})), InvalidArgument,
                    "scale: missing input tensor 'x' [n] f32");
}

TEST(RunOp, MissingRequiredAttributeIsNamedWithItsMeaning) {
  OpRegistry r = test_registry();
  TensorStore io(Device::cpu);
  io.put_owned("x", OwnedTensor({5}, DType::f32, Storage::host));
  EXPECT_THROW_WITH(run_op(r.find("scale"), io, Attrs()), InvalidArgument,
                    "scale: missing attribute 'alpha' (the factor)");
}

TEST(RunOp, OptionalAttributesMayBeOmitted) {
  OpRegistry r = test_registry();
  TensorStore io(Device::cpu);
  io.put_owned("x", OwnedTensor({2}, DType::f32, Storage::host));
  EXPECT_NO_THROW(run_op(r.find("scale"), io, make_attrs({{"alpha", "1"}})));
}

TEST(RunOp, AnOutputTheOpDidNotProduceIsNamed) {
  OpRegistry r = test_registry();
  TensorStore io(Device::cpu);
  EXPECT_THROW_WITH(run_op(r.find("forgetful"), io, Attrs()), InvalidArgument,
                    "forgetful: did not produce output 'out'");
}

TEST(RunOp, InPlaceOpUpdatesItsInput) {
  OpRegistry r = test_registry();
  TensorStore io(Device::cpu);
  OwnedTensor x({3}, DType::f32, Storage::host);
  for (int i = 0; i < 3; ++i) host_set(x, i, i);
  io.put_owned("x", std::move(x));
  run_op(r.find("add_one"), io, Attrs());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(host_get(io.get("x"), i), i + 1);
}

TEST(RunOp, ErrorsFromTheOpItselfPassThrough) {
  OpRegistry r = test_registry();
  TensorStore io(Device::cpu);
  io.put_owned("x", OwnedTensor({2}, DType::f16, Storage::host));
  EXPECT_THROW_WITH(run_op(r.find("scale"), io, make_attrs({{"alpha", "1"}})), InvalidArgument,
                    "x: expected dtype float32, got float16");
}

TEST(CompareOutputs, NamesTheOutputThatDiffers) {
  OpRegistry r = test_registry();
  const OpDef& op = r.find("scale");
  Rng rng(2);
  TensorStore a(Device::cpu), b(Device::cpu);
  a.put_owned("y", rng.normal_tensor({8}, DType::f32, 0, 1));
  b.put("y", a.get("y"));
  EXPECT_TRUE(compare_outputs(op, a, b).ok);
  host_set(b.get("y"), 3, host_get(b.get("y"), 3) + 1);
  CompareResult res = compare_outputs(op, a, b);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.mismatches, 1);
  EXPECT_NE(res.report.find("y: 1 of 8 elements differ"), std::string::npos) << res.report;
  EXPECT_NE(res.report.find("at [3]"), std::string::npos) << res.report;
}

TEST(CompareOutputs, ToleranceScaleWidensTheTolerance) {
  OpDef op = scale_op();
  TensorStore a(Device::cpu), b(Device::cpu);
  const Tensor& ya = a.emplace("y", {1}, DType::f32);
  const Tensor& yb = b.emplace("y", {1}, DType::f32);
  host_set(ya, 0, 1.0);
  host_set(yb, 0, 1.0005);  // |diff| 5e-4: beyond fp32's default, within 10x of it
  EXPECT_FALSE(compare_outputs(op, a, b).ok);
  op.tolerance_scale = 10;
  EXPECT_TRUE(compare_outputs(op, a, b).ok);
  op.tolerance_scale = 1;
  EXPECT_TRUE(compare_outputs(op, a, b, /*extra_scale=*/10).ok);
}

TEST(TensorStore, MissingTensorListsWhatIsThere) {
  TensorStore io(Device::cpu);
  EXPECT_THROW_WITH(io.get("query"), InvalidArgument, "missing tensor 'query' (have: none)");
  io.emplace("key", {2}, DType::f16);
  io.emplace("value", {2}, DType::f16);
  EXPECT_THROW_WITH(io.get("query"), InvalidArgument, "(have: key, value)");
  EXPECT_EQ(io.names(), (std::vector<std::string>{"key", "value"}));
}

TEST(TensorStore, ToMakesADeepCopy) {
  TensorStore io(Device::cpu);
  const Tensor& x = io.emplace("x", {4}, DType::f32);
  for (int i = 0; i < 4; ++i) host_set(x, i, i);
  TensorStore copy = io.to(Device::cpu);
  host_set(x, 0, 100);
  EXPECT_EQ(host_get(copy.get("x"), 0), 0);
  EXPECT_NE(copy.get("x").data(), x.data());
}

OwnedTensor f32s(std::initializer_list<float> v) {
  OwnedTensor t({static_cast<int64_t>(v.size())}, DType::f32, Storage::host);
  std::copy(v.begin(), v.end(), t.ptr<float>());
  return t;
}

// An op that "forgets" its last element: the store's poison is what reads back there.
OpDef half_written_op() {
  OpDef op = scale_op();
  op.name = "half_written";
  op.run = [](OpContext& ctx) {
    const Tensor& x = ctx.io.get("x");
    const Tensor& y = ctx.output("y", x.sizes(), DType::f32);
    for (int64_t i = 0; i + 1 < x.numel(); ++i) host_set(y, i, host_get(x, i));
  };
  return op;
}

TEST(TensorStore, ANewOutputIsPoisonedSoAnUnwrittenElementReadsBackAsNan) {
  TensorStore io(Device::cpu);
  const Tensor& t = io.emplace("t", {3}, DType::f32);
  const Tensor& ids = io.emplace("ids", {2}, DType::i64);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isnan(host_get(t, i))) << i;
  EXPECT_EQ(ids.ptr<int64_t>()[1], -1);
  OpDef op = half_written_op();
  TensorStore run(Device::cpu);
  run.put_owned("x", f32s({1, 2, 3, 4}));
  run_op(op, run, make_attrs({{"alpha", "1"}}));
  EXPECT_EQ(host_get(run.get("y"), 2), 3);
  EXPECT_TRUE(std::isnan(host_get(run.get("y"), 3))) << "the element the op did not write";
  // Scratch too.
  Attrs none;
  OpContext ctx{run, none, nullptr};
  OwnedTensor s = ctx.scratch({2}, DType::f16);
  EXPECT_TRUE(std::isnan(host_get(s, 0)) && std::isnan(host_get(s, 1)));
}

TEST(TensorStore, AReusedOutputKeepsItsContentsAndPutIsACopy) {
  TensorStore io(Device::cpu);
  const Tensor& t = io.emplace("t", {2}, DType::f32);
  host_set(t, 0, 7);
  const Tensor& again = io.emplace("t", {2}, DType::f32);
  EXPECT_EQ(again.data(), t.data());
  EXPECT_EQ(host_get(again, 0), 7) << "the tour's repeated runs reuse outputs as they are";
  const Tensor& bigger = io.emplace("t", {3}, DType::f32);
  EXPECT_TRUE(std::isnan(host_get(bigger, 0))) << "a new shape is a new, poisoned tensor";
  const Tensor& p = io.put("p", f32s({5, 6}));
  EXPECT_EQ(host_get(p, 0), 5);
  EXPECT_EQ(host_get(p, 1), 6);
}

TEST(TensorStore, GpuNewOutputIsPoisonedOnTheOpsStream) {
  DAY18_REQUIRE_GPU();
  TensorStore io(Device::cuda);
  Stream s;
  const Tensor& t = io.emplace("t", {1000}, DType::bf16, s);
  s.synchronize();
  OwnedTensor h = testing::to_host(t);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(std::isnan(host_get(h, i))) << i;
  const Tensor& u = io.emplace("u", {10}, DType::i32);  // no stream: finished on return
  OwnedTensor hu = testing::to_host(u);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(hu.ptr<int32_t>()[i], -1) << i;
}

TEST(TensorStore, PutOwnedRejectsTheWrongBackend) {
  TensorStore io(Device::cuda);
  EXPECT_THROW_WITH(io.put_owned("x", OwnedTensor({2}, DType::f32, Storage::host)), InvalidArgument,
                    "tensor 'x' is on cpu, store is on cuda");
}

TEST(Attrs, TypedGettersParseAndNameBadValues) {
  Attrs a({{"n", "16"}, {"eps", "1e-6"}, {"flag", "true"}, {"bad", "3.5"}});
  EXPECT_EQ(a.integer("n"), 16);
  EXPECT_DOUBLE_EQ(a.real("eps"), 1e-6);
  EXPECT_TRUE(a.boolean("flag"));
  EXPECT_EQ(a.integer_or("missing", 7), 7);
  EXPECT_EQ(a.str_or("missing", "d"), "d");
  EXPECT_THROW_WITH(a.integer("bad"), InvalidArgument,
                    "attribute 'bad': expected an integer, got '3.5'");
  EXPECT_THROW_WITH(a.real("flag"), InvalidArgument,
                    "attribute 'flag': expected a number, got 'true'");
  EXPECT_THROW_WITH(a.boolean("n"), InvalidArgument, "attribute 'n': expected true/false");
  EXPECT_THROW_WITH(a.str("nope"), InvalidArgument, "missing attribute 'nope'");
}

TEST(Attrs, AnIntAttributeOutsideInt32IsRefusedNotWrapped) {
  // Before: paged_attention's max_context_len=4294967297 became 1 ("context_lens[0] = 37 exceeds
  // max_context_len = 1"), partition_size=4294967808 a silent 512.
  Attrs a({{"big", "4294967297"}, {"neg", "-2147483649"}, {"ok", "-2147483648"}});
  EXPECT_THROW_WITH(a.int32("big"), InvalidArgument, "attribute 'big'", "4294967297",
                    "does not fit a 32-bit int");
  EXPECT_THROW_WITH(a.int32("neg"), InvalidArgument, "attribute 'neg'");
  EXPECT_EQ(a.int32("ok"), -2147483647 - 1);
  EXPECT_EQ(a.int32_or("missing", 128), 128);
}

TEST(Attrs, DoublesRoundTripExactlyThroughText) {
  Attrs a;
  const double eps = 1.0 / 3.0 * 1e-5;
  a.set("eps", eps);
  EXPECT_EQ(a.real("eps"), eps);  // they travel as text in safetensors metadata
  a.set("n", int64_t{1} << 40);
  EXPECT_EQ(a.integer("n"), int64_t{1} << 40);
}

// Every op the engine registers is documented well enough for docs/ops.md, the tour and the
// golden test (vacuous until op families are registered).
TEST(EngineRegistry, EveryRegisteredOpIsWellFormed) {
  const OpRegistry& r = OpRegistry::instance();
  std::set<std::string> names;
  for (const OpDef& op : r.all()) {
    SCOPED_TRACE(op.name);
    EXPECT_TRUE(names.insert(op.name).second);
    EXPECT_FALSE(op.family.empty());
    EXPECT_FALSE(op.summary.empty());
    EXPECT_TRUE(static_cast<bool>(op.run));
    EXPECT_FALSE(op.outputs.empty());
    for (auto& t : op.inputs) EXPECT_FALSE(t.layout.empty()) << t.name;
    for (auto& t : op.outputs) EXPECT_FALSE(t.layout.empty()) << t.name;
    for (auto& a : op.attrs) EXPECT_FALSE(a.doc.empty()) << a.name;
    if (op.make_case) {
      EXPECT_TRUE(static_cast<bool>(op.bytes_moved)) << "the tour needs bytes_moved";
      EXPECT_FALSE(op.tour_dtypes.empty());
    }
    EXPECT_GE(op.tolerance_scale, 0) << "0 means bit-exact (copies)";
  }
}

// ---- the `day18` executable itself (built next to this test binary) ----

std::filesystem::path day18_binary() {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  return self.parent_path().parent_path() / "engine" / "day18";  // build/tests -> build/engine
}

struct Ran {
  int status = -1;
  std::string output;
};

Ran run_day18(const std::string& args) {
  Ran r;
  const std::string cmd = day18_binary().string() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

#define DAY18_NEED_BINARY()                                                        \
  do {                                                                             \
    if (!std::filesystem::exists(day18_binary()))                                  \
      GTEST_SKIP() << "day18 executable not built at " << day18_binary().string(); \
  } while (0)

TEST(Day18Kernel, ListMarkdownSucceeds) {
  DAY18_NEED_BINARY();
  Ran r = run_day18("kernel --list --markdown");
  EXPECT_EQ(r.status, 0) << r.output;
  for (const OpDef& op : OpRegistry::instance().all())
    EXPECT_NE(r.output.find("## `" + op.name + "`"), std::string::npos) << op.name;
}

TEST(Day18Kernel, UnknownOpFailsWithExitCode2AndTheKnownOps) {
  DAY18_NEED_BINARY();
  Ran r = run_day18("kernel no_such_op --in in.safetensors --out out.safetensors");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("day18: error: unknown op 'no_such_op' (known: "), std::string::npos)
      << r.output;
}

TEST(Day18Kernel, MissingArgumentsAreNamed) {
  DAY18_NEED_BINARY();
  Ran r = run_day18("kernel some_op --out out.safetensors");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--in <inputs.safetensors> is required"), std::string::npos) << r.output;
  r = run_day18("kernel");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("name an op"), std::string::npos) << r.output;
}

TEST(Day18Cli, UnknownPagedAttentionVersionNamesTheFlagAndTheValue) {
  DAY18_NEED_BINARY();
  Ran r = run_day18("--paged-attention bogus tour");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--paged-attention: bogus not in {auto,mma,fma,v1,v2,readable}"),
            std::string::npos)
      << r.output;
}

TEST(Day18Cli, UnknownSubcommandExitsWithCode2) {
  DAY18_NEED_BINARY();
  Ran r = run_day18("no_such_command");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("A subcommand is required"), std::string::npos) << r.output;
}

TEST(Day18Cli, HelpExitsWithCode0) {
  DAY18_NEED_BINARY();
  Ran r = run_day18("--help");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("--paged-attention"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace day18
