// Placeholder: the rotary family registers its ops here.
#include "engine/ops/registry.h"

namespace day18 {
void register_rotary_ops(OpRegistry&) {}
}  // namespace day18
