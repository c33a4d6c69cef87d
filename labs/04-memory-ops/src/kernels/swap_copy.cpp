// generated from engine/kernels/swap_copy.cpp by scripts/make_labs.py (lab 04);
// edit only inside the TODO regions.
#include "engine/core/error.h"  // day18::LabNotImplemented
// swap_blocks through the copy engines: a block mapping coalesced into runs of consecutive
// blocks, then every run in one cudaMemcpyBatchAsync (the batched swap; cache.h). The seed's
// swap, one synchronous cudaMemcpy per block, is cuda::swap_blocks_naive in cache.cu, kept to
// measure it. Lab 04 writes both functions of this file (tasks 4 and 5).
//
// Why it matters: a block of Llama-3-8B's cache is 32 KiB (8 kv heads x 16 tokens x 128 fp16).
// At PCIe 5.0's ~55 GB/s that is 0.6 us of transfer, and each copy costs about as much again to
// set up; a synchronous copy adds the CPU's round trip (~10 us) on top. Batched, the setup is
// paid once per call and the copy engines stream the runs back to back.
#include <cuda_runtime.h>

#include <vector>

#include "engine/core/error.h"
#include "engine/kernels/cache.h"

namespace day18 {

std::vector<BlockRun> coalesce_block_runs(const Tensor& block_mapping) {
  DAY18_REQUIRE(block_mapping.device() == Device::cpu && block_mapping.dtype() == DType::i64 &&
                    block_mapping.dim() == 2 && block_mapping.size(1) == 2,
                "block_mapping: must be a host int64 [num_pairs, 2] tensor, got ",
                block_mapping.describe());
  const int64_t* m = block_mapping.ptr<int64_t>();  // pair i = (m[2i], m[2i + 1])
  const int64_t num_pairs = block_mapping.size(0);
  std::vector<BlockRun> runs;
  // LAB 04 BEGIN swap_runs: a pair extends the last run when both its src and dst follow it, else starts a run (about 10 lines)
  // TODO lab 04 task 4: Coalesce a block mapping into runs of consecutive blocks
  // (labs/04-memory-ops/README.md, Task 4)
  throw ::day18::LabNotImplemented("04", 4, "swap_runs", "labs/04-memory-ops/README.md");
  // LAB 04 END swap_runs
  return runs;
}

}  // namespace day18

namespace day18::cuda {

void swap_runs_copy_engine(const Tensor& src, const Tensor& dst, const std::vector<BlockRun>& runs,
                           size_t block_bytes, cudaStream_t stream) {
  if (runs.empty()) return;
  const char* from = static_cast<const char*>(src.data());
  char* to = static_cast<char*>(dst.data());
  // LAB 04 BEGIN swap_batched: one address and size per run, then one cudaMemcpyBatchAsync (a cudaMemcpyAsync per run on the legacy stream); never wait (about 25 lines)
  // TODO lab 04 task 5: Batched swap_blocks: one cudaMemcpyBatchAsync, no wait per block
  // (labs/04-memory-ops/README.md, Task 5)
  throw ::day18::LabNotImplemented("04", 5, "swap_batched", "labs/04-memory-ops/README.md");
  // LAB 04 END swap_batched
}

}  // namespace day18::cuda
