// Placeholder: the embedding family registers its ops here.
#include "engine/ops/registry.h"

namespace day18 {
void register_embedding_ops(OpRegistry&) {}
}  // namespace day18
