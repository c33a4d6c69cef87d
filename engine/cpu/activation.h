// SiLU-and-mul on the CPU: the test oracle and the CPU backend of engine/ops/activation.h.
#pragma once

#include "engine/core/tensor.h"

namespace day18::cpu {

void silu_and_mul(const Tensor& out,     // [num_tokens, d]
                  const Tensor& input);  // [num_tokens, 2 * d]  gate = [:, :d], up = [:, d:]

}  // namespace day18::cpu
