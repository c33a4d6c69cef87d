// The roofline bottleneck classifier: what limits a kernel, with the evidence that says so and
// what to try. Input: whatever is known about the kernel (KernelEvidence: Nsight Compute's
// counters, or only a trace's durations plus the cost model's bytes and FLOPs); every field is
// optional and the verdict says what it rests on.
//
//   KernelEvidence k = ...;                        // kernel_analysis.h builds these from ncu / a
//   trace Classification c = classify(k, roof); std::puts(c.label().c_str());                  //
//   "MEMORY BOUND (DRAM)" for (auto& e : c.evidence) std::puts(e.c_str());
//
// The decision procedure (decide(); thresholds in ONE table, Thresholds below, and
// docs/kernel_analysis.md):
//   1. UNCOALESCED    global loads use less than 60% of each 32-byte sector they fetch, and the
//                     kernel is not compute-bound: fix the access pattern first.
//   2. NEAR THE ROOF  compute (SM) and memory throughput both >= 80% of peak: both units saturated.
//                     When a pipe is at its roof (>= 80%) and L1 / shared memory is the busiest
//                     memory unit, the L1 traffic is that pipe's operand feed (a tiled GEMM stages
//                     its tiles there): from here on "memory" is the busier of DRAM and L2
//                     (operand_staging; the H200's cuBLAS GEMM: L1 98%, L2 48%, DRAM 20%, tensor
//                     pipe 97% -> COMPUTE BOUND, tensor pipe).
//   3. MEMORY BOUND   memory throughput >= 60% and >= compute: at DRAM, L2 or L1 (the busiest).
//   4. COMPUTE BOUND  compute throughput >= 60%: on the tensor, FMA, ALU or FP64 pipe (the
//   busiest).
//   5. LATENCY BOUND  both below 60% (Nsight Compute's rule): the GPU waits. The cause, in order:
//                     launch/overhead (a few-us kernel whose launch gaps, from a trace, are as
//                     long as it), grid below one wave, occupancy limited (the limiter named),
//                     else stalls (memory or dependency latency not hidden).
//
// The seed's tree (seed_classify) tests "SM utilization < 50" first and calls that COMPUTE BOUND:
// its own example (SM 45.2%, memory 88.5%) comes out COMPUTE BOUND although its memory is the
// busy unit. Low SM throughput alone says nothing; low SM AND low memory throughput is latency.
// seed_classify_fixed is the same four inputs in the right order.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace day18 {

// ---------------------------------------------------------------- the thresholds (ONE table)
struct Thresholds {
  // Speed of light (% of peak): a unit at or above this bounds the kernel; below it on both
  // compute and memory the kernel is latency-bound (Nsight Compute's SOL rule: "achieved compute
  // throughput and/or memory bandwidth below 60.0% of peak typically indicate latency issues").
  double high_throughput_pct = 60;
  // A unit at or above this is at its roof (Nsight Compute: above 80% "work will likely need to
  // be shifted from the most utilized to another unit"); both at once: NEAR THE ROOF.
  double roof_pct = 80;
  // Global load efficiency (bytes used of each sector fetched, %) below this: uncoalesced. The
  // seed's threshold (its target is > 80%).
  double low_load_efficiency_pct = 60;
  // Without the efficiency metric: more sectors per load request than a warp of fully coalesced
  // 16-byte loads needs (32 lanes x 16 B / 32 B = 16) means scattered addresses.
  double max_sectors_per_request = 16;
  // Fewer waves than this: the grid does not fill the GPU once (launch__waves_per_multiprocessor).
  double min_waves = 1;
  // Theoretical occupancy below this (%) is a cause of latency (the seed's target is > 50%).
  double low_occupancy_pct = 50;
  // "A few us": a launch this short can be dominated by launch overhead and gaps.
  double short_kernel_us = 10;
  // Launch-bound: the median idle gap before each launch (trace) >= this x its median duration.
  double launch_gap_ratio = 1;
  // The seed's OCCUPANCY LIMITED threshold (its tree and the fixed tree use it).
  double seed_low_occupancy_pct = 30;
  // Which memory level bounds a memory-bound kernel: every DRAM byte also passes through the L2,
  // so a kernel that streams from DRAM shows the L2 a little busier than the DRAM (the H200's
  // streaming copy: L2 88%, DRAM 83%). DRAM is named when it is within this many points of the
  // busiest level; L2 (or L1) only when it is busier by more.
  double dram_margin_points = 10;
};
const Thresholds& default_thresholds();

