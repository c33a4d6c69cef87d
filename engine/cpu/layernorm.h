// RMSNorm on the CPU: the test oracle and the CPU backend of engine/ops/layernorm.h.
// Same arguments as the CUDA launchers (engine/kernels/layernorm.h); sums of squares in double.
#pragma once

#include "engine/core/tensor.h"

namespace day18::cpu {

void rms_norm(const Tensor& out,     // [num_tokens, hidden_size]
              const Tensor& input,   // [num_tokens, hidden_size]
              const Tensor& weight,  // [hidden_size]
              double eps);

void fused_add_rms_norm(const Tensor& input,     // [num_tokens, hidden_size]  in: x, out: normed
                        const Tensor& residual,  // [num_tokens, hidden_size]  in: r, out: x + r
                        const Tensor& weight,    // [hidden_size]
                        double eps);

}  // namespace day18::cpu
