// Placeholder: the activation family registers its ops here.
#include "engine/ops/registry.h"

namespace day18 {
void register_activation_ops(OpRegistry&) {}
}  // namespace day18
