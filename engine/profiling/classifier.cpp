#include "engine/profiling/classifier.h"

#include <optional>

#include <initializer_list>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace day18 {
namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string pct(double v) {
  return fmt("%.1f%%", v);
}
std::string pct(const std::optional<double>& v) {
  return v ? pct(*v) : std::string("n/a");
}
std::string num(double v) {
  if (std::fabs(v) >= 100 || v == std::floor(v)) return fmt("%.0f", v);
  return fmt(std::fabs(v) >= 10 ? "%.1f" : "%.2f", v);
}
// 1234567 -> "1.23 M", for bytes and FLOPs.
std::string si(double v, const char* unit) {
  const char* p[] = {"", "K", "M", "G", "T", "P"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 5) {
    v /= 1000;
    ++i;
  }
  return fmt(v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v) + " " + p[i] + unit;
}
std::string us(double seconds) {
  return fmt(seconds < 1e-5 ? "%.2f us" : "%.1f us", seconds * 1e6);
}

}  // namespace

const Thresholds& default_thresholds() {
  static const Thresholds t{};
  return t;
}

std::vector<ThresholdRow> threshold_table(const Thresholds& t) {
  return {
      {"high_throughput_pct", t.high_throughput_pct, "% of peak",
       "compute or memory throughput at or above it bounds the kernel; both below: LATENCY BOUND",
       "Nsight Compute SOL rule: below 60% of peak on both \"typically indicate latency issues\""},
      {"roof_pct", t.roof_pct, "% of peak",
       "a unit at or above it is at its roof; compute and memory both: NEAR THE ROOF",
       "Nsight Compute SOL rule: above 80%, work must move to another unit"},
      {"low_load_efficiency_pct", t.low_load_efficiency_pct, "% of sector bytes",
       "global loads using less of each fetched 32-byte sector: UNCOALESCED (unless compute-bound)",
       "the seed's threshold (its target: > 80%); Nsight Compute flags excessive sectors"},
      {"max_sectors_per_request", t.max_sectors_per_request, "sectors/request",
       "without the efficiency metric: more sectors per request than coalesced 16-byte loads need",
       "32 lanes x 16 B / 32 B per sector"},
      {"min_waves", t.min_waves, "waves",
       "latency cause: fewer waves than this leave SMs idle (grid below one wave)",
       "Nsight Compute launch__waves_per_multiprocessor (Launch Statistics)"},
      {"low_occupancy_pct", t.low_occupancy_pct, "% of warp slots",
       "latency cause: theoretical occupancy below it (limiter named: registers, shared memory, "
       "warps, blocks)",
       "the seed's target (> 50%); Nsight Compute Occupancy section limiters"},
      {"short_kernel_us", t.short_kernel_us, "us",
       "latency cause, with a trace: kernels this short whose launch gaps dominate are "
       "launch/overhead-bound",
       "a launch costs a few us of CPU and GPU overhead"},
      {"launch_gap_ratio", t.launch_gap_ratio, "x duration",
       "launch-bound when the median idle gap before a launch is at least this times its duration",
       "the gap then costs as much as the kernel"},
      {"seed_low_occupancy_pct", t.seed_low_occupancy_pct, "% of warp slots",
       "the seed's OCCUPANCY LIMITED threshold (seed_classify and seed_classify_fixed only)",
       "the seed's code"},
  };
}

// ------------------------------------------------------------------------------ roofline
RooflinePoint roofline_point(double flops, double bytes, double seconds, double peak_flops,
                             double peak_bw) {
  RooflinePoint p;
  if (!(bytes > 0) || !(seconds > 0)) return p;
  // LAB 06 BEGIN roofline: intensity, achieved rates, ridge, attainable FLOP/s, % of the roof (about 14 lines)
  p.valid = true;
  p.intensity = flops / bytes;
  p.achieved_flops = flops / seconds;
  p.achieved_bw = bytes / seconds;
  if (peak_bw > 0 && peak_flops > 0) {
    p.ridge = peak_flops / peak_bw;
    p.attainable = std::min(peak_flops, p.intensity * peak_bw);
    p.memory_side = p.intensity < p.ridge;
  }
  if (flops > 0 && p.attainable > 0)
    p.pct_of_roof = 100.0 * p.achieved_flops / p.attainable;
  else if (flops <= 0 && peak_bw > 0)
    p.pct_of_roof = 100.0 * p.achieved_bw / peak_bw;  // no FLOPs: the memory roof is its roof
  // LAB 06 END roofline
  return p;
}

