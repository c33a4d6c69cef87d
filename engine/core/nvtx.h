// NVTX ranges, all in one domain ("day18") so Nsight Systems and our CUPTI tracer can filter
// the engine's ranges from everything else. Names follow the course: Scheduler, PrepareInputs,
// ModelExecutor (Attention, MLP, Norm per layer), Sampling, ProcessOutputs.
//
//   { DAY18_NVTX_RANGE("Sampling"); sampler.run(...); }
#pragma once

#include <nvtx3/nvtx3.hpp>

namespace day18 {
struct nvtx_domain {
  static constexpr char const* name{"day18"};
};
using NvtxRange = nvtx3::scoped_range_in<nvtx_domain>;
}  // namespace day18

#define DAY18_NVTX_CONCAT_(a, b) a##b
#define DAY18_NVTX_CONCAT(a, b) DAY18_NVTX_CONCAT_(a, b)
#define DAY18_NVTX_RANGE(name) ::day18::NvtxRange DAY18_NVTX_CONCAT(day18_nvtx_, __LINE__){name}
