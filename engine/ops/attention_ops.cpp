// Placeholder: the attention family registers its ops here.
#include "engine/ops/registry.h"

namespace day18 {
void register_attention_ops(OpRegistry&) {}
}  // namespace day18
