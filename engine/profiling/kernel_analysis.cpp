#include "engine/profiling/kernel_analysis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/file_io.h"
#include "engine/profiling/calibration_kernels.h"

namespace day18 {
namespace {

// ---- the metric names (Nsight Compute 2023-2025, sm_90) ---------------------------------------
namespace m {
constexpr const char* kSm = "sm__throughput.avg.pct_of_peak_sustained_elapsed";
constexpr const char* kMem = "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed";
constexpr const char* kDram = "dram__throughput.avg.pct_of_peak_sustained_elapsed";
constexpr const char* kDramAlt = "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed";
constexpr const char* kL2 = "lts__throughput.avg.pct_of_peak_sustained_elapsed";
constexpr const char* kL1 = "l1tex__throughput.avg.pct_of_peak_sustained_active";
constexpr const char* kTensor = "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active";
constexpr const char* kTensorHmma =
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active";
constexpr const char* kTensorGmma =
    "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active";
constexpr const char* kFma = "sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active";
constexpr const char* kFmaInst = "sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active";
constexpr const char* kAlu = "sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active";
constexpr const char* kFp64 = "sm__inst_executed_pipe_fp64.avg.pct_of_peak_sustained_active";
constexpr const char* kAchieved = "sm__warps_active.avg.pct_of_peak_sustained_active";
constexpr const char* kTheoretical = "sm__maximum_warps_per_active_cycle_pct";
constexpr const char* kLimRegs = "launch__occupancy_limit_registers";
constexpr const char* kLimSmem = "launch__occupancy_limit_shared_mem";
constexpr const char* kLimWarps = "launch__occupancy_limit_warps";
constexpr const char* kLimBlocks = "launch__occupancy_limit_blocks";
constexpr const char* kWaves = "launch__waves_per_multiprocessor";
constexpr const char* kGrid = "launch__grid_size";
constexpr const char* kBlock = "launch__block_size";
constexpr const char* kRegs = "launch__registers_per_thread";
constexpr const char* kSmem = "launch__shared_mem_per_block";
constexpr const char* kSmemStatic = "launch__shared_mem_per_block_static";
constexpr const char* kSmemDynamic = "launch__shared_mem_per_block_dynamic";
constexpr const char* kSmCount = "launch__sm_count";
constexpr const char* kLoadEff = "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct";
constexpr const char* kSectors = "l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum";
constexpr const char* kRequests = "l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum";
constexpr const char* kDuration = "gpu__time_duration.sum";
constexpr const char* kDramRead = "dram__bytes_read.sum";
constexpr const char* kDramWrite = "dram__bytes_write.sum";
// FP instructions executed by threads (predicated on): FLOP = add + mul + 2 fma. Tensor-core
// FLOPs are not in these (sm_90's wgmma is not counted by any ops_path counter either): a GEMM's
// FLOPs come from the cost model.
struct FlopCounter {
  const char* op;
  double flops_per_inst;
};
constexpr FlopCounter kFlopOps[] = {{"fadd", 1}, {"fmul", 1}, {"ffma", 2}, {"hadd", 1}, {"hmul", 1},
                                    {"hfma", 2}, {"dadd", 1}, {"dmul", 1}, {"dfma", 2}};
std::string flop_metric(const char* op, const char* unit = "smsp") {
  return std::string(unit) + "__sass_thread_inst_executed_op_" + op + "_pred_on.sum";
}
}  // namespace m

std::string fmtd(const char* f, double v) {
  char buf[96];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// One event of a Chrome trace, read field by field: an absent field is its default, a field of
// the wrong type an error naming the file, the event and the key (--trace T.json:
// traceEvents[12].args.grid: expected an array of numbers, got "abc"), never nlohmann's bare
// type_error. Written for `day18 trace` output, tolerant of what other tools write where the
// format allows it (a string tid, as PyTorch's profiler writes for its streams).
class TraceEvent {
 public:
  TraceEvent(const nlohmann::json& e, const std::string& source, size_t i)
      : e_(e), where_("--trace " + source + ": traceEvents[" + std::to_string(i) + "]") {}

  [[noreturn]] void fail(const std::string& key, const std::string& what,
                         const nlohmann::json& v) const {
    throw InvalidArgument(where_ + "." + key + ": expected " + what + ", got " + v.dump());
  }
  std::string str(const char* key) const { return str_in(e_, key, key); }
  double number(const char* key) const {
    if (!e_.contains(key))
      throw InvalidArgument(where_ + ": no \"" + key +
                            "\" (a complete \"X\" slice has numeric ts and dur)");
    const nlohmann::json& v = e_.at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>())) fail(key, "a finite number", v);
    return v.get<double>();
  }
  // pid and tid: an integer, or a name (hashed to an id: only equality matters here).
  int64_t id(const char* key) const {
    if (!e_.contains(key)) return 0;
    const nlohmann::json& v = e_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_string()) return static_cast<int64_t>(std::hash<std::string>{}(v.get<std::string>()));
    fail(key, "an integer or a string", v);
  }
  const nlohmann::json* args() const {
    if (!e_.contains("args")) return nullptr;
    if (!e_.at("args").is_object()) fail("args", "an object", e_.at("args"));
    return &e_.at("args");
  }
  std::string arg_str_or_int(const nlohmann::json& args, const char* key) const {
    if (!args.contains(key)) return "";
    const nlohmann::json& v = args.at(key);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    fail(std::string("args.") + key, "a string or an integer", v);
  }
  // grid and block: [x, y, z] of positive numbers; their product.
  double arg_product(const nlohmann::json& args, const char* key) const {
    if (!args.contains(key)) return 0;
    const nlohmann::json& a = args.at(key);
    bool ok = a.is_array() && !a.empty();
    double p = 1;
    for (const auto& v : ok ? a : nlohmann::json::array()) {
      ok = ok && v.is_number() && v.get<double>() > 0 && std::isfinite(v.get<double>());
      if (ok) p *= v.get<double>();
    }
    if (!ok) fail(std::string("args.") + key, "an array of positive numbers", a);
    return p;
  }
  int64_t arg_int_or(const nlohmann::json& args, const char* key, int64_t dflt) const {
    if (!args.contains(key)) return dflt;
    const nlohmann::json& v = args.at(key);
    if (!v.is_number_integer()) fail(std::string("args.") + key, "an integer", v);
    return v.get<int64_t>();
  }