// ------------------------------------------------------------------------------ decision
const char* bound_name(Bound b) {
  switch (b) {
    case Bound::memory:
      return "MEMORY BOUND";
    case Bound::compute:
      return "COMPUTE BOUND";
    case Bound::latency:
      return "LATENCY BOUND";
    case Bound::uncoalesced:
      return "UNCOALESCED";
    case Bound::near_roof:
      return "NEAR THE ROOF";
    case Bound::unknown:
      break;
  }
  return "UNKNOWN";
}

const char* cause_name(Cause c) {
  switch (c) {
    case Cause::none:
      return "";
    case Cause::dram:
      return "DRAM";
    case Cause::l2:
      return "L2";
    case Cause::l1:
      return "L1/shared";
    case Cause::memory_level_unknown:
      return "memory level not measured";
    case Cause::tensor_pipe:
      return "tensor pipe";
    case Cause::fma_pipe:
      return "FMA pipe";
    case Cause::alu_pipe:
      return "ALU pipe";
    case Cause::fp64_pipe:
      return "FP64 pipe";
    case Cause::pipe_unknown:
      return "pipe not measured";
    case Cause::launch_overhead:
      return "launch/overhead";
    case Cause::grid_below_one_wave:
      return "grid below one wave";
    case Cause::occupancy:
      return "occupancy limited";
    case Cause::stalls:
      return "stalls";
  }
  return "";
}

const char* limiter_name(Limiter l) {
  switch (l) {
    case Limiter::none:
      return "";
    case Limiter::registers:
      return "registers";
    case Limiter::shared_memory:
      return "shared memory";
    case Limiter::warps:
      return "warps per SM";
    case Limiter::blocks:
      return "blocks per SM";
  }
  return "";
}

namespace {
// The cause whose percentage is highest among those measured; `none` when none is; the highest
// percentage in `pct`.
Cause busiest(std::initializer_list<std::pair<Cause, std::optional<double>>> units, Cause none,
              double& pct) {
  Cause best = none;
  pct = -1;
  for (const auto& [c, p] : units)
    if (p && *p > pct) {
      pct = *p;
      best = c;
    }
  return best;
}
}  // namespace

Cause busiest_memory_level(const KernelEvidence& k) {
  double v = 0;
  const Cause best = busiest({{Cause::dram, k.dram_pct}, {Cause::l2, k.l2_pct}, {Cause::l1, k.l1_pct}},
                             Cause::memory_level_unknown, v);
  if (best != Cause::dram && k.dram_pct &&
      *k.dram_pct >= v - default_thresholds().dram_margin_points)
    return Cause::dram;  // the L2 traffic is the DRAM traffic passing through (Thresholds)
  return best;
}

Cause busiest_pipe(const KernelEvidence& k) {
  double v = 0;
  return busiest({{Cause::tensor_pipe, k.tensor_pipe_pct}, {Cause::fma_pipe, k.fma_pipe_pct},
                  {Cause::alu_pipe, k.alu_pipe_pct}, {Cause::fp64_pipe, k.fp64_pipe_pct}},
                 k.tensor_op ? Cause::tensor_pipe : Cause::pipe_unknown, v);
}

bool operand_staging(const KernelEvidence& k, const Thresholds& t) {
  if (busiest_memory_level(k) != Cause::l1 || (!k.dram_pct && !k.l2_pct)) return false;
  for (const auto& p : {k.tensor_pipe_pct, k.fma_pipe_pct, k.alu_pipe_pct, k.fp64_pipe_pct})
    if (p && *p >= t.roof_pct) return true;
  return false;
}

Limiter occupancy_limiter(const KernelEvidence& k) {
  Limiter best = Limiter::none;
  double v = 1e300;
  for (auto [l, p] :
       {std::pair{Limiter::registers, k.limit_registers},
        std::pair{Limiter::shared_memory, k.limit_shared_mem},
        std::pair{Limiter::warps, k.limit_warps}, std::pair{Limiter::blocks, k.limit_blocks}})
    if (p && *p < v) {
      v = *p;
      best = l;
    }
  return best;
}

