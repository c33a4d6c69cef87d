// Embedding lookup on the CPU: the test oracle and the CPU backend of engine/ops/embedding.h.
// Throws InvalidArgument naming token_ids, the index, the value and vocab_size for an id out of
// range (before writing anything).
#pragma once

#include "engine/core/tensor.h"

namespace day18::cpu {

void embedding(const Tensor& out,        // [num_tokens, hidden_size]
               const Tensor& token_ids,  // [num_tokens] int32
               const Tensor& weight);    // [vocab_size, hidden_size]

}  // namespace day18::cpu