 private:
  std::string str_in(const nlohmann::json& o, const char* key, const std::string& name) const {
    if (!o.contains(key)) return "";
    const nlohmann::json& v = o.at(key);
    if (!v.is_string()) fail(name, "a string", v);
    return v.get<std::string>();
  }
  const nlohmann::json& e_;
  std::string where_;
};

// "layer 17 o_proj" -> "layer * o_proj": one row for the same projection in every layer.
std::string place_pattern(const std::string& what) {
  static const std::regex re("layer [0-9]+");
  return std::regex_replace(what, re, "layer *");
}

// Duration-weighted mean of a % over the launches that have it.
struct Acc {
  double wsum = 0, w = 0;
  void add(const std::optional<double>& v, double weight) {
    if (v) {
      wsum += *v * weight;
      w += weight;
    }
  }
  std::optional<double> get() const {
    if (w > 0) return wsum / w;
    return std::nullopt;
  }
};

// One row per group of launches: means of the per-launch numbers, time-weighted means of the %s.
KernelEvidence merge(const std::vector<KernelEvidence>& v) {
  KernelEvidence k = v.front();
  k.launches = static_cast<int>(v.size());
  if (v.size() == 1) {
    k.total_s = k.duration_s;
    return k;
  }
  using F = std::optional<double> KernelEvidence::*;
  const F weighted[] = {&KernelEvidence::sm_pct,
                        &KernelEvidence::mem_pct,
                        &KernelEvidence::dram_pct,
                        &KernelEvidence::l2_pct,
                        &KernelEvidence::l1_pct,
                        &KernelEvidence::tensor_pipe_pct,
                        &KernelEvidence::fma_pipe_pct,
                        &KernelEvidence::alu_pipe_pct,
                        &KernelEvidence::fp64_pipe_pct,
                        &KernelEvidence::achieved_occupancy_pct,
                        &KernelEvidence::theoretical_occupancy_pct,
                        &KernelEvidence::load_efficiency_pct,
                        &KernelEvidence::sectors_per_request,
                        &KernelEvidence::waves_per_sm};
  for (F f : weighted) {
    Acc a;
    for (const auto& e : v) a.add(e.*f, e.duration_s.value_or(1));
    k.*f = a.get();
  }
  // Plain means for the per-launch counts and times (a duration-weighted mean of durations would
  // favour the long ones).
  for (F f : {&KernelEvidence::duration_s, &KernelEvidence::bytes, &KernelEvidence::flops}) {
    Acc a;
    for (const auto& e : v) a.add(e.*f, 1);
    k.*f = a.get();
  }
  double total = 0;
  bool any = false;
  for (const auto& e : v)
    if (e.duration_s) {
      total += *e.duration_s;
      any = true;
    }
  if (any) k.total_s = total;
  std::vector<double> gaps;
  for (const auto& e : v)
    if (e.launch_gap_s) gaps.push_back(*e.launch_gap_s);
  if (!gaps.empty()) {
    std::sort(gaps.begin(), gaps.end());
    const size_t n = gaps.size();
    k.launch_gap_s = n % 2 ? gaps[n / 2] : 0.5 * (gaps[n / 2 - 1] + gaps[n / 2]);
  }
  return k;
}

