// Placeholder: the cache family registers its ops here.
#include "engine/ops/registry.h"

namespace day18 {
void register_cache_ops(OpRegistry&) {}
}  // namespace day18