// The table as rows (for `day18 classify --thresholds` and the docs).
struct ThresholdRow {
  std::string name;  // the field
  double value;
  std::string unit;
  std::string rule;    // what crossing it means
  std::string source;  // where the number comes from
};
std::vector<ThresholdRow> threshold_table(const Thresholds& t = default_thresholds());

// ---------------------------------------------------------------- what is known about a kernel
struct KernelEvidence {
  std::string name;       // short kernel name ("rms_norm_kernel")
  std::string full_name;  // as the profiler printed it
  std::string what;    // what it is in the step, when the cost model matched it ("layer 0 o_proj")
  std::string source;  // "ncu", "trace"
  int launches = 1;

  // Speed of light, % of peak (Nsight Compute). mem = the busiest memory unit.
  std::optional<double> sm_pct, mem_pct, dram_pct, l2_pct, l1_pct;
  // Pipe utilization, % of peak.
  std::optional<double> tensor_pipe_pct, fma_pipe_pct, alu_pipe_pct, fp64_pipe_pct;
  // Occupancy, % of the SM's warp slots; limiters: blocks per SM each resource allows.
  std::optional<double> achieved_occupancy_pct, theoretical_occupancy_pct;
  std::optional<double> limit_registers, limit_shared_mem, limit_warps, limit_blocks;
  // Launch configuration.
  std::optional<double> waves_per_sm, grid_size, block_size, registers_per_thread,
      shared_mem_per_block, sm_count;
  // Global loads: % of each fetched sector's bytes used, and sectors per request.
  std::optional<double> load_efficiency_pct, sectors_per_request;
  // Per launch (means over `launches`): seconds, bytes through DRAM, FLOPs.
  std::optional<double> duration_s, bytes, flops;
  std::string bytes_source, flops_source;  // "dram__bytes counters", "cost model", ...
  // Total time of all launches (time share in a report).
  std::optional<double> total_s;
  // From a trace: the median idle time of its stream before each launch.
  std::optional<double> launch_gap_s;
  // Uses tensor cores (a pipe counter, or the op is a cuBLAS GEMM): its roof is the tensor peak.
  bool tensor_op = false;
};

// The machine's ceilings (0 = unknown). P is the bandwidth probe's device-to-device copy
// bandwidth (engine/profiling/bandwidth.h); the FLOP peaks are measured too (`day18 calibrate`)
// or given on the command line.
struct Roof {
  double peak_bw = 0;         // bytes/s
  double peak_flops = 0;      // FLOP/s of the tensor cores (GEMMs)
  double peak_fma_flops = 0;  // FLOP/s of the FP32 FMA pipe (0: use peak_flops)
  std::string source;         // where they came from, for the report
  double fma_or_peak() const { return peak_fma_flops > 0 ? peak_fma_flops : peak_flops; }
};

// ---------------------------------------------------------------- roofline arithmetic (lab 06 task
// 2)
struct RooflinePoint {
  bool valid = false;         // bytes and seconds were known
  double intensity = 0;       // FLOP per byte
  double achieved_flops = 0;  // FLOP/s
  double achieved_bw = 0;     // bytes/s
  double ridge = 0;           // FLOP/byte where the memory roof meets the compute roof (0: unknown)
  double attainable = 0;      // FLOP/s the roof allows at this intensity (0: unknown)
  double pct_of_roof = 0;     // achieved / attainable x 100; a kernel without FLOPs: achieved_bw
                              // / peak_bw x 100 (the memory roof is its roof); 0 when unknown
  bool memory_side = false;   // left of the ridge: the memory roof is the one that applies
};
// `flops` and `bytes` per launch, `seconds` per launch; peaks in FLOP/s and bytes/s (0 = unknown).
RooflinePoint roofline_point(double flops, double bytes, double seconds, double peak_flops,
                             double peak_bw);

// ---------------------------------------------------------------- the decision (lab 06 task 3)
enum class Bound { memory, compute, latency, uncoalesced, near_roof, unknown };
enum class Cause {
  none,
  dram,
  l2,
  l1,
  memory_level_unknown,  // memory
  tensor_pipe,
  fma_pipe,
  alu_pipe,
  fp64_pipe,
  pipe_unknown,  // compute
  launch_overhead,
  grid_below_one_wave,
  occupancy,
  stalls,  // latency
};
enum class Limiter { none, registers, shared_memory, warps, blocks };
struct Decision {
  Bound bound = Bound::unknown;
  Cause cause = Cause::none;
  Limiter limiter = Limiter::none;  // Cause::occupancy: which resource
  bool operator==(const Decision&) const = default;
};
// The procedure at the top of this file. Needs sm_pct and mem_pct (ncu), or the roofline stand-ins
// classify() puts there from a trace; without them Bound::unknown.
Decision decide(const KernelEvidence& k, const Thresholds& t = default_thresholds());

