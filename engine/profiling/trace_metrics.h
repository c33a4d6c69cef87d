// The metrics a trace analyst reads first, as Holistic Trace Analysis (HTA) reports them, computed
// from a TraceData (trace_events.h): pure functions, one idea each, tested on hand-made event
// lists with exact numbers.
//
//   gpu_busy            GPU busy %: the union of kernel intervals (any stream) over the window
//                       from the GPU's first op to its last (lab 05 task 3)
//   idle_by_cause       each stream's idle gaps, by cause (lab 05 task 4):
//                         host wait   the next op's launch call began after the previous op ended:
//                                     the GPU had nothing queued; the CPU was late
//                         kernel gap  queued in time, and the gap is at most the threshold: the
//                                     cost of starting the next op (launch latency)
//                         other       queued in time, longer gap: waiting for an event of another
//                                     stream (compute waits for h2d_done), a host sync, ...
//   h2d_compute_overlap how much H2D copy time ran while a kernel ran; and whether step N+1's H2D
//                       ran during step N's compute (lab 05 task 5)
//   time_per_range      time per engine range (CPU; GPU time of the work launched inside it)
//                       as a share of the traced wall time, against the seed's ideal profile:
//                       Scheduler 2-5%, ModelExecutor 85-90% (Attention 40-50%, MLP 30-40%,
//                       other 10-20% of it), Sampling 3-5%
//   top_kernels         kernels by total time
//   launch_overhead     kernels that ran shorter than the API call that launched them
//   per_step            each step's CPU stages and GPU span
// compute_metrics() runs them all; format_metrics() is the table `day18 trace` prints, to_json()
// the metrics file it writes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/profiling/trace_events.h"