Decision decide(const KernelEvidence& k, const Thresholds& t) {
  // LAB 06 BEGIN decide: uncoalesced, near the roof, memory, compute, else latency and its cause (about 30 lines)
  if (!k.sm_pct || !k.mem_pct) return {};
  const double sm = *k.sm_pct;
  double mem = *k.mem_pct;
  const bool compute_busy = sm >= t.high_throughput_pct && sm > mem;
  bool scattered = false;
  if (k.load_efficiency_pct)
    scattered = *k.load_efficiency_pct < t.low_load_efficiency_pct;
  else if (k.sectors_per_request)
    scattered = *k.sectors_per_request > t.max_sectors_per_request;
  if (scattered && !compute_busy) return {Bound::uncoalesced, Cause::none, Limiter::none};
  // A pipe at its roof fed from L1 / shared memory (a tiled GEMM stages its operand tiles there):
  // that traffic is the pipe's operand feed, so the memory that can bound the kernel is off-chip.
  if (operand_staging(k, t)) mem = std::max(k.dram_pct.value_or(0), k.l2_pct.value_or(0));
  if (sm >= t.roof_pct && mem >= t.roof_pct) return {Bound::near_roof, Cause::none, Limiter::none};
  if (mem >= t.high_throughput_pct && mem >= sm)
    return {Bound::memory, busiest_memory_level(k), Limiter::none};
  if (sm >= t.high_throughput_pct) return {Bound::compute, busiest_pipe(k), Limiter::none};
  // Both below the line: the GPU is waiting. Why, most specific first.
  if (k.duration_s && k.launch_gap_s && *k.duration_s * 1e6 < t.short_kernel_us &&
      *k.launch_gap_s >= t.launch_gap_ratio * *k.duration_s)
    return {Bound::latency, Cause::launch_overhead, Limiter::none};
  if (k.waves_per_sm && *k.waves_per_sm < t.min_waves)
    return {Bound::latency, Cause::grid_below_one_wave, Limiter::none};
  if (k.theoretical_occupancy_pct && *k.theoretical_occupancy_pct < t.low_occupancy_pct)
    return {Bound::latency, Cause::occupancy, occupancy_limiter(k)};
  return {Bound::latency, Cause::stalls, Limiter::none};
  // LAB 06 END decide
}

// ------------------------------------------------------------------------------ the verdict
std::string Classification::label() const {
  return detail.empty() ? verdict : verdict + " (" + detail + ")";
}

