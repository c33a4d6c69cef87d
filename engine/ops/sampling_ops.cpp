// Placeholder: the sampling family registers its ops here.
#include "engine/ops/registry.h"

namespace day18 {
void register_sampling_ops(OpRegistry&) {}
}  // namespace day18