namespace day18::trace {

// ---- interval tools ----------------------------------------------------------------------------
struct Interval {
  int64_t start_ns = 0, end_ns = 0;
};
// Sorted, disjoint intervals covering exactly the same time (touching intervals are joined).
std::vector<Interval> merge_intervals(std::vector<Interval> v);
// Summed lengths (of disjoint intervals: their union's length).
int64_t total_ns(const std::vector<Interval>& v);
// The time two sets of merged intervals share.
int64_t shared_ns(const std::vector<Interval>& a, const std::vector<Interval>& b);
// The intervals of the activities of `device` that pass `keep`.
template <typename Keep>
std::vector<Interval> intervals_of(const TraceData& data, uint32_t device, Keep keep) {
  std::vector<Interval> v;
  for (const Activity& a : data.activities)
    if (a.on_gpu() && a.device == device && keep(a)) v.push_back({a.start_ns, a.end_ns});
  return v;
}
// The devices that ran something, in order.
std::vector<uint32_t> devices_with_activity(const TraceData& data);

// ---- GPU busy ----------------------------------------------------------------------------------
struct BusyStats {
  uint32_t device = 0;
  int64_t window_ns = 0;       // first GPU op start .. last GPU op end (kernels, copies, memsets)
  int64_t kernel_ns = 0;       // the union of kernel intervals, any stream (overlaps counted once)
  int64_t active_ns = 0;       // the union of every GPU op's interval
  double busy_fraction = 0;    // kernel_ns / window_ns: "GPU busy"
  double active_fraction = 0;  // active_ns / window_ns
};
BusyStats gpu_busy(const TraceData& data, uint32_t device);

// ---- idle time by cause ------------------------------------------------------------------------
// Gaps up to this long between ops that were queued in time count as "kernel gap". Queued kernels
// start 1-3 us apart on current GPUs; HTA's own default is 30 (its consecutive_kernel_delay).
inline constexpr int64_t kKernelGapThresholdNs = 5'000;
struct StreamIdle {
  uint32_t device = 0, stream = 0;
  std::string name;
  int64_t ops = 0;
  int64_t span_ns = 0;  // first op start .. last op end on this stream
  int64_t busy_ns = 0;  // its ops' durations
  int64_t idle_ns = 0;  // the gaps between them: host_wait + kernel_gap + other
  int64_t host_wait_ns = 0, kernel_gap_ns = 0, other_ns = 0;
  int64_t gaps = 0;  // gaps > 0
};
// One entry per (device, stream) that ran ops, in device, then stream order. `links`:
// link_gpu_activities(data).
std::vector<StreamIdle> idle_by_cause(const TraceData& data, const std::vector<GpuLink>& links,
                                      int64_t kernel_gap_threshold_ns = kKernelGapThresholdNs);

// ---- H2D / compute overlap ---------------------------------------------------------------------
struct Overlap {
  int64_t h2d_copies = 0;
  int64_t h2d_ns = 0;                // summed durations of the HtoD copies
  int64_t h2d_under_compute_ns = 0;  // of which a kernel of the same GPU was running
  double fraction = 0;               // h2d_under_compute_ns / h2d_ns
  // Consecutive steps N, N+1 where N ran kernels and N+1 an H2D copy (steps from `links`), and
  // of those, the pairs where an H2D copy of N+1 ran during N's compute span (N's first kernel
  // start .. last kernel end): the pipeline's overlap, read off the trace.
  int64_t step_pairs = 0, step_pairs_overlapped = 0;
};
Overlap h2d_compute_overlap(const TraceData& data, const std::vector<GpuLink>& links);

// ---- time per engine range vs the seed's ideal profile -----------------------------------------
struct RangeShare {
  std::string name;
  int64_t count = 0;
  int64_t cpu_ns = 0;       // summed durations of the range on the CPU threads
  int64_t gpu_ns = 0;       // union of the GPU ops launched inside it (0 on the CPU backend)
  bool on_gpu = false;      // the share is of gpu_ns (it launched GPU work), else of cpu_ns
  double share = 0;         // of the traced wall time
  double model_share = -1;  // nested in ModelExecutor: share of ModelExecutor's time (-1: not)
  // The seed's ideal (percent; lo < 0: none) and where this one is: "below", "within", "above".
  double ideal_lo = -1, ideal_hi = -1;
  bool ideal_of_model = false;  // the ideal is a share of ModelExecutor's time (Attention, MLP)
  std::string verdict;
};
struct Profile {
  int64_t wall_ns = 0;             // everything recorded: first range or op start .. last end
  std::vector<RangeShare> ranges;  // stage order (Scheduler, PrepareInputs, Launch, ModelExecutor,
                                   // Attention, MLP, Norm, Sampling, Wait, ProcessOutputs), then
                                   // the others; plus "(model: other)" = ModelExecutor - Attention
                                   // - MLP, the seed's "other kernels"
};
Profile time_per_range(const TraceData& data, const std::vector<GpuLink>& links);

// ---- kernels -----------------------------------------------------------------------------------
struct KernelStat {
  std::string name;
  int64_t count = 0, total_ns = 0, min_ns = 0, max_ns = 0;
  double mean_ns = 0, share = 0;  // share of all kernel time
};
std::vector<KernelStat> top_kernels(const TraceData& data, size_t n);

struct LaunchStats {
  int64_t kernels = 0;
  int64_t launched = 0;             // with their launch call in the trace
  int64_t shorter_than_launch = 0;  // kernel duration < its launch call's duration
  double fraction = 0;              // shorter_than_launch / launched
  double median_launch_ns = 0, median_kernel_ns = 0;
  double median_queue_ns = 0;  // launch call start -> kernel start
};
LaunchStats launch_overhead(const TraceData& data, const std::vector<GpuLink>& links);

// ---- per step ----------------------------------------------------------------------------------
struct StepStats {
  int64_t step = -1;
  int64_t cpu_start_ns = 0, cpu_end_ns = 0;  // its top-level CPU ranges
  std::map<std::string, int64_t> stage_ns;   // top-level range name -> summed duration
  bool complete = false;  // has all of Scheduler, PrepareInputs, Launch, Wait, ProcessOutputs
  int64_t kernels = 0;
  int64_t gpu_start_ns = 0, gpu_end_ns = 0;  // its kernels' span (0, 0: none)
  int64_t kernel_ns = 0;                     // their union
  int64_t h2d_ns = 0, d2h_ns = 0;
};
std::vector<StepStats> per_step(const TraceData& data, const std::vector<GpuLink>& links);

// ---- all of it ---------------------------------------------------------------------------------
struct MetricsOptions {
  int64_t kernel_gap_threshold_ns = kKernelGapThresholdNs;
  size_t top_kernels = 10;
};
struct TraceMetrics {
  bool has_gpu = false;  // the trace holds GPU records (else: CPU ranges only)
  int64_t ranges = 0, activities = 0, dropped_records = 0;
  std::vector<BusyStats> busy;  // one per device
  std::vector<StreamIdle> idle;
  Overlap overlap;
  Profile profile;
  std::vector<KernelStat> kernels;
  LaunchStats launch;
  std::vector<StepStats> steps;
  int64_t kernel_gap_threshold_ns = kKernelGapThresholdNs;
};
TraceMetrics compute_metrics(const TraceData& data, const MetricsOptions& options = {});
nlohmann::json to_json(const TraceMetrics& m);
// The table `day18 trace` prints.
std::string format_metrics(const TraceMetrics& m);

}  // namespace day18::trace