namespace {

std::vector<std::string> advice(const Decision& d, const KernelEvidence& k) {
  switch (d.bound) {
    case Bound::uncoalesced:
      return {
          "make neighbouring threads read neighbouring addresses: change the layout (or "
          "transpose through shared memory) so a warp's 32 loads fall in few 32-byte sectors",
          "a gather through an index: sort or group the indices, or load whole rows with "
          "16-byte vectors so each sector fetched is used",
          "check with ncu --section MemoryWorkloadAnalysis_Tables (sectors per request)"};
    case Bound::near_roof:
      return {"both compute and memory are near their roofs: the kernel uses the GPU well",
              "only less work helps: fuse with its neighbours, a lower precision (fp8, int8), or "
              "an algorithm that needs fewer FLOPs and bytes"};
    case Bound::memory:
      if (d.cause == Cause::l2)
        return {
            "the L2 is the busiest unit: improve locality so blocks reuse data from L1 / "
            "shared memory instead of re-reading it from L2 (tile the loop, keep a block's "
            "working set in shared memory)",
            "fewer bytes per result: fuse, or keep operands in registers"};
      if (d.cause == Cause::l1)
        return {
            "L1 / shared memory is the busiest unit: vectorize shared-memory accesses, pad "
            "arrays to avoid bank conflicts, keep reused values in registers"};
      return {
          "move fewer bytes: fuse with the op before or after it (one trip through DRAM "
          "instead of two), keep tensors in a narrower dtype (bf16/fp16/fp8)",
          "reach the bandwidth that is there: 16-byte vector loads, enough loads in flight "
          "(several per thread), a grid that covers every SM",
          "at the DRAM roof, no kernel tuning beats the bytes / P time: only fewer bytes do"};
    case Bound::compute:
      if (d.cause == Cause::tensor_pipe)
        return {"the tensor cores are the limit: a lower precision (fp8) doubles the roof",
                "otherwise remove FLOPs: skip padding, avoid recomputation"};
      if (d.cause == Cause::fma_pipe)
        return {
            "the FP32 FMA pipe is the limit: express the work as a matrix product so it runs "
            "on the tensor cores, or use packed half2/bf16x2 math",
            "remove redundant arithmetic (hoist invariants out of loops, precompute tables)"};
      if (d.cause == Cause::alu_pipe)
        return {
            "integer / logic instructions dominate (index math, comparisons): 32-bit indices, "
            "strength-reduce divisions and modulos, hoist address computation out of loops"};
      return {"find the busy pipe: ncu --section ComputeWorkloadAnalysis",
              "remove instructions, or move the math to a faster pipe (tensor cores)"};
    case Bound::latency:
      switch (d.cause) {
        case Cause::launch_overhead:
          return {
              "the launch gaps cost as much as the kernel: capture the step as a CUDA graph "
              "(one launch for all of it), fuse small kernels, enable programmatic dependent "
              "launch",
              "batch more work per launch (more sequences per step)"};
        case Cause::grid_below_one_wave:
          return {
              "the grid does not fill the GPU once: more, smaller blocks (split the work: "
              "split-K, more partitions, a block per row instead of per matrix)",
              "or batch more requests into the launch; a persistent kernel only helps once "
              "there is enough work"};
        case Cause::occupancy:
          if (d.limiter == Limiter::registers)
            return {
                "registers limit how many warps fit: __launch_bounds__(threads, minBlocks) or "
                "fewer live values per thread",
                "or give each warp more independent work (ILP) so fewer warps suffice"};
          if (d.limiter == Limiter::shared_memory)
            return {
                "shared memory per block limits blocks per SM: smaller tiles, fewer pipeline "
                "stages or buffers, or share one buffer",
                "or make each block do more independent loads (ILP) so one block per SM "
                "still hides the latency"};
          return {
              "block size and blocks per SM limit occupancy: try a different block size "
              "(ncu Occupancy section shows the curve)",
              "or more independent work per thread"};
        default:
          return {
              "the warps wait on memory or on each other: more independent work per thread "
              "(unroll, several loads in flight before the first use), prefetch",
              "find the stall reason: ncu --section WarpStateStats --section SourceCounters"};
      }
    case Bound::unknown:
      break;
  }
  (void)k;
  return {
      "not enough evidence: profile with scripts/profile_ncu.sh (speed-of-light counters), "
      "or give the roof (--peak-bw, --peak-flops) with a trace"};
}

}  // namespace

