// `day18 kernel`: run one op of the registry on tensors from a safetensors file, so anyone can
// check a kernel on their own inputs from Python (see docs/ops.md for each op's tensor names).
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>

#include "engine/cli/commands.h"
#include "engine/cli/flags.h"
#include "engine/core/file_io.h"
#include "engine/core/safetensors.h"
#include "engine/ops/registry.h"

namespace day18::cli {
namespace {

struct KernelOptions {
  std::string op;
  std::string in;
  std::string out;
  std::string device = "cpu";
  std::vector<std::string> attrs;
  bool list = false;
  bool markdown = false;
};

// A table cell: a | inside it would end the cell (docs/ops.md's tables broke on "gate | up").
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

void print_list(bool markdown) {
  for (const OpDef& op : OpRegistry::instance().all()) {
    if (markdown) {
      std::cout << "## `" << op.name << "` (" << op.family << ")\n\n" << op.summary << "\n\n";
      std::cout << "| tensor | role | layout |\n|---|---|---|\n";
      for (auto& t : op.inputs)
        std::cout << "| `" << t.name << "` | input | " << cell(t.layout) << " |\n";
      for (auto& t : op.outputs)
        std::cout << "| `" << t.name << "` | output | " << cell(t.layout) << " |\n";
      if (!op.attrs.empty()) {
        std::cout << "\n| attribute | default | meaning |\n|---|---|---|\n";
        for (auto& a : op.attrs)
          std::cout << "| `" << a.name << "` | "
                    << cell(a.default_value.empty() ? "required" : a.default_value) << " | "
                    << cell(a.doc) << " |\n";
      }
      std::cout << "\n";
    } else {
      std::printf("%-22s %s\n", op.name.c_str(), op.summary.c_str());
    }
  }
}

int run_kernel(const KernelOptions& o) {
  if (o.list) {
    print_list(o.markdown);
    return 0;
  }
  DAY18_REQUIRE(!o.op.empty(), "kernel: name an op (day18 kernel --list shows them)");
  DAY18_REQUIRE(!o.in.empty(), "kernel: --in <inputs.safetensors> is required");
  DAY18_REQUIRE(!o.out.empty(), "kernel: --out <outputs.safetensors> is required");
  const OpDef& op = OpRegistry::instance().find(o.op);
  const Device device = resolve_device(o.device, "kernel");
  // Before the op runs: --out writable, and not the input (which it would overwrite).
  require_writable_path(o.out, "--out");
  require_distinct_paths({{"--in", o.in}, {"--out", o.out}});

  TensorFile file = read_safetensors(o.in);
  std::map<std::string, std::string> kv;  // keys starting with '_' are provenance, not attributes
  for (auto& [k, v] : file.metadata)
    if (!k.empty() && k[0] != '_') kv[k] = v;
  Attrs attrs(kv);
  std::set<std::string> given;
  for (const std::string& kv : o.attrs) {
    auto eq = kv.find('=');
    DAY18_REQUIRE(eq != std::string::npos && eq > 0, "--attr expects key=value, got '", kv, "'");
    const std::string key = kv.substr(0, eq);
    // A misspelt attribute must not be ignored silently (the op would run on its default).
    bool known = false;
    std::string names;
    for (const AttrDoc& a : op.attrs) {
      known |= a.name == key;
      names += (names.empty() ? "" : ", ") + a.name;
    }
    DAY18_REQUIRE(known, "--attr ", kv, ": ", op.name, " has no attribute '", key, "' (",
                  names.empty() ? std::string("it has none") : "known: " + names, ")");
    // Twice: which one was meant? (the last would win without a word)
    DAY18_REQUIRE(given.insert(key).second, "--attr ", key,
                  " is given twice (each attribute once)");
    attrs.set(key, kv.substr(eq + 1));
  }
  TensorStore io(device);
  // Plain names, or a golden file from reference/outputs ("in.<name>" inputs; "out.*" skipped).
  for (auto& [name, t] : file.tensors) {
    if (name.rfind("out.", 0) == 0) continue;
    io.put(name.rfind("in.", 0) == 0 ? name.substr(3) : name, t.view());
  }
  std::unique_ptr<Stream> stream;
  if (device == Device::cuda) stream = std::make_unique<Stream>();
  run_op(op, io, attrs, stream ? stream->get() : nullptr);

  std::map<std::string, Tensor> outs;
  for (auto& t : op.outputs) outs.emplace(t.name, io.get(t.name));
  auto meta = attrs.all();
  meta["_op"] = op.name;
  meta["_device"] = std::string(device_name(device));
  write_safetensors(o.out, outs, meta, "--out");
  std::printf("%s on %s: wrote %zu tensor(s) to %s\n", op.name.c_str(),
              std::string(device_name(device)).c_str(), outs.size(), o.out.c_str());
  return 0;
}

}  // namespace

Runner add_kernel_command(CLI::App& app) {
  auto o = std::make_shared<KernelOptions>();
  CLI::App* sub = app.add_subcommand("kernel", "Run one op on tensors from a safetensors file");
  sub->add_option("op", o->op, "Op name (see --list)");
  sub->add_option("--in", o->in, "Input tensors (.safetensors); __metadata__ holds attributes");
  sub->add_option("--out", o->out, "Where to write the output tensors (.safetensors)");
  add_device_flag(sub, o->device, "cpu (the oracle), cuda, or auto (the GPU if there is one)");
  sub->add_option("--attr", o->attrs, "Override an attribute: key=value (repeatable)");
  sub->add_flag("--list", o->list, "List the ops");
  sub->add_flag("--markdown", o->markdown, "With --list: the tensor and attribute tables as Markdown");
  return [o] { return run_kernel(*o); };
}

}  // namespace day18::cli
