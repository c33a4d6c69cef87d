#include "engine/cpu/linear.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace day18::cpu {
namespace {

// Four independent partial sums: the same double result up to rounding, ~4x the throughput of
// one serial chain of dependent adds.
double dot(const double* a, const double* b, int64_t k) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= k; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < k; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

template <typename T>
void to_double(const T* src, double* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
}

}  // namespace

void linear(const Tensor& out, const Tensor& input, const Tensor& weight) {
  const int64_t M = input.size(0), K = input.size(1), N = weight.size(0);
  if (M == 0 || N == 0) return;
  dispatch_float(input.dtype(), [&]<typename T>() {
    const T* x = input.ptr<T>();
    const T* w = weight.ptr<T>();
    T* o = out.ptr<T>();
    std::vector<double> xd(M * K);  // the activations, converted once (M is small: tokens)
    to_double(x, xd.data(), M * K);

    // Each worker owns a contiguous range of output columns n (rows of weight).
    auto work = [&](int64_t n_begin, int64_t n_end) {
      constexpr int64_t kBlock = 16;  // weight rows converted at a time (16 x K doubles)
      std::vector<double> wd(kBlock * K);
      for (int64_t n0 = n_begin; n0 < n_end; n0 += kBlock) {
        const int64_t nb = std::min(kBlock, n_end - n0);
        to_double(w + n0 * K, wd.data(), nb * K);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t j = 0; j < nb; ++j)
            o[m * N + n0 + j] =
                from_float<T>(static_cast<float>(dot(xd.data() + m * K, wd.data() + j * K, K)));
      }
    };
    const double macs = static_cast<double>(M) * N * K;
    const int64_t hw = std::max(1u, std::thread::hardware_concurrency());
    const int64_t workers = macs < 1e7 ? 1 : std::min<int64_t>({hw, N, 16});
    if (workers == 1) return work(0, N);
    std::vector<std::thread> pool;
    const int64_t chunk = (N + workers - 1) / workers;
    for (int64_t i = 0; i < workers; ++i) {
      const int64_t b = i * chunk, e = std::min(N, b + chunk);
      if (b < e) pool.emplace_back(work, b, e);
    }
    for (auto& th : pool) th.join();
  });
}

}  // namespace day18::cpu