// Groups per-launch evidence (in launch order) into rows; keeps first-seen order.
std::vector<KernelRow> group_rows(const std::vector<KernelEvidence>& launches,
                                  const std::vector<std::optional<OpCost>>& costs, bool group) {
  std::vector<std::string> keys;
  std::map<std::string, std::vector<size_t>> members;
  for (size_t i = 0; i < launches.size(); ++i) {
    const KernelEvidence& e = launches[i];
    std::string key = std::to_string(i);
    if (group)
      key = e.name + "|" + fmtd("%.0f", e.grid_size.value_or(-1)) + "|" +
            fmtd("%.0f", e.block_size.value_or(-1)) + "|" + place_pattern(e.what);
    auto [it, fresh] = members.try_emplace(key);
    if (fresh) keys.push_back(key);
    it->second.push_back(i);
  }
  std::vector<KernelRow> rows;
  for (const auto& key : keys) {
    const auto& idx = members[key];
    std::vector<KernelEvidence> v;
    for (size_t i : idx) v.push_back(launches[i]);
    KernelRow r;
    r.evidence = merge(v);
    r.evidence.what = place_pattern(r.evidence.what);
    // The analytic cost: the mean over the group's matched launches.
    OpCost sum;
    int n = 0;
    for (size_t i : idx)
      if (costs[i]) {
        sum += *costs[i];
        ++n;
      }
    if (n > 0) r.analytic = OpCost{sum.bytes / n, sum.flops / n};
    rows.push_back(std::move(r));
  }
  return rows;
}

void finish(Analysis& a, std::vector<KernelRow> rows, const AnalysisOptions& o) {
  double total = 0;
  for (const auto& r : rows) total += r.evidence.total_s.value_or(0);
  for (auto& r : rows) {
    r.time_share = total > 0 ? r.evidence.total_s.value_or(0) / total : 0;
    r.result = classify(r.evidence, o.roof, o.thresholds);
    if (r.analytic && r.evidence.bytes_source.rfind("dram", 0) == 0 && r.analytic->bytes > 0 &&
        r.evidence.bytes)
      r.result.evidence.push_back(
          "cost model: " + fmtd("%.3g", r.analytic->bytes) + " bytes, " +
          fmtd("%.3g", r.analytic->flops) + " FLOPs per launch; DRAM moved " +
          fmtd("%.2f", *r.evidence.bytes / r.analytic->bytes) + "x the analytic bytes");
  }
  std::stable_sort(rows.begin(), rows.end(), [](const KernelRow& x, const KernelRow& y) {
    return x.evidence.total_s.value_or(0) > y.evidence.total_s.value_or(0);
  });
  a.total_kernel_s = total;
  a.kernels = std::move(rows);
  a.roof = o.roof;
  if (o.plan) a.plan = o.plan->describe();
}

std::vector<std::optional<OpCost>> attach_plan(std::vector<KernelEvidence>& ev,
                                               const AnalysisOptions& o, Analysis& a) {
  std::vector<std::optional<OpCost>> costs(ev.size());
  if (!o.plan) return costs;
  const std::vector<PlannedLaunch> plan = decode_step_launches(o.plan->config, o.plan->shape);
  std::vector<std::string> names;
  for (const auto& e : ev) names.push_back(e.name);
  const std::vector<int> match = match_plan(names, plan);
  int unmatched = 0, reduces = 0;
  for (size_t i = 0; i < ev.size(); ++i) {
    if (match[i] < 0) {
      if (kernel_family(ev[i].name) == "linear_reduce") {
        ++reduces;
        ev[i].what = "split-K reduce of the GEMM before it";
      } else {
        ++unmatched;
      }
      continue;
    }
    const PlannedLaunch& p = plan[match[i]];
    costs[i] = p.cost;
    ev[i].what = p.what;
  }
  if (unmatched)
    a.notes.push_back(std::to_string(unmatched) + " of " + std::to_string(ev.size()) +
                      " launches matched no launch of the decode-step plan (" + o.plan->describe() +
                      "): they have no analytic bytes/FLOPs");
  if (reduces)
    a.notes.push_back(std::to_string(reduces) +
                      " launches are cuBLAS's split-K reduces: part of the GEMM launched before "
                      "each, with no planned launch (and no analytic cost) of their own");
  return costs;
}

}  // namespace

