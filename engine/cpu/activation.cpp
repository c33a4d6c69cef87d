#include "engine/cpu/activation.h"

#include <cmath>

namespace day18::cpu {

void silu_and_mul(const Tensor& out, const Tensor& input) {
  const int64_t num_tokens = out.size(0), d = out.size(1);
  dispatch_float(input.dtype(), [&]<typename T>() {
    const T* in = input.ptr<T>();
    T* o = out.ptr<T>();
    for (int64_t t = 0; t < num_tokens; ++t) {
      const T* gate = in + t * 2 * d;
      const T* up = gate + d;
      for (int64_t j = 0; j < d; ++j) {
        const double g = to_float(gate[j]);
        const double silu = g / (1.0 + std::exp(-g));
        o[t * d + j] = from_float<T>(static_cast<float>(silu * to_float(up[j])));
      }
    }
  });
}

}  // namespace day18::cpu