const char* bound_name(Bound b);  // "MEMORY BOUND", "COMPUTE BOUND", "LATENCY BOUND", ...
const char* cause_name(Cause c);  // "DRAM", "tensor pipe", "grid below one wave", ...
const char* limiter_name(
    Limiter l);  // "registers", "shared memory", "warps per SM", "blocks per SM"
// The busiest memory unit / pipe of the evidence, and the smallest occupancy limiter.
Cause busiest_memory_level(const KernelEvidence& k);
Cause busiest_pipe(const KernelEvidence& k);
Limiter occupancy_limiter(const KernelEvidence& k);
// True when a pipe is at its roof and L1 / shared memory is the busiest memory unit (DRAM or L2
// known): decide() then judges memory by DRAM and L2 only.
bool operand_staging(const KernelEvidence& k, const Thresholds& t = default_thresholds());

// ---------------------------------------------------------------- the verdict, with evidence
struct Classification {
  Decision decision;
  std::string verdict;  // bound_name()
  std::string detail;   // "DRAM", "occupancy limited by shared memory (1 block/SM)", ...
  std::vector<std::string> evidence;         // the numbers the verdict rests on, one per line
  std::vector<std::string> recommendations;  // what to try, most promising first
  RooflinePoint roofline;
  // The compute and memory throughput (% of peak) the decision used: the counters', or, without
  // them (a trace), the roofline's stand-ins (sol_from_roofline).
  std::optional<double> sm_pct, mem_pct;
  bool sol_from_roofline = false;
  std::string label() const;  // "MEMORY BOUND (DRAM)"
};
// decide() plus the evidence and the advice. Without SOL counters (a trace) the achieved bandwidth
// as % of roof.peak_bw and the FLOP rate as % of the peak stand in for memory and compute
// throughput (and say so in the evidence).
Classification classify(const KernelEvidence& k, const Roof& roof = {},
                        const Thresholds& t = default_thresholds());

// ---------------------------------------------------------------- the seed's classifier, and the
// fix The four numbers of the seed's analyze_kernel_bottleneck(), in %.
struct SeedMetrics {
  double sm_utilization = 0;      // Nsight Compute: Compute (SM) Throughput
  double memory_utilization = 0;  // Memory Throughput
  double occupancy = 0;           // Achieved Occupancy
  double load_efficiency = 0;     // Global Load Efficiency (bytes used per sector)
};
// The seed's example: "# Output: MEMORY BOUND", which its own tree does not print.
inline constexpr SeedMetrics kSeedExample{45.2, 88.5, 62.3, 78.1};

enum class SeedVerdict {
  compute_bound,
  memory_bound,
  occupancy_limited,
  uncoalesced,
  well_optimized,
  latency_bound
};
const char* seed_verdict_name(
    SeedVerdict v);  // "COMPUTE BOUND", ..., "WELL OPTIMIZED", "LATENCY BOUND"

// THE TRAP, faithfully: the seed's decision tree, in its order and with its thresholds:
//   sm < 50 -> COMPUTE BOUND; mem > 80 -> MEMORY BOUND; occupancy < 30 -> OCCUPANCY LIMITED;
//   load efficiency < 60 -> UNCOALESCED; else WELL OPTIMIZED.
// seed_classify(kSeedExample) == compute_bound. Kept to be tested and taught, never used.
SeedVerdict seed_classify(const SeedMetrics& m);
// The same inputs, decided in the right order (lab 06 task 4): uncoalesced (load efficiency <
// 60%, unless compute is the busy unit); both >= 80%: WELL OPTIMIZED (near the roof); memory >=
// 60% and >= SM: MEMORY BOUND; SM >= 60%: COMPUTE BOUND; else latency: OCCUPANCY LIMITED when
// occupancy < 30%, otherwise LATENCY BOUND. seed_classify_fixed(kSeedExample) == memory_bound.
SeedVerdict seed_classify_fixed(const SeedMetrics& m, const Thresholds& t = default_thresholds());
// The seed's four numbers as evidence for classify().
KernelEvidence evidence_from_seed(const SeedMetrics& m, const std::string& name = "seed example");

}  // namespace day18