const std::vector<std::string>& ncu_metrics_read() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> r = {
        m::kSm,          m::kMem,         m::kDram,    m::kL2,      m::kL1,       m::kTensor,
        m::kTensorHmma,  m::kTensorGmma,  m::kFma,     m::kFmaInst, m::kAlu,      m::kFp64,
        m::kAchieved,    m::kTheoretical, m::kLimRegs, m::kLimSmem, m::kLimWarps, m::kLimBlocks,
        m::kWaves,       m::kGrid,        m::kBlock,   m::kRegs,    m::kSmem,     m::kSmemStatic,
        m::kSmemDynamic, m::kSmCount,     m::kLoadEff, m::kSectors, m::kRequests, m::kDuration,
        m::kDramRead,    m::kDramWrite};
    for (const auto& f : m::kFlopOps) r.push_back(m::flop_metric(f.op));
    return r;
  }();
  return v;
}

KernelEvidence evidence_from_ncu(const ncu::Table& t, size_t row, const MetricReader& read_metric) {
  auto first = [&](std::initializer_list<std::string_view> names) -> std::optional<double> {
    for (std::string_view n : names)
      if (std::optional<double> v = read_metric(t, row, n)) return v;
    return std::nullopt;
  };
  KernelEvidence k;
  k.full_name = ncu::kernel_name(t, row);
  k.name = ncu::short_kernel_name(k.full_name);
  k.source = "ncu";
  k.sm_pct = read_metric(t, row, m::kSm);
  k.mem_pct = read_metric(t, row, m::kMem);
  k.dram_pct = first({m::kDram, m::kDramAlt});
  k.l2_pct = read_metric(t, row, m::kL2);
  k.l1_pct = read_metric(t, row, m::kL1);
  for (const char* name : {m::kTensor, m::kTensorHmma, m::kTensorGmma})
    if (std::optional<double> v = read_metric(t, row, name))
      k.tensor_pipe_pct = std::max(k.tensor_pipe_pct.value_or(0), *v);
  k.fma_pipe_pct = first({m::kFma, m::kFmaInst});
  k.alu_pipe_pct = read_metric(t, row, m::kAlu);
  k.fp64_pipe_pct = read_metric(t, row, m::kFp64);
  k.achieved_occupancy_pct = read_metric(t, row, m::kAchieved);
  k.theoretical_occupancy_pct = read_metric(t, row, m::kTheoretical);
  k.limit_registers = read_metric(t, row, m::kLimRegs);
  k.limit_shared_mem = read_metric(t, row, m::kLimSmem);
  k.limit_warps = read_metric(t, row, m::kLimWarps);
  k.limit_blocks = read_metric(t, row, m::kLimBlocks);
  k.waves_per_sm = read_metric(t, row, m::kWaves);
  k.grid_size = read_metric(t, row, m::kGrid);
  k.block_size = read_metric(t, row, m::kBlock);
  k.registers_per_thread = read_metric(t, row, m::kRegs);
  k.shared_mem_per_block = read_metric(t, row, m::kSmem);
  if (!k.shared_mem_per_block) {
    const auto s = read_metric(t, row, m::kSmemStatic), d = read_metric(t, row, m::kSmemDynamic);
    if (s || d) k.shared_mem_per_block = s.value_or(0) + d.value_or(0);
  }
  k.sm_count = read_metric(t, row, m::kSmCount);
  k.load_efficiency_pct = read_metric(t, row, m::kLoadEff);
  const auto sectors = read_metric(t, row, m::kSectors),
             requests = read_metric(t, row, m::kRequests);
  if (sectors && requests && *requests > 0) k.sectors_per_request = *sectors / *requests;
  k.duration_s = read_metric(t, row, m::kDuration);
  const auto rd = read_metric(t, row, m::kDramRead), wr = read_metric(t, row, m::kDramWrite);
  if (rd || wr) {
    k.bytes = rd.value_or(0) + wr.value_or(0);
    k.bytes_source = "dram__bytes_read + dram__bytes_write";
  }
  // A kernel that loads through TMA (cuBLAS's sm_90 GEMMs) issues few or no LSU global loads:
  // the load-efficiency metrics then describe a sliver of its traffic (or nothing), not its
  // access pattern, so they are not evidence (the H200's calibration GEMM: 0 LSU sectors, 1.25 GB
  // read from DRAM, which the efficiency metric reported as uncoalesced).
  if (sectors && rd && *rd > 0 && *sectors * 32 < 0.1 * *rd) {
    k.load_efficiency_pct.reset();
    k.sectors_per_request.reset();
  }
  double flops = 0;
  bool any = false;
  for (const auto& f : m::kFlopOps) {
    std::optional<double> v = read_metric(t, row, m::flop_metric(f.op));
    if (!v) v = read_metric(t, row, m::flop_metric(f.op, "sm"));
    if (v) {
      flops += *v * f.flops_per_inst;
      any = true;
    }
  }
  if (any) {
    k.flops = flops;
    k.flops_source = "SASS FP add/mul/fma counters";
  }
  // A tensor-core kernel: a GEMM by name, or one whose tensor pipe is busy and busier than its
  // FMA pipe (the H200's FMA loop shows the tensor pipe at 5% beside FMA at 85%).
  k.tensor_op = kernel_family(k.name) == "linear" ||
                (k.tensor_pipe_pct && *k.tensor_pipe_pct >= 5 &&
                 *k.tensor_pipe_pct >= k.fma_pipe_pct.value_or(0));
  return k;
}