Classification classify(const KernelEvidence& in, const Roof& roof, const Thresholds& t) {
  KernelEvidence k = in;
  Classification c;
  const double peak = k.tensor_op ? roof.peak_flops : roof.fma_or_peak();
  if (k.bytes && k.duration_s)
    c.roofline = roofline_point(k.flops.value_or(0), *k.bytes, *k.duration_s, peak, roof.peak_bw);
  // No speed-of-light counters (a trace): the roofline stands in for them.
  bool stand_in = false;
  if ((!k.sm_pct || !k.mem_pct) && c.roofline.valid && roof.peak_bw > 0) {
    const double flops = k.flops.value_or(0);
    if (flops <= 0 || peak > 0) {
      k.mem_pct = 100.0 * c.roofline.achieved_bw / roof.peak_bw;
      k.dram_pct = k.mem_pct;
      k.sm_pct = flops <= 0 ? 0.0 : 100.0 * c.roofline.achieved_flops / peak;
      stand_in = true;
    }
  }
  c.decision = decide(k, t);
  c.sm_pct = k.sm_pct;
  c.mem_pct = k.mem_pct;
  c.sol_from_roofline = stand_in;
  c.verdict = bound_name(c.decision.bound);
  c.detail = cause_name(c.decision.cause);
  if (c.decision.cause == Cause::occupancy && c.decision.limiter != Limiter::none)
    c.detail = std::string("occupancy limited by ") + limiter_name(c.decision.limiter);

  auto& ev = c.evidence;
  if (stand_in)
    ev.push_back("no speed-of-light counters: memory = achieved bandwidth / P (" + pct(*k.mem_pct) +
                 "), compute = FLOP rate / peak (" + pct(*k.sm_pct) + "), from " +
                 (k.bytes_source.empty() ? "the cost model" : k.bytes_source));
  if (k.sm_pct && k.mem_pct) {
    std::string s = "speed of light: compute (SM) " + pct(*k.sm_pct) + ", memory " +
                    pct(*k.mem_pct) + " of peak";
    const double hi = std::max(*k.sm_pct, *k.mem_pct);
    if (hi < t.high_throughput_pct)
      s += ": both below " + num(t.high_throughput_pct) + "%, the units wait (latency)";
    else if (*k.mem_pct >= *k.sm_pct)
      s += ": memory is the busier unit";
    else
      s += ": compute is the busier unit";
    if (hi >= t.roof_pct) s += " (at its roof: >= " + num(t.roof_pct) + "%)";
    ev.push_back(s);
  } else {
    ev.push_back(
        "no speed-of-light numbers (ncu's sm__throughput / gpu__compute_memory_throughput, "
        "or bytes + time + the roof): cannot classify");
  }
  if (!stand_in && (k.dram_pct || k.l2_pct || k.l1_pct))
    ev.push_back("memory units: DRAM " + pct(k.dram_pct) + ", L2 " + pct(k.l2_pct) + ", L1 " +
                 pct(k.l1_pct));
  if (k.tensor_pipe_pct || k.fma_pipe_pct || k.alu_pipe_pct || k.fp64_pipe_pct)
    ev.push_back("pipes: tensor " + pct(k.tensor_pipe_pct) + ", FMA " + pct(k.fma_pipe_pct) +
                 ", ALU " + pct(k.alu_pipe_pct) + ", FP64 " + pct(k.fp64_pipe_pct));
  if (k.load_efficiency_pct || k.sectors_per_request) {
    std::string s = "global loads:";
    if (k.load_efficiency_pct)
      s += " " + pct(*k.load_efficiency_pct) + " of each fetched 32-byte sector used";
    if (k.sectors_per_request) s += " (" + num(*k.sectors_per_request) + " sectors per request)";
    ev.push_back(s);
  }
  if (k.grid_size || k.waves_per_sm) {
    std::string s = "grid:";
    if (k.grid_size) s += " " + num(*k.grid_size) + (*k.grid_size == 1 ? " block" : " blocks");
    if (k.block_size) s += " of " + num(*k.block_size) + " threads";
    if (k.waves_per_sm)
      s += ", " + fmt(*k.waves_per_sm < 0.1 ? "%.2g" : "%.2f", *k.waves_per_sm) + " waves";
    if (k.sm_count) s += " on " + num(*k.sm_count) + " SMs";
    ev.push_back(s);
  }
  if (k.theoretical_occupancy_pct || k.achieved_occupancy_pct) {
    std::string s = "occupancy: theoretical " + pct(k.theoretical_occupancy_pct) + ", achieved " +
                    pct(k.achieved_occupancy_pct);
    if (k.limit_registers || k.limit_shared_mem || k.limit_warps || k.limit_blocks) {
      auto lim = [](const std::optional<double>& v) { return v ? num(*v) : std::string("n/a"); };
      s += "; blocks/SM allowed by registers " + lim(k.limit_registers) + ", shared memory " +
           lim(k.limit_shared_mem) + ", warps " + lim(k.limit_warps) + ", block limit " +
           lim(k.limit_blocks);
    }
    if (k.registers_per_thread) s += "; " + num(*k.registers_per_thread) + " registers/thread";
    if (k.shared_mem_per_block && *k.shared_mem_per_block > 0)
      s += ", " + si(*k.shared_mem_per_block, "B") + " shared/block";
    ev.push_back(s);
  }
  if (k.duration_s) {
    std::string s = "duration " + us(*k.duration_s) + " per launch";
    if (k.launches > 1) s += " x " + std::to_string(k.launches) + " launches";
    if (k.launch_gap_s) s += "; median idle gap before a launch " + us(*k.launch_gap_s);
    ev.push_back(s);
  }
  if (c.roofline.valid) {
    std::string s = "roofline: " + si(k.bytes.value_or(0), "B") + ", " +
                    si(k.flops.value_or(0), "FLOP") + " per launch";
    if (!k.bytes_source.empty()) s += " (bytes: " + k.bytes_source + ")";
    if (k.tensor_op && k.flops_source.rfind("SASS", 0) == 0)
      s += " (FLOPs: the SASS counters, which miss tensor-core work: give the cost model "
           "--preset/--batch/--context, or read the tensor pipe %)";
    s += "; " + num(c.roofline.intensity) + " FLOP/byte, " + num(c.roofline.achieved_bw / 1e9) +
         " GB/s, " + num(c.roofline.achieved_flops / 1e12) + " TFLOP/s";
    if (c.roofline.pct_of_roof > 0) {
      s += "; " + pct(c.roofline.pct_of_roof) + " of the roof";
      if (c.roofline.ridge > 0)
        s += std::string(c.roofline.memory_side ? " (memory side" : " (compute side") +
             " of the ridge at " + num(c.roofline.ridge) + " FLOP/byte)";
    } else if (roof.peak_bw <= 0) {
      s += " (no roof: give --peak-bw / --peak-flops for % of roof)";
    }
    ev.push_back(s);
  }
  c.recommendations = advice(c.decision, k);
  return c;
}

