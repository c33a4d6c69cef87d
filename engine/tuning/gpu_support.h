// What the three GPU experiments share (engine/tuning/*_experiment.cpp): the roof (P measured in
// this process or read from --roof FILE), provenance, the occupancy of the kernel really
// launched, the finishing of a timed point (% of P, the classifier's verdict), the oracle
// comparison, and the progress line on stderr.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "engine/core/compare.h"
#include "engine/core/tensor.h"
#include "engine/tuning/experiment.h"
#include "engine/tuning/sweep.h"

namespace day18::tuning {

// The options every experiment takes (the CLI's flags).
struct RunOptions {
  bool quick = false;     // --quick: fewer points, smaller shapes (< 90 s on an H200)
  double budget_s = 0;    // --budget-s: the timing budget of the whole run; 0 = the default
  std::string roof_file;  // --roof: `day18 probe --json` / `day18 calibrate --json`
  std::vector<std::string> presets;  // --presets (batch-size): llama-1b, llama-8b
  std::vector<int> batches;          // --batches (batch-size)
  std::string command;               // as typed, for the provenance
  uint64_t seed = 18;
};

// cudaFuncGetAttributes + cudaOccupancyMaxActiveBlocksPerMultiprocessor on `kernel` (a
// __global__ function; its dynamic shared memory limit already raised where the launch needs
// it), with `threads` per block and `dynamic_smem` bytes; waves = grid / (SMs x blocks per SM).
Occupancy occupancy_of(const void* kernel, int threads, size_t dynamic_smem, double grid_blocks);

// The roof: from --roof FILE (read_roof_json: P and the FLOP peaks it has), else measured here:
// P = peak_d2d_bandwidth() (1 GiB D2D copies, bytes moved), the tensor peak from a bf16 cuBLAS
// GEMM of 8192^3, the FMA peak from the calibration FMA loop.
Roof resolve_roof(const std::string& roof_file);

Provenance make_provenance(const std::string& command);

// pct_of_p = bytes / median / P; verdict = classify() on the roofline stand-ins, with the
// occupancy and waves as evidence. No-op for a point that is not timed.
void finish_point(Point& p, const Roof& roof, const std::string& kernel_name, bool tensor_op);

// `device_out` (copied to the host) vs `expected` (host) within `tol`; tolerance reported as
// atol + rtol x max |expected| (the largest error the check allowed anywhere).
CheckResult compare_output(const Tensor& device_out, const Tensor& expected, Tolerance tol);

// "tune block-size [ 3/21] paged_attention v1 ... 256 threads" on stderr (one line per point).
struct Progress {
  std::string what;
  size_t done = 0, total = 0;
  void step(const std::string& label);
};

// The per-point time budget: the run's budget (budget_s, or 240 s / 45 s --quick) over its points.
double point_budget(const RunOptions& o, size_t points);

// The experiments. Each needs a GPU (Error naming `day18 tune show` otherwise).
Experiment run_block_size(const RunOptions& o);
Experiment run_batch_size(const RunOptions& o);
Experiment run_precision(const RunOptions& o);

// Throws Error when there is no usable GPU, naming `what` and `day18 tune show`.
void require_gpu_for(const std::string& what);

}  // namespace day18::tuning