// ------------------------------------------------------------------------------ ncu path
Analysis analyze_ncu(const ncu::Table& t, const AnalysisOptions& o) {
  Analysis a;
  a.source = t.source;
  a.input = "ncu";
  a.notes = t.notes;
  std::vector<KernelEvidence> ev;
  for (size_t r = 0; r < t.rows.size(); ++r) ev.push_back(evidence_from_ncu(t, r));
  a.launches = static_cast<int>(ev.size());
  const auto costs = attach_plan(ev, o, a);
  for (size_t i = 0; i < ev.size(); ++i) {
    if (!costs[i]) continue;
    // Counters miss tensor-core FLOPs: a GEMM's FLOPs come from the cost model.
    if (!ev[i].flops || (ev[i].tensor_op && costs[i]->flops > *ev[i].flops)) {
      ev[i].flops = costs[i]->flops;
      ev[i].flops_source = "cost model";
    }
    if (!ev[i].bytes) {
      ev[i].bytes = costs[i]->bytes;
      ev[i].bytes_source = "cost model";
    }
  }
  if (o.calibration)
    for (auto& e : ev)
      if (kernel_family(e.name) == "linear") {
        const double n = static_cast<double>(calibration::kGemmN);
        e.flops = 2.0 * n * n * n;
        e.flops_source = "known: the calibration GEMM is 8192^3";
      }
  if (!t.has_column(m::kSm) || !t.has_column(m::kMem))
    a.notes.push_back(t.source + " has no speed-of-light columns (" + std::string(m::kSm) + ", " +
                      m::kMem + "): capture with scripts/profile_ncu.sh");
  finish(a, group_rows(ev, costs, o.group), o);
  return a;
}

// ------------------------------------------------------------------------------ trace path
KernelTrace parse_chrome_trace(const nlohmann::json& j, const std::string& source) {
  const nlohmann::json* events = nullptr;
  if (j.is_object() && j.contains("traceEvents"))
    events = &j.at("traceEvents");
  else if (j.is_array())
    events = &j;
  if (!events || !events->is_array())
    throw InvalidArgument("--trace " + source +
                          ": not a Chrome trace (no \"traceEvents\" array): `day18 trace` writes "
                          "one (Chrome Trace Event JSON, what Perfetto opens)");
  KernelTrace out;
  out.source = source;
  struct Op {
    double ts, dur;
    int64_t pid, tid;
    bool kernel;
    size_t index;  // into out.kernels when kernel
  };
  std::vector<Op> ops;
  for (size_t i = 0; i < events->size(); ++i) {
    const nlohmann::json& e = (*events)[i];
    if (!e.is_object())
      throw InvalidArgument("--trace " + source + ": traceEvents[" + std::to_string(i) +
                            "]: expected an event (a JSON object), got " + e.dump());
    const TraceEvent ev(e, source, i);
    if (ev.str("ph") != "X") continue;
    const std::string cat = ev.str("cat");
    const bool kernel = cat == "kernel";
    if (!kernel && cat != "memcpy" && cat != "memset") continue;
    Op op{ev.number("ts"), ev.number("dur"), ev.id("pid"), ev.id("tid"), kernel, 0};
    if (op.dur < 0) ev.fail("dur", "a duration >= 0", e.at("dur"));
    if (kernel) {
      TraceKernel k;
      k.name = ev.str("name");
      k.start_us = op.ts;
      k.dur_us = op.dur;
      k.pid = op.pid;
      k.tid = op.tid;
      if (const nlohmann::json* args = ev.args()) {
        k.stream = ev.arg_str_or_int(*args, "stream");
        k.grid_blocks = static_cast<int64_t>(ev.arg_product(*args, "grid"));
        k.block_threads = static_cast<int64_t>(ev.arg_product(*args, "block"));
        k.step = ev.arg_int_or(*args, "step", k.step);
      }
      op.index = out.kernels.size();
      out.kernels.push_back(std::move(k));
    }
    ops.push_back(op);
  }
  out.gpu_ops = static_cast<int>(ops.size());
  // The idle time on each stream before each op.
  std::stable_sort(ops.begin(), ops.end(), [](const Op& a, const Op& b) { return a.ts < b.ts; });
  std::map<std::pair<int64_t, int64_t>, double> last_end;
  for (const Op& op : ops) {
    const auto key = std::make_pair(op.pid, op.tid);
    auto it = last_end.find(key);
    if (op.kernel && it != last_end.end())
      out.kernels[op.index].gap_us = std::max(0.0, op.ts - it->second);
    last_end[key] = std::max(it != last_end.end() ? it->second : -1e300, op.ts + op.dur);
  }
  std::stable_sort(
      out.kernels.begin(), out.kernels.end(),
      [](const TraceKernel& a, const TraceKernel& b) { return a.start_us < b.start_us; });
  return out;
}