// ------------------------------------------------------------------------------ the seed's tree
const char* seed_verdict_name(SeedVerdict v) {
  switch (v) {
    case SeedVerdict::compute_bound:
      return "COMPUTE BOUND";
    case SeedVerdict::memory_bound:
      return "MEMORY BOUND";
    case SeedVerdict::occupancy_limited:
      return "OCCUPANCY LIMITED";
    case SeedVerdict::uncoalesced:
      return "UNCOALESCED MEMORY ACCESS";
    case SeedVerdict::well_optimized:
      return "WELL OPTIMIZED";
    case SeedVerdict::latency_bound:
      return "LATENCY BOUND";
  }
  return "?";
}

SeedVerdict seed_classify(const SeedMetrics& m) {
  // Exactly the seed's order and thresholds. The first test is the bug: low SM throughput is
  // called compute-bound, whatever the memory does.
  if (m.sm_utilization < 50) return SeedVerdict::compute_bound;
  if (m.memory_utilization > 80) return SeedVerdict::memory_bound;
  if (m.occupancy < 30) return SeedVerdict::occupancy_limited;
  if (m.load_efficiency < 60) return SeedVerdict::uncoalesced;
  return SeedVerdict::well_optimized;
}

SeedVerdict seed_classify_fixed(const SeedMetrics& m, const Thresholds& t) {
  // LAB 06 BEGIN fix_seed: the seed's four inputs, in the order of decide() (about 12 lines)
  const double sm = m.sm_utilization, mem = m.memory_utilization;
  const bool compute_busy = sm >= t.high_throughput_pct && sm > mem;
  if (m.load_efficiency < t.low_load_efficiency_pct && !compute_busy)
    return SeedVerdict::uncoalesced;
  if (sm >= t.roof_pct && mem >= t.roof_pct) return SeedVerdict::well_optimized;
  if (mem >= t.high_throughput_pct && mem >= sm) return SeedVerdict::memory_bound;
  if (sm >= t.high_throughput_pct) return SeedVerdict::compute_bound;
  if (m.occupancy < t.seed_low_occupancy_pct) return SeedVerdict::occupancy_limited;
  return SeedVerdict::latency_bound;
  // LAB 06 END fix_seed
}

KernelEvidence evidence_from_seed(const SeedMetrics& m, const std::string& name) {
  KernelEvidence k;
  k.name = k.full_name = name;
  k.source = "seed";
  k.sm_pct = m.sm_utilization;
  k.mem_pct = m.memory_utilization;
  k.achieved_occupancy_pct = m.occupancy;
  k.load_efficiency_pct = m.load_efficiency;
  return k;
}

}  // namespace day18
