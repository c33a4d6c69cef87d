// Linear layer (GEMM) on the CPU: the test oracle and the CPU backend of engine/ops/linear.h.
//   out[m, n] = sum_k input[m, k] * weight[n, k]   (double accumulation, rounded once)
// Both operands are read along k, so each dot product walks two contiguous rows; weight rows are
// converted to double once per block of rows and reused for every input row. Rows of the
// output are split over std::thread (M = 64, K = N = 4096 takes well under a second).
#pragma once

#include "engine/core/tensor.h"

namespace day18::cpu {

void linear(const Tensor& out,      // [M, N]
            const Tensor& input,    // [M, K]
            const Tensor& weight);  // [N, K]

}  // namespace day18::cpu