KernelTrace read_chrome_trace(const std::string& path) {
  const std::string why = unreadable_reason(path);
  if (!why.empty())
    throw InvalidArgument("--trace " + path + ": cannot open the file (" + why + ")");
  std::ifstream f(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::parse_error& e) {
    throw InvalidArgument("--trace " + path + ": not JSON: " + json_library_message(e.what()));
  }
  return parse_chrome_trace(j, path);
}

Analysis analyze_trace(const KernelTrace& tr, const AnalysisOptions& o) {
  Analysis a;
  a.source = tr.source;
  a.input = "trace";
  std::vector<KernelEvidence> ev;
  int left_out = 0;
  for (const TraceKernel& k : tr.kernels) {
    if (o.first_step >= 0 && (k.step < o.first_step || k.step > o.last_step)) {
      ++left_out;
      continue;
    }
    KernelEvidence e;
    e.full_name = k.name;
    e.name = ncu::short_kernel_name(k.name);
    e.source = "trace";
    e.duration_s = k.dur_us * 1e-6;
    if (k.gap_us >= 0) e.launch_gap_s = k.gap_us * 1e-6;
    if (k.grid_blocks > 0) {
      e.grid_size = static_cast<double>(k.grid_blocks);
      // Fewer blocks than SMs is less than one wave whatever fits on an SM.
      if (o.sm_count > 0 && k.grid_blocks < o.sm_count) {
        e.waves_per_sm = static_cast<double>(k.grid_blocks) / o.sm_count;
        e.sm_count = o.sm_count;
      }
    }
    if (k.block_threads > 0) e.block_size = static_cast<double>(k.block_threads);
    e.tensor_op = kernel_family(e.name) == "linear";
    ev.push_back(std::move(e));
  }
  a.launches = static_cast<int>(ev.size());
  if (left_out)
    a.notes.push_back(std::to_string(left_out) + " kernels outside steps " +
                      std::to_string(o.first_step) + ".." + std::to_string(o.last_step) +
                      " left out");
  if (ev.empty())
    a.notes.push_back(tr.source + ": no kernel slices (\"cat\": \"kernel\") in the trace" +
                      (left_out ? " within the steps asked for" : ""));
  const auto costs = attach_plan(ev, o, a);
  for (size_t i = 0; i < ev.size(); ++i)
    if (costs[i]) {
      ev[i].bytes = costs[i]->bytes;
      ev[i].flops = costs[i]->flops;
      ev[i].bytes_source = ev[i].flops_source = "cost model";
    }
  if (!o.plan)
    a.notes.push_back(
        "no decode-step plan (--preset, --batch, --context): kernels have no bytes "
        "or FLOPs, so only launch overhead can be told from a trace");
  if (o.roof.peak_bw <= 0)
    a.notes.push_back(
        "no roof (--peak-bw, --peak-flops or --roof FILE): a trace alone cannot "
        "say memory- or compute-bound");
  finish(a, group_rows(ev, costs, o.group), o);
  return a;
}

// ------------------------------------------------------------------------------ output
std::string DecodePlan::describe() const {
  return config.name + " decode: " + std::to_string(shape.num_seqs) +
         (shape.num_seqs == 1 ? " sequence x " : " sequences x ") +
         std::to_string(shape.context_len) + " context, " + std::string(dtype_name(shape.dtype));
}

