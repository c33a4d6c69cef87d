// NVTX ranges, all in one domain ("day18") so Nsight Systems can filter the engine's ranges from
// everything else. Names follow the course: Scheduler, PrepareInputs, Launch > ModelExecutor
// (Attention, MLP, Norm per layer), Sampling, Wait, ProcessOutputs.
//
//   { DAY18_NVTX_RANGE("Sampling"); sampler.run(...); }
//
// Each range is also recorded by the engine's own tracer while `day18 trace` records
// (engine/profiling/range_recorder.h: one relaxed atomic load when it does not), so our trace shows
// the same ranges on both backends. `name` must be a string literal (the recorder keeps the
// pointer).
#pragma once

#include <nvtx3/nvtx3.hpp>

#include "engine/profiling/range_recorder.h"

namespace day18 {
struct nvtx_domain {
  static constexpr char const* name{"day18"};
};

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) : nvtx_{name}, recorded_{name} {}

 private:
  nvtx3::scoped_range_in<nvtx_domain> nvtx_;
  trace::ScopedRange recorded_;  // closes first (members are destroyed in reverse order)
};
}  // namespace day18

#define DAY18_NVTX_CONCAT_(a, b) a##b
#define DAY18_NVTX_CONCAT(a, b) DAY18_NVTX_CONCAT_(a, b)
#define DAY18_NVTX_RANGE(name)                                  \
  ::day18::NvtxRange DAY18_NVTX_CONCAT(day18_nvtx_, __LINE__) { \
    name                                                        \
  }
