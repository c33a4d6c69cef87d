// CPU oracle of the sampling family. One row at a time:
//   greedy (T = 0): first index of the largest logit.
//   otherwise: s_i = (logit_i - max) / T, mass_i = exp(s_i) (double);
//     top-k: threshold v_k = k-th largest logit (std::nth_element); keep logit >= v_k (ties kept)
//     top-p: sort the top-k set descending (std::sort), prefix-sum its mass in double, find the
//            first position j whose inclusive prefix reaches p * (its total); keep logit >= v_j
//     sample: Gumbel-max over the kept set with the Philox numbers of (seed, offset, i).
//   a row with a NaN or +inf logit: no distribution; token -1, probs all NaN (see
//   engine/kernels/sampling.h, "Non-finite logits"), checked before anything else.
#include "engine/cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/kernels/philox.h"

namespace day18::cpu {
namespace {

std::vector<float> row_values(const Tensor& logits, int64_t r) {
  const int64_t vocab = logits.size(1);
  std::vector<float> v(static_cast<size_t>(vocab));
  dispatch_float(logits.dtype(), [&]<typename T>() {
    const T* p = logits.ptr<T>() + r * vocab;
    for (int64_t i = 0; i < vocab; ++i) v[static_cast<size_t>(i)] = to_float(p[i]);
  });
  return v;
}

// NaN or +inf anywhere: the row has no distribution (-inf is a mask and is fine).
bool has_nan_or_pos_inf(const std::vector<float>& v) {
  for (float x : v)
    if (!(x <= std::numeric_limits<float>::max())) return true;
  return false;
}

void fill_nan(float* out, int64_t n) {
  std::fill(out, out + n, std::numeric_limits<float>::quiet_NaN());
}

int argmax_row(const std::vector<float>& v) {
  int best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[static_cast<size_t>(best)]) best = static_cast<int>(i);
  return best;
}

bool is_greedy(float t) {
  return !(t > 0.f);
}

double mass_of(float v, float max, double t) {
  return std::exp((static_cast<double>(v) - static_cast<double>(max)) / t);
}

// The smallest kept logit: a token is kept iff its logit >= this value (-inf keeps everything).
float kept_threshold(const std::vector<float>& v, float max, double t, int top_k, float top_p) {
  const int64_t vocab = static_cast<int64_t>(v.size());
  float thr = -std::numeric_limits<float>::infinity();
  if (top_k > 0 && top_k < vocab) {
    std::vector<float> c = v;
    std::nth_element(c.begin(), c.begin() + (top_k - 1), c.end(), std::greater<float>());
    thr = c[static_cast<size_t>(top_k - 1)];
  }
  if (top_p < 1.f) {
    std::vector<std::pair<float, int>> kept;  // (logit, index) of the top-k set
    for (int64_t i = 0; i < vocab; ++i)
      if (v[static_cast<size_t>(i)] >= thr) kept.emplace_back(v[static_cast<size_t>(i)], i);
    if (kept.empty()) return thr;  // unreachable for finite/-inf rows (callers filter NaN/+inf)
    std::sort(kept.begin(), kept.end(), [](auto& a, auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    std::vector<double> mass(kept.size());
    double total = 0;
    for (size_t j = 0; j < kept.size(); ++j) total += mass[j] = mass_of(kept[j].first, max, t);
    const double target = static_cast<double>(top_p) * total;
    size_t jstar = kept.size() - 1;
    double run = 0;
    for (size_t j = 0; j < kept.size(); ++j) {
      run += mass[j];
      if (run >= target) {
        jstar = j;
        break;
      }
    }
    thr = kept[jstar].first;
  }
  return thr;
}

struct RowParams {
  float t;
  int top_k;
  float top_p;
};

RowParams params(const Tensor& temperature, const Tensor& top_k, const Tensor& top_p, int64_t r) {
  return {temperature.ptr<float>()[r], top_k.ptr<int32_t>()[r],
          std::clamp(top_p.ptr<float>()[r], std::numeric_limits<float>::min(), 1.f)};
}

}  // namespace

void softmax(const Tensor& probs, const Tensor& logits, const Tensor& temperature, cudaStream_t) {
  const int64_t batch = logits.size(0), vocab = logits.size(1);
  for (int64_t r = 0; r < batch; ++r) {
    const std::vector<float> v = row_values(logits, r);
    float* out = probs.ptr<float>() + r * vocab;
    if (has_nan_or_pos_inf(v)) {
      fill_nan(out, vocab);
      continue;
    }
    const float t = temperature.ptr<float>()[r];
    const int arg = argmax_row(v);
    const float max = v[static_cast<size_t>(arg)];
    if (is_greedy(t) || max == -std::numeric_limits<float>::infinity()) {
      for (int64_t i = 0; i < vocab; ++i) out[i] = i == arg ? 1.f : 0.f;
      continue;
    }
    double z = 0;
    for (float x : v) z += mass_of(x, max, t);
    for (int64_t i = 0; i < vocab; ++i)
      out[i] = static_cast<float>(mass_of(v[static_cast<size_t>(i)], max, t) / z);
  }
}

void argmax(const Tensor& tokens, const Tensor& logits, cudaStream_t) {
  for (int64_t r = 0; r < logits.size(0); ++r) {
    const std::vector<float> v = row_values(logits, r);
    tokens.ptr<int32_t>()[r] = has_nan_or_pos_inf(v) ? -1 : argmax_row(v);
  }
}

void top_k_top_p_probs(const Tensor& probs, const Tensor& logits, const Tensor& temperature,
                       const Tensor& top_k, const Tensor& top_p, cudaStream_t) {
  const int64_t batch = logits.size(0), vocab = logits.size(1);
  for (int64_t r = 0; r < batch; ++r) {
    const std::vector<float> v = row_values(logits, r);
    const RowParams pr = params(temperature, top_k, top_p, r);
    float* out = probs.ptr<float>() + r * vocab;
    if (has_nan_or_pos_inf(v)) {
      fill_nan(out, vocab);
      continue;
    }
    const int arg = argmax_row(v);
    const float max = v[static_cast<size_t>(arg)];
    if (is_greedy(pr.t) || max == -std::numeric_limits<float>::infinity()) {
      for (int64_t i = 0; i < vocab; ++i) out[i] = i == arg ? 1.f : 0.f;
      continue;
    }
    const float thr = kept_threshold(v, max, pr.t, pr.top_k, pr.top_p);
    double z = 0;
    for (float x : v)
      if (x >= thr) z += mass_of(x, max, pr.t);
    for (int64_t i = 0; i < vocab; ++i) {
      const float x = v[static_cast<size_t>(i)];
      out[i] = x >= thr ? static_cast<float>(mass_of(x, max, pr.t) / z) : 0.f;
    }
  }
}

void sample(const Tensor& tokens, const Tensor& logits, const Tensor& temperature,
            const Tensor& top_k, const Tensor& top_p, const Tensor& seeds, const Tensor& offsets,
            cudaStream_t) {
  const int64_t batch = logits.size(0), vocab = logits.size(1);
  for (int64_t r = 0; r < batch; ++r) {
    const std::vector<float> v = row_values(logits, r);
    const RowParams pr = params(temperature, top_k, top_p, r);
    int32_t& token = tokens.ptr<int32_t>()[r];
    if (has_nan_or_pos_inf(v)) {
      token = -1;
      continue;
    }
    const int arg = argmax_row(v);
    const float max = v[static_cast<size_t>(arg)];
    if (is_greedy(pr.t) || max == -std::numeric_limits<float>::infinity()) {
      token = arg;
      continue;
    }
    const float thr = kept_threshold(v, max, pr.t, pr.top_k, pr.top_p);
    const uint64_t seed = static_cast<uint64_t>(seeds.ptr<int64_t>()[r]);
    const uint64_t offset = static_cast<uint64_t>(offsets.ptr<int64_t>()[r]);
    // Gumbel-max: argmax over kept i of s_i + g_i, g_i = -log(-log(u_i)); ties -> lowest index.
    double best = -std::numeric_limits<double>::infinity();
    int best_i = arg;
    Philox4x32 bits{};
    int64_t group = -1;  // one Philox call serves 4 neighbouring positions
    for (int64_t i = 0; i < vocab; ++i) {
      const float x = v[static_cast<size_t>(i)];
      if (!(x >= thr)) continue;
      if ((i >> 2) != group) {
        group = i >> 2;
        bits = sampling_random_bits(seed, offset, static_cast<uint32_t>(group));
      }
      const double u = uniform_from_bits(bits.v[i & 3]);
      const double key =
          (static_cast<double>(x) - static_cast<double>(max)) / static_cast<double>(pr.t) -
          std::log(-std::log(u));
      if (key > best) {
        best = key;
        best_i = static_cast<int>(i);
      }
    }
    token = best_i;
  }
}

}  // namespace day18::cpu