nlohmann::json analysis_json(const Analysis& a) {
  using nlohmann::json;
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  json ks = json::array();
  for (const KernelRow& r : a.kernels) {
    const KernelEvidence& e = r.evidence;
    const RooflinePoint& p = r.result.roofline;
    json k = {{"name", e.name},
              {"full_name", e.full_name},
              {"what", e.what},
              {"launches", e.launches},
              {"time_share", r.time_share},
              {"duration_us", e.duration_s ? json(*e.duration_s * 1e6) : json(nullptr)},
              {"total_us", e.total_s ? json(*e.total_s * 1e6) : json(nullptr)},
              {"bytes", opt(e.bytes)},
              {"flops", opt(e.flops)},
              {"bytes_source", e.bytes_source},
              {"flops_source", e.flops_source},
              {"tensor_op", e.tensor_op},
              {"sm_pct", opt(r.result.sm_pct)},
              {"mem_pct", opt(r.result.mem_pct)},
              {"sol_from_roofline", r.result.sol_from_roofline},
              {"verdict", r.result.verdict},
              {"detail", r.result.detail},
              {"label", r.result.label()},
              {"evidence", r.result.evidence},
              {"recommendations", r.result.recommendations}};
    if (p.valid) {
      k["intensity"] = p.intensity;
      k["achieved_gbps"] = p.achieved_bw / 1e9;
      k["achieved_tflops"] = p.achieved_flops / 1e12;
      k["pct_of_roof"] = p.pct_of_roof;
    }
    if (r.analytic) k["analytic"] = {{"bytes", r.analytic->bytes}, {"flops", r.analytic->flops}};
    ks.push_back(std::move(k));
  }
  return {{"source", a.source},
          {"input", a.input},
          {"plan", a.plan},
          {"launches", a.launches},
          {"total_kernel_us", a.total_kernel_s * 1e6},
          {"roof",
           {{"peak_bw_gbps", a.roof.peak_bw / 1e9},
            {"peak_tflops", a.roof.peak_flops / 1e12},
            {"peak_fma_tflops", a.roof.fma_or_peak() / 1e12},
            {"source", a.roof.source}}},
          {"notes", a.notes},
          {"kernels", std::move(ks)}};
}

namespace {
std::string cut(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 3) + "...";
}
std::string opt_pct(const std::optional<double>& v) {
  return v ? fmtd("%.0f%%", *v) : std::string("-");
}
std::string si(double v, const char* unit) {
  if (v == 0) return std::string("0") + (*unit ? " " : "") + unit;
  const char* p[] = {"", "K", "M", "G", "T", "P"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 5) {
    v /= 1000;
    ++i;
  }
  return fmtd(v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v) + " " + p[i] + unit;
}
}  // namespace

std::string analysis_table(const Analysis& a, bool details) {
  std::ostringstream os;
  os << "Kernel profile (" << a.input << "): " << a.source << "\n";
  os << "  " << a.launches << " launches, " << fmtd("%.1f", a.total_kernel_s * 1e6)
     << " us of kernel time";
  if (!a.plan.empty()) os << "; cost model: " << a.plan;
  os << "\n";
  if (a.roof.peak_bw > 0 || a.roof.peak_flops > 0)
    os << "  roof: P = " << fmtd("%.0f", a.roof.peak_bw / 1e9) << " GB/s, compute "
       << fmtd("%.0f", a.roof.peak_flops / 1e12) << " TFLOP/s (tensor), "
       << fmtd("%.0f", a.roof.fma_or_peak() / 1e12) << " TFLOP/s (FMA)"
       << (a.roof.source.empty() ? "" : "  [" + a.roof.source + "]") << "\n";
  else
    os << "  roof: not given (--peak-bw / --peak-flops / --roof): no % of roof\n";
  for (const auto& n : a.notes) os << "  note: " << n << "\n";
  os << "\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-34s %5s %6s %9s %5s %5s %6s  %s\n", "kernel", "calls",
                "time%", "us/call", "SM", "mem", "roof", "verdict");
  os << line;
  for (const KernelRow& r : a.kernels) {
    const KernelEvidence& e = r.evidence;
    std::string name = e.name + (e.what.empty() ? "" : " [" + e.what + "]");
    std::snprintf(line, sizeof line, "  %-34s %5d %5.1f%% %9s %5s %5s %6s  %s\n",
                  cut(name, 34).c_str(), e.launches, r.time_share * 100,
                  e.duration_s ? fmtd("%.2f", *e.duration_s * 1e6).c_str() : "-",
                  opt_pct(r.result.sm_pct).c_str(), opt_pct(r.result.mem_pct).c_str(),
                  r.result.roofline.pct_of_roof > 0
                      ? fmtd("%.0f%%", r.result.roofline.pct_of_roof).c_str()
                      : "-",
                  r.result.label().c_str());
    os << line;
    if (details) {
      for (const auto& ev : r.result.evidence) os << "        - " << ev << "\n";
      if (!r.result.recommendations.empty())
        os << "        try: " << r.result.recommendations.front() << "\n";
    }
  }
  return os.str();
}

std::string analysis_markdown(const Analysis& a, const std::string& png,
                              const std::string& command) {
  std::ostringstream os;
  os << "# Kernel profile analysis\n\n";
  os << "Made by `" << command << "` from `" << a.source << "` (" << a.input << ", " << a.launches
     << " launches, " << fmtd("%.1f", a.total_kernel_s * 1e6) << " us of kernel time).";
  if (!a.plan.empty()) os << " Bytes and FLOPs of the cost model: " << a.plan << ".";
  os << "\n\n";
  if (a.roof.peak_bw > 0)
    os << "Roof: P = " << fmtd("%.0f", a.roof.peak_bw / 1e9) << " GB/s, compute "
       << fmtd("%.0f", a.roof.peak_flops / 1e12) << " TFLOP/s on the tensor cores, "
       << fmtd("%.0f", a.roof.fma_or_peak() / 1e12) << " TFLOP/s on the FMA pipe"
       << (a.roof.source.empty() ? "" : " (" + a.roof.source + ")") << ".\n\n";
  else
    os << "No roof was given (`--peak-bw`, `--peak-flops` or `--roof`): % of roof is left out.\n\n";
  for (const auto& n : a.notes) os << "> " << n << "\n\n";
  if (!png.empty()) os << "![The kernels on the roofline](" << png << ")\n\n";
  os << "## Summary\n\n";
  os << "| kernel | where | calls | time share | us/call | bytes | FLOPs | FLOP/byte | % of roof | "
        "verdict |\n";
  os << "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const KernelRow& r : a.kernels) {
    const KernelEvidence& e = r.evidence;
    const RooflinePoint& p = r.result.roofline;
    os << "| `" << cut(e.name, 48) << "` | " << (e.what.empty() ? "-" : e.what) << " | "
       << e.launches << " | " << fmtd("%.1f%%", r.time_share * 100) << " | "
       << (e.duration_s ? fmtd("%.2f", *e.duration_s * 1e6) : "-") << " | "
       << (e.bytes ? si(*e.bytes, "B") : "-") << " | " << (e.flops ? si(*e.flops, "") : "-")
       << " | " << (p.valid ? fmtd("%.2f", p.intensity) : "-") << " | "
       << (p.pct_of_roof > 0 ? fmtd("%.0f%%", p.pct_of_roof) : "-") << " | " << r.result.label()
       << " |\n";
  }
  os << "\n## Each kernel\n\n";
  for (const KernelRow& r : a.kernels) {
    const KernelEvidence& e = r.evidence;
    os << "### `" << e.name << "`" << (e.what.empty() ? "" : " (" + e.what + ")") << ": "
       << r.result.label() << "\n\n";
    if (e.full_name != e.name) os << "`" << cut(e.full_name, 160) << "`\n\n";
    os << fmtd("%.1f%%", r.time_share * 100) << " of the kernel time, " << e.launches
       << (e.launches == 1 ? " launch" : " launches") << ".\n\n";
    os << "Evidence:\n\n";
    for (const auto& ev : r.result.evidence) os << "- " << ev << "\n";
    os << "\nWhat to try:\n\n";
    for (const auto& rec : r.result.recommendations) os << "- " << rec << "\n";
    os << "\n";
  }
  os << "## How the verdicts are decided\n\n"
        "The thresholds (engine/profiling/classifier.h, docs/kernel_analysis.md):\n\n"
        "| threshold | value | rule |\n|---|---:|---|\n";
  for (const auto& t : threshold_table())
    os << "| `" << t.name << "` | " << fmtd("%g", t.value) << " " << t.unit << " | " << t.rule
       << " |\n";
  return os.str();
}

Roof read_roof_json(const std::string& path) {
  const std::string why = unreadable_reason(path);
  if (!why.empty())
    throw InvalidArgument("--roof " + path + ": cannot open the file (" + why + ")");
  std::ifstream f(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::parse_error& e) {
    throw InvalidArgument("--roof " + path + ": not JSON: " + json_library_message(e.what()));
  }
  Roof r;
  auto num = [&](const char* key) -> double {
    if (!j.contains(key)) return 0;
    if (!j.at(key).is_number())
      throw InvalidArgument("--roof " + path + ": \"" + key +
                            "\" is not a number: " + j.at(key).dump());
    return j.at(key).get<double>();
  };
  if (!j.is_object()) throw InvalidArgument("--roof " + path + ": expected a JSON object");
  r.peak_bw = num("p_gbps") * 1e9;
  r.peak_flops = num("peak_tensor_tflops") * 1e12;
  r.peak_fma_flops = num("peak_fma_tflops") * 1e12;
  if (r.peak_bw <= 0 && r.peak_flops <= 0)
    throw InvalidArgument("--roof " + path +
                          ": no \"p_gbps\" or \"peak_tensor_tflops\" (write it "
                          "with day18 calibrate --json FILE, or day18 probe --json FILE for P)");
  r.source = path;
  if (j.contains("gpu") && j.at("gpu").is_string())
    r.source += " (" + j.at("gpu").get<std::string>() + ")";
  return r;
}

}  // namespace day18
