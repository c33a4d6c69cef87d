// Sampling: softmax, argmax, top_k_top_p_probs and the combined sampler.
//
// What is tested, and why the statistical tests are honest:
//  - Philox4x32-10 reproduces Random123's published known-answer vectors.
//  - The CPU oracle on hand-computed cases (softmax with temperature, top-k, top-p, both, ties).
//  - Chi-square goodness of fit of 20000 draws (one per seed) against the exact expected
//    distribution, computed here independently with a sort (as vLLM's _apply_top_k_top_p), for
//    plain sampling, temperature, top-k, top-p and top-k + top-p, on CPU always and on the GPU.
//    Threshold: p-value < 1e-7. The seeds are fixed, so a run is deterministic; 1e-7 is the
//    probability over the choice of seeds that a CORRECT sampler fails one test (< 1e-6 for all
//    of them together), while a sampler that is off by even 2-3% in one token's probability gets
//    p-values far below 1e-7 at 20000 draws.
//  - GPU == CPU: exact token equality on continuous random logits, and an agreement rate >= 99.5%
//    on adversarial rows (coarse logits with massive ties, huge vocabularies). Why not always
//    100%: the GPU sums probability mass in float when it narrows the top-p threshold, the CPU in
//    double, so when a row's cumulative mass lands within ~1e-6 of p * Z at a token boundary the
//    two can keep a different last token; the sampled token changes only if that last token is
//    the one drawn. Gumbel keys are computed in double on both, from the same Philox bits.
//  - Small batches (one cluster of 8 blocks per row on the GPU) and large ones (a block per row)
//    both equal the CPU, left to the launcher and with the layout forced.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "engine/kernels/philox.h"
#include "engine/kernels/sampling.h"
#include "engine/ops/sampling.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

using testing::to_host;

// ---- helpers -----------------------------------------------------------------------------
struct Batch {
  OwnedTensor logits, temperature, top_k, top_p, seeds, offsets;
};

Batch make_batch(const std::vector<std::vector<float>>& rows, DType dt, const std::vector<float>& t,
                 const std::vector<int>& k, const std::vector<float>& p,
                 const std::vector<int64_t>& seeds, const std::vector<int64_t>& offsets) {
  const int64_t b = static_cast<int64_t>(rows.size()), v = static_cast<int64_t>(rows[0].size());
  Batch x{OwnedTensor({b, v}, dt, Storage::host),      OwnedTensor({b}, DType::f32, Storage::host),
          OwnedTensor({b}, DType::i32, Storage::host), OwnedTensor({b}, DType::f32, Storage::host),
          OwnedTensor({b}, DType::i64, Storage::host), OwnedTensor({b}, DType::i64, Storage::host)};
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i < v; ++i) host_set(x.logits.view(), r * v + i, rows[r][i]);
    host_set(x.temperature.view(), r, t[r % t.size()]);
    host_set(x.top_k.view(), r, k[r % k.size()]);
    host_set(x.top_p.view(), r, p[r % p.size()]);
    x.seeds.ptr<int64_t>()[r] = seeds.empty() ? 1000 + r : seeds[r % seeds.size()];
    x.offsets.ptr<int64_t>()[r] = offsets.empty() ? 0 : offsets[r % offsets.size()];
  }
  return x;
}

Batch to_device(const Batch& h) {
  return {h.logits.to(Storage::device), h.temperature.to(Storage::device),
          h.top_k.to(Storage::device),  h.top_p.to(Storage::device),
          h.seeds.to(Storage::device),  h.offsets.to(Storage::device)};
}

std::vector<int32_t> run_sample(const Batch& x, bool gpu) {
  const int64_t b = x.logits.sizes()[0];
  OwnedTensor tokens({b}, DType::i32, gpu ? Storage::device : Storage::host);
  if (gpu) {
    Batch d = to_device(x);
    Stream s;
    poison(tokens, s);
    sample(tokens, d.logits, d.temperature, d.top_k, d.top_p, d.seeds, d.offsets, s);
    s.synchronize();
  } else {
    poison(tokens);
    sample(tokens, x.logits, x.temperature, x.top_k, x.top_p, x.seeds, x.offsets);
  }
  OwnedTensor h = to_host(tokens);
  return {h.ptr<int32_t>(), h.ptr<int32_t>() + b};
}

OwnedTensor run_probs(const Batch& x, bool gpu) {
  const auto sz = x.logits.sizes();
  OwnedTensor probs(sz, DType::f32, gpu ? Storage::device : Storage::host);
  if (gpu) {
    Batch d = to_device(x);
    Stream s;
    poison(probs, s);
    top_k_top_p_probs(probs, d.logits, d.temperature, d.top_k, d.top_p, s);
    s.synchronize();
  } else {
    poison(probs);
    top_k_top_p_probs(probs, x.logits, x.temperature, x.top_k, x.top_p);
  }
  return to_host(probs);
}

std::vector<float> normal_row(Rng& rng, int64_t v, double std) {
  std::vector<float> r(static_cast<size_t>(v));
  for (auto& x : r) x = static_cast<float>(rng.normal() * std);
  return r;
}

// The expected distribution, the way vLLM's _apply_top_k_top_p computes it (sort ascending, mask
// below the k-th largest, then mask the prefix whose cumulative probability <= 1 - p, always
// keeping the largest), in double, with ties at a threshold kept together.
std::vector<double> expected_distribution(const std::vector<float>& logits, double t, int k,
                                          double p) {
  const int v = static_cast<int>(logits.size());
  std::vector<double> s(logits.begin(), logits.end());
  for (auto& x : s) x /= t;
  std::vector<int> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] < s[b]; });
  std::vector<bool> keep(v, true);
  double cut = -INFINITY;
  if (k > 0 && k < v) cut = s[order[v - k]];
  for (int i = 0; i < v; ++i) keep[i] = s[i] >= cut;
  if (p < 1) {
    const double mx = s[order[v - 1]];
    double z = 0;
    for (int i = 0; i < v; ++i)
      if (keep[i]) z += std::exp(s[i] - mx);
    double cum = 0, pcut = cut;
    for (int j = 0; j < v; ++j) {  // ascending
      const int i = order[j];
      if (!keep[i]) continue;
      cum += std::exp(s[i] - mx) / z;
      if (cum > 1 - p || j == v - 1) {  // first token not masked: everything >= it stays
        pcut = s[i];
        break;
      }
    }
    for (int i = 0; i < v; ++i) keep[i] = keep[i] && s[i] >= pcut;
  }
  std::vector<double> prob(v, 0.0);
  double z = 0;
  const double mx = *std::max_element(s.begin(), s.end());
  for (int i = 0; i < v; ++i)
    if (keep[i]) z += prob[i] = std::exp(s[i] - mx);
  for (auto& x : prob) x /= z;
  return prob;
}

// Upper tail of the chi-square distribution, Q(df/2, x/2) (series / continued fraction).
double chi2_pvalue(double x, int df) {
  const double a = df / 2.0, y = x / 2.0;
  if (y <= 0) return 1.0;
  const double lg = std::lgamma(a);
  if (y < a + 1) {
    double sum = 1.0 / a, term = sum;
    for (int n = 1; n < 1000; ++n) {
      term *= y / (a + n);
      sum += term;
      if (term < sum * 1e-15) break;
    }
    return 1.0 - sum * std::exp(-y + a * std::log(y) - lg);
  }
  double b = y + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (int i = 1; i < 1000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    c = b + an / c;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-15) break;
  }
  return std::exp(-y + a * std::log(y) - lg) * h;
}

constexpr int kDraws = 20000;
constexpr double kMinPValue = 1e-7;

// Draws kDraws tokens of one row (one seed each) and tests them against the expected
// distribution: tokens of probability 0 never appear, and chi-square (cells with expected count
// < 5 merged) has p-value >= kMinPValue.
void expect_distribution(const std::vector<float>& row, float t, int k, float p, bool gpu) {
  std::vector<std::vector<float>> rows(kDraws, row);
  std::vector<int64_t> seeds(kDraws);
  for (int i = 0; i < kDraws; ++i) seeds[i] = 7919 * i + 13;
  const Batch x = make_batch(rows, DType::f32, {t}, {k}, {p}, seeds, {5});
  const std::vector<int32_t> tok = run_sample(x, gpu);
  const std::vector<double> want = expected_distribution(row, t, k, p);
  std::vector<double> count(row.size(), 0.0);
  for (int32_t v : tok) {
    ASSERT_GE(v, 0);
    ASSERT_LT(v, static_cast<int>(row.size()));
    count[v] += 1;
  }
  double chi2 = 0, small_obs = 0, small_exp = 0;
  int cells = 0;
  for (size_t i = 0; i < row.size(); ++i) {
    const double e = want[i] * kDraws;
    if (want[i] == 0) {
      EXPECT_EQ(count[i], 0) << "token " << i << " has probability 0 but was drawn";
      continue;
    }
    if (e < 5) {
      small_obs += count[i];
      small_exp += e;
      continue;
    }
    chi2 += (count[i] - e) * (count[i] - e) / e;
    ++cells;
  }
  if (small_exp > 0) {
    chi2 += (small_obs - small_exp) * (small_obs - small_exp) / small_exp;
    ++cells;
  }
  if (cells <= 1) return;  // a single kept token: the zero-probability check said it all
  const double pv = chi2_pvalue(chi2, cells - 1);
  EXPECT_GE(pv, kMinPValue) << "chi2 " << chi2 << " with " << cells - 1 << " dof (T " << t
                            << ", top_k " << k << ", top_p " << p << ")";
}

std::vector<float> stat_row() {
  Rng rng(2024);
  return normal_row(rng, 40, 1.0);
}

void expect_throws_naming(const std::function<void()>& f, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << "expected InvalidArgument naming '" << name << "'";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

// ---- Philox ------------------------------------------------------------------------------
TEST(Philox, MatchesRandom123KnownAnswerVectors) {
  // Random123 tests/kat_vectors, "philox4x32 10": counter, key, expected.
  struct Kat {
    Philox4x32 ctr;
    uint32_t k0, k1;
    Philox4x32 want;
  } kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    const Philox4x32 got = philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got.v[i], k.want.v[i]) << "word " << i;
  }
}

TEST(Philox, UniformIsStrictlyInsideZeroOneAndExactInFloat) {
  for (uint32_t bits : {0u, 1u, 511u, 512u, 0x80000000u, 0xffffffffu}) {
    const double u = uniform_from_bits(bits);
    EXPECT_GT(u, 0.0);
    EXPECT_LT(u, 1.0);
    EXPECT_EQ(static_cast<double>(static_cast<float>(u)), u);
  }
}

// ---- CPU oracle, hand-computed ----------------------------------------------------------------
TEST(SamplingCpu, SoftmaxWithTemperatureMatchesHandComputed) {
  const float l2 = std::log(2.f);
  const Batch x = make_batch({{0.f, l2, 2 * l2}, {0.f, l2, 2 * l2}, {0.f, 2 * l2, 2 * l2}},
                             DType::f32, {1.f, 2.f, 0.f}, {0}, {1.f}, {}, {});
  OwnedTensor probs({3, 3}, DType::f32, Storage::host);
  poison(probs);
  softmax(probs, x.logits, x.temperature);
  const float* p = probs.ptr<float>();
  const double s2 = std::sqrt(2.0), z = 1 + s2 + 2;
  const double want[9] = {1 / 7., 2 / 7., 4 / 7., 1 / z, s2 / z, 2 / z, 0, 1, 0};  // T=0: one-hot
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(p[i], want[i], 1e-6) << i;
}

TEST(SamplingCpu, ArgmaxPicksLowestIndexOnTies) {
  const Batch x =
      make_batch({{1.f, 3.f, 3.f, 2.f}, {-INFINITY, -INFINITY, -1.f, -1.f}, {5.f, 5.f, 5.f, 5.f}},
                 DType::f32, {0.f}, {0}, {1.f}, {}, {});
  OwnedTensor tokens({3}, DType::i32, Storage::host);
  poison(tokens);
  argmax(tokens, x.logits);
  EXPECT_EQ(tokens.ptr<int32_t>()[0], 1);
  EXPECT_EQ(tokens.ptr<int32_t>()[1], 2);
  EXPECT_EQ(tokens.ptr<int32_t>()[2], 0);
}

TEST(SamplingCpu, TopKTopPProbsMatchHandComputed) {
  // probs 0.5, 0.2, 0.15, 0.1, 0.05 (shuffled positions).
  const std::vector<float> row = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.2f),
                                  std::log(0.1f)};
  const Batch x = make_batch({row, row, row, row, row}, DType::f32, {1.f}, {3, 0, 3, 0, 1},
                             {1.f, 0.6f, 0.8f, 1.f, 1.f}, {}, {});
  const OwnedTensor p = run_probs(x, false);
  const float* q = p.ptr<float>();
  const double k3 = 0.85;
  const double want[5][5] = {
      {0.15 / k3, 0.5 / k3, 0, 0.2 / k3, 0},  // top-k 3
      {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0},        // top-p 0.6: 0.5 < 0.6 <= 0.7
      {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0},        // top-k 3 then top-p 0.8 of 0.59/0.24/0.18
      {0.15, 0.5, 0.05, 0.2, 0.1},            // no filter
      {0, 1, 0, 0, 0},                        // top-k 1
  };
  for (int r = 0; r < 5; ++r)
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(q[r * 5 + i], want[r][i], 1e-6) << r << "," << i;
}

TEST(SamplingCpu, TopKKeepsAllTiesAtTheKthValue) {
  const Batch x = make_batch({{1.f, 2.f, 2.f, 0.f}}, DType::f32, {1.f}, {1}, {1.f}, {}, {});
  const OwnedTensor p = run_probs(x, false);
  EXPECT_NEAR(p.ptr<float>()[1], 0.5, 1e-6);
  EXPECT_NEAR(p.ptr<float>()[2], 0.5, 1e-6);
  EXPECT_EQ(p.ptr<float>()[0], 0.f);
}

TEST(SamplingCpu, GreedyRowsTakeTheArgmaxIncludingTies) {
  Rng rng(1);
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < 16; ++r) rows.push_back(normal_row(rng, 300, 1.0));
  rows[3][17] = rows[3][250] = 50.f;  // tie: 17 wins
  const Batch x = make_batch(rows, DType::f32, {0.f}, {0, 5}, {1.f, 0.5f}, {}, {});
  const std::vector<int32_t> tok = run_sample(x, false);
  for (int r = 0; r < 16; ++r) {
    const auto& v = rows[r];
    EXPECT_EQ(tok[r], std::max_element(v.begin(), v.end()) - v.begin()) << "row " << r;
  }
  EXPECT_EQ(tok[3], 17);
}

TEST(SamplingCpu, SameSeedAndOffsetGiveTheSameTokenNewOffsetsGiveFreshDraws) {
  Rng rng(2);
  const std::vector<float> row = normal_row(rng, 1000, 0.1);  // nearly flat
  std::vector<int64_t> offsets(64);
  std::iota(offsets.begin(), offsets.end(), 0);
  const Batch a = make_batch(std::vector(64, row), DType::f32, {1.f}, {0}, {1.f}, {42}, offsets);
  const std::vector<int32_t> t1 = run_sample(a, false), t2 = run_sample(a, false);
  EXPECT_EQ(t1, t2);
  EXPECT_GE(std::set<int32_t>(t1.begin(), t1.end()).size(), 50u)
      << "64 decode steps of one sequence over a flat 1000-token distribution";
  const Batch b = make_batch(std::vector(64, row), DType::f32, {1.f}, {0}, {1.f}, {43}, offsets);
  const std::vector<int32_t> t3 = run_sample(b, false);
  int same = 0;
  for (int i = 0; i < 64; ++i) same += t1[i] == t3[i];
  EXPECT_LE(same, 5) << "another seed draws other tokens";
}

// ---- statistics (CPU) ------------------------------------------------------------------------
TEST(SamplingCpu, PlainSamplingFollowsSoftmax) {
  expect_distribution(stat_row(), 1.f, 0, 1.f, false);
}
TEST(SamplingCpu, TemperatureSharpensAndFlattens) {
  expect_distribution(stat_row(), 0.5f, 0, 1.f, false);
  expect_distribution(stat_row(), 2.0f, 0, 1.f, false);
}
TEST(SamplingCpu, TopKFollowsRenormalisedDistribution) {
  expect_distribution(stat_row(), 1.f, 8, 1.f, false);
}
TEST(SamplingCpu, TopPFollowsRenormalisedDistribution) {
  expect_distribution(stat_row(), 1.f, 0, 0.7f, false);
}
TEST(SamplingCpu, TopKThenTopPFollowsRenormalisedDistribution) {
  expect_distribution(stat_row(), 0.8f, 12, 0.8f, false);
}
TEST(SamplingCpu, AllEqualLogitsAreUniform) {
  expect_distribution(std::vector<float>(25, 0.5f), 1.f, 0, 1.f, false);
}

TEST(SamplingCpu, HigherTemperatureGivesHigherEntropy) {
  const std::vector<float> row = stat_row();
  auto entropy = [&](float t) {  // of the empirical distribution of 4000 draws
    const Batch x = make_batch(std::vector(4000, row), DType::f32, {t}, {0}, {1.f}, {}, {});
    std::vector<double> c(row.size(), 0.0);
    for (int32_t v : run_sample(x, false)) c[v] += 1.0 / 4000;
    double h = 0;
    for (double q : c)
      if (q > 0) h -= q * std::log(q);
    return h;
  };
  EXPECT_LT(entropy(0.2f), entropy(1.f));
  EXPECT_LT(entropy(1.f), entropy(5.f));
  EXPECT_LT(entropy(5.f), std::log(40.0));
}

// ---- edge cases (CPU) -------------------------------------------------------------------------
TEST(SamplingCpu, EdgeCases) {
  // vocab 1
  EXPECT_EQ(run_sample(make_batch({{0.3f}}, DType::f32, {1.f}, {0}, {0.5f}, {}, {}), false)[0], 0);
  Rng rng(3);
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < 200; ++r) rows.push_back(normal_row(rng, 37, 1.0));
  // top_k 1 == greedy; tiny top_p keeps only the max
  for (auto [k, p] : {std::pair{1, 1.f}, std::pair{0, 1e-6f}}) {
    const auto tok = run_sample(make_batch(rows, DType::f32, {1.f}, {k}, {p}, {}, {}), false);
    for (int r = 0; r < 200; ++r)
      EXPECT_EQ(tok[r], std::max_element(rows[r].begin(), rows[r].end()) - rows[r].begin());
  }
  // -inf logits (masked tokens) are never drawn, even at high temperature
  for (auto& r : rows)
    for (int i = 0; i < 37; i += 2) r[i] = -INFINITY;
  const auto tok = run_sample(make_batch(rows, DType::f32, {10.f}, {0, 30}, {1.f}, {}, {}), false);
  for (int32_t t : tok) EXPECT_EQ(t % 2, 1);
}

// ---- bad input (CPU tensors: values are checked too) ----------------------------------------
TEST(SamplingCpu, BadInputNamesTheArgument) {
  Rng rng(4);
  const Batch x = make_batch({normal_row(rng, 10, 1), normal_row(rng, 10, 1)}, DType::f32, {1.f},
                             {0}, {1.f}, {}, {});
  OwnedTensor tokens({2}, DType::i32, Storage::host), probs({2, 10}, DType::f32, Storage::host);
  auto bad = [&](std::vector<float> t, std::vector<int> k, std::vector<float> p) {
    return make_batch({normal_row(rng, 10, 1), normal_row(rng, 10, 1)}, DType::f32, t, k, p, {},
                      {});
  };
  auto call = [&](const Batch& b) {
    return [&] { sample(tokens, b.logits, b.temperature, b.top_k, b.top_p, b.seeds, b.offsets); };
  };
  const Batch neg_t = bad({-1.f}, {0}, {1.f}), nan_t = bad({NAN}, {0}, {1.f});
  const Batch neg_k = bad({1.f}, {-1}, {1.f}), zero_p = bad({1.f}, {0}, {0.f}),
              big_p = bad({1.f}, {0}, {1.5f});
  expect_throws_naming(call(neg_t), "temperature");
  expect_throws_naming(call(nan_t), "temperature");
  expect_throws_naming(call(neg_k), "top_k");
  expect_throws_naming(call(zero_p), "top_p");
  expect_throws_naming(call(big_p), "top_p");
  expect_throws_naming(
      [&] { top_k_top_p_probs(probs, x.logits, x.temperature, neg_k.top_k, x.top_p); }, "top_k");
  expect_throws_naming([&] { softmax(probs, x.logits, neg_t.temperature); }, "temperature");
  // shapes: params of another batch size, outputs of the wrong shape
  OwnedTensor t3({3}, DType::f32, Storage::host), k3({3}, DType::i32, Storage::host),
      s3({3}, DType::i64, Storage::host);
  expect_throws_naming([&] { sample(tokens, x.logits, t3, x.top_k, x.top_p, x.seeds, x.offsets); },
                       "temperature");
  expect_throws_naming(
      [&] { sample(tokens, x.logits, x.temperature, k3, x.top_p, x.seeds, x.offsets); }, "top_k");
  expect_throws_naming(
      [&] { sample(tokens, x.logits, x.temperature, x.top_k, t3, x.seeds, x.offsets); }, "top_p");
  expect_throws_naming(
      [&] { sample(tokens, x.logits, x.temperature, x.top_k, x.top_p, s3, x.offsets); }, "seeds");
  expect_throws_naming(
      [&] { sample(tokens, x.logits, x.temperature, x.top_k, x.top_p, x.seeds, s3); }, "offsets");
  OwnedTensor tokens3({3}, DType::i32, Storage::host), probs9({2, 9}, DType::f32, Storage::host);
  expect_throws_naming([&] { argmax(tokens3, x.logits); }, "tokens");
  expect_throws_naming([&] { softmax(probs9, x.logits, x.temperature); }, "probs");
  // dtypes
  OwnedTensor ilogits({2, 10}, DType::i32, Storage::host), tokens64({2}, DType::i64, Storage::host);
  OwnedTensor kf({2}, DType::f32, Storage::host), s32({2}, DType::i32, Storage::host);
  expect_throws_naming([&] { argmax(tokens, ilogits); }, "logits");
  expect_throws_naming([&] { argmax(tokens64, x.logits); }, "tokens");
  expect_throws_naming(
      [&] { sample(tokens, x.logits, x.temperature, kf, x.top_p, x.seeds, x.offsets); }, "top_k");
  expect_throws_naming(
      [&] { sample(tokens, x.logits, x.temperature, x.top_k, x.top_p, s32, x.offsets); }, "seeds");
  OwnedTensor flat({20}, DType::f32, Storage::host);
  expect_throws_naming([&] { argmax(tokens, flat); }, "logits");
}

// ---- GPU vs CPU ----------------------------------------------------------------------------
constexpr auto& kDtypes = testing::kAllFloatDtypes;

TEST(SamplingGpu, SoftmaxAndArgmaxMatchCpuForEveryDtype) {
  DAY18_REQUIRE_GPU();
  Rng rng(10);
  for (DType dt : kDtypes) {
    for (auto [b, v] : {std::pair{3, 1}, std::pair{5, 1000}, std::pair{4, 1003},
                        std::pair{7, 32000}, std::pair{2, 128256}}) {
      std::vector<std::vector<float>> rows;
      for (int r = 0; r < b; ++r) rows.push_back(normal_row(rng, v, 3.0));
      rows[0][v / 2] = rows[0][v - 1] = 40.f;  // a tied maximum: the lower index wins
      const Batch x = make_batch(rows, dt, {1.f, 0.f, 0.7f}, {0}, {1.f}, {}, {});
      const Batch d = to_device(x);
      Stream s;
      OwnedTensor pc({b, v}, DType::f32, Storage::host), pg({b, v}, DType::f32, Storage::device);
      OwnedTensor tc({b}, DType::i32, Storage::host), tg({b}, DType::i32, Storage::device);
      poison(pc);
      poison(pg, s);
      poison(tc);
      poison(tg, s);
      softmax(pc, x.logits, x.temperature);
      softmax(pg, d.logits, d.temperature, s);
      argmax(tc, x.logits);
      argmax(tg, d.logits, s);
      s.synchronize();
      EXPECT_CLOSE(pg, pc, default_tolerance(DType::f32)) << dtype_name(dt) << " vocab " << v;
      EXPECT_CLOSE(tg, tc, default_tolerance(DType::i32)) << dtype_name(dt) << " vocab " << v;
    }
  }
}

// Rows that exercise every path of the kernel's threshold search.
std::vector<std::vector<float>> path_rows(Rng& rng, int64_t v, int n) {
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < n; ++r) {
    std::vector<float> row = normal_row(rng, v, r % 3 == 0 ? 1.0 : 3.0);
    if (r % 5 == 4)  // coarse grid: huge tie groups, threshold bins above kCap
      for (auto& x : row) x = std::round(x * 2) / 2;
    if (r % 7 == 6)  // masked tokens
      for (int64_t i = 0; i < v; i += 3) row[i] = -INFINITY;
    rows.push_back(std::move(row));
  }
  return rows;
}

TEST(SamplingGpu, TopKTopPProbsMatchCpuForEveryDtypeAndPath) {
  DAY18_REQUIRE_GPU();
  Rng rng(11);
  for (DType dt : kDtypes) {
    for (int64_t v : {1, 50, 1001, 32000, 128256}) {
      const Batch x = make_batch(path_rows(rng, v, 24), dt, {1.f, 0.7f, 0.f, 1.5f},
                                 {0, 50, 1, 5000, 0, 20}, {1.f, 0.9f, 0.95f, 0.5f, 1e-6f}, {}, {});
      const OwnedTensor pc = run_probs(x, false), pg = run_probs(x, true);
      // A differing last token of a top-p cut (see the file comment) is within 1e-5 absolute
      // here: those tokens carry < 1e-5 of the mass in these rows.
      EXPECT_CLOSE(pg.view(), pc.view(), default_tolerance(DType::f32))
          << dtype_name(dt) << " vocab " << v;
    }
  }
}

TEST(SamplingGpu, SampledTokensEqualCpuOnContinuousLogits) {
  DAY18_REQUIRE_GPU();
  Rng rng(12);
  for (DType dt : kDtypes) {
    for (int64_t v : {1, 7, 1000, 1003, 32000, 128256}) {
      std::vector<std::vector<float>> rows;
      for (int r = 0; r < 32; ++r) rows.push_back(normal_row(rng, v, 2.5));
      std::vector<int64_t> seeds, offsets;
      for (int r = 0; r < 32; ++r) {
        seeds.push_back(rng.randint(0, int64_t{1} << 50));
        offsets.push_back(rng.randint(0, 100000));
      }
      const Batch x = make_batch(rows, dt, {0.f, 1.f, 0.7f, 1.3f}, {0, 50, 0, 1, 200},
                                 {1.f, 0.9f, 0.95f, 1.f, 0.8f, 0.3f}, seeds, offsets);
      EXPECT_EQ(run_sample(x, true), run_sample(x, false)) << dtype_name(dt) << " vocab " << v;
    }
  }
}

bool gpu_has_clusters() {
  int dev = 0, yes = 0;
  EXPECT_EQ(cudaGetDevice(&dev), cudaSuccess);
  EXPECT_EQ(cudaDeviceGetAttribute(&yes, cudaDevAttrClusterLaunch, dev), cudaSuccess);
  return yes != 0;
}

// cuda::sample with its block count per row forced (0 = the launcher's rule).
std::vector<int32_t> run_sample_forced(const Batch& x, int blocks_per_row) {
  const int64_t b = x.logits.sizes()[0];
  OwnedTensor tokens({b}, DType::i32, Storage::device);
  Batch d = to_device(x);
  Stream s;
  poison(tokens, s);
  cuda::sample(tokens, d.logits, d.temperature, d.top_k, d.top_p, d.seeds, d.offsets, s,
               blocks_per_row);
  s.synchronize();
  OwnedTensor h = to_host(tokens);
  return {h.ptr<int32_t>(), h.ptr<int32_t>() + b};
}

// A batch of at most SMs / 32 rows runs the sampler as one cluster of 8 blocks per row (pass 1
// split over the cluster, the partial stats merged in distributed shared memory); the tests
// above use 24-32 rows, one block per row. Both layouts, left to the launcher and forced, must
// give the CPU's answers at every batch: vocabularies shorter than the cluster (empty slices),
// not a multiple of the vector width, and 128256; every mode (greedy, plain, top-k, top-p,
// both) and dtype.
TEST(SamplingGpu, SmallBatchesSplitEachRowOverAClusterAndStillMatchCpu) {
  DAY18_REQUIRE_GPU();
  Rng rng(17);
  for (DType dt : kDtypes) {
    for (int64_t v : {1, 7, 1003, 32000, 128256}) {
      for (int b : {1, 4, 16}) {
        std::vector<std::vector<float>> rows;
        std::vector<int64_t> seeds, offsets;
        for (int r = 0; r < b; ++r) {
          rows.push_back(normal_row(rng, v, 2.5));
          seeds.push_back(rng.randint(0, int64_t{1} << 50));
          offsets.push_back(rng.randint(0, 100000));
        }
        const Batch x = make_batch(rows, dt, {b == 1 ? 0.f : 1.f, 0.f, 0.7f, 1.3f, 1.f},
                                   {0, 50, 0, 1, 200}, {1.f, 0.9f, 0.95f, 1.f, 0.8f}, seeds,
                                   offsets);
        const std::vector<int32_t> cpu = run_sample(x, false);
        EXPECT_EQ(run_sample(x, true), cpu) << dtype_name(dt) << " vocab " << v << " batch " << b;
        for (int blocks : {1, cuda::kSamplerClusterBlocks}) {  // forced: one block, a cluster
          if (blocks > 1 && !gpu_has_clusters()) continue;  // before sm_90: one block per row
          EXPECT_EQ(run_sample_forced(x, blocks), cpu)
              << dtype_name(dt) << " vocab " << v << " batch " << b << " blocks " << blocks;
        }
        const Batch xp = make_batch(path_rows(rng, v, b), dt, {1.f, 0.7f, 0.f, 1.5f},
                                    {0, 50, 1, 5000, 0, 20}, {1.f, 0.9f, 0.95f, 0.5f, 1e-6f},
                                    {}, {});
        EXPECT_CLOSE(run_probs(xp, true).view(), run_probs(xp, false).view(),
                     default_tolerance(DType::f32))
            << dtype_name(dt) << " vocab " << v << " batch " << b;
      }
    }
  }
}

TEST(SamplingGpu, AForcedBlockCountOtherThanOneOrAClusterIsRefusedByName) {
  DAY18_REQUIRE_GPU();
  Rng rng(18);
  const Batch x = make_batch({normal_row(rng, 100, 1)}, DType::f32, {1.f}, {0}, {1.f}, {}, {});
  for (int bad : {-1, 2, 16})
    expect_throws_naming([&] { run_sample_forced(x, bad); }, "blocks_per_row");
}

TEST(SamplingGpu, SampledTokensAgreeWithCpuOnAdversarialRows) {
  DAY18_REQUIRE_GPU();
  Rng rng(13);
  int agree = 0, total = 0;
  for (int64_t v : {4096, 128256}) {
    const int n = v == 4096 ? 800 : 100;
    const Batch x = make_batch(path_rows(rng, v, n), DType::f32, {1.f, 0.7f, 2.f},
                               {0, 50, 5000, 0, 1}, {1.f, 0.9f, 0.95f, 0.5f}, {}, {3, 9});
    const auto g = run_sample(x, true), c = run_sample(x, false);
    for (size_t i = 0; i < g.size(); ++i) agree += g[i] == c[i];
    total += static_cast<int>(g.size());
  }
  EXPECT_GE(agree, 0.995 * total) << agree << " of " << total << " rows agree";
}

TEST(SamplingGpu, DeterministicForEqualSeedsFreshForNewOffsets) {
  DAY18_REQUIRE_GPU();
  Rng rng(14);
  const std::vector<float> row = normal_row(rng, 32000, 0.1);
  std::vector<int64_t> offsets(64);
  std::iota(offsets.begin(), offsets.end(), 100);
  const Batch x = make_batch(std::vector(64, row), DType::f32, {1.f}, {0}, {1.f}, {77}, offsets);
  const auto a = run_sample(x, true), b = run_sample(x, true);
  EXPECT_EQ(a, b);
  EXPECT_GE(std::set<int32_t>(a.begin(), a.end()).size(), 60u);
}

TEST(SamplingGpu, ChiSquareAgainstExactDistributions) {
  DAY18_REQUIRE_GPU();
  const std::vector<float> row = stat_row();
  expect_distribution(row, 1.f, 0, 1.f, true);
  expect_distribution(row, 0.5f, 0, 1.f, true);
  expect_distribution(row, 2.f, 0, 1.f, true);
  expect_distribution(row, 1.f, 8, 1.f, true);
  expect_distribution(row, 1.f, 0, 0.7f, true);
  expect_distribution(row, 0.8f, 12, 0.8f, true);
  expect_distribution(std::vector<float>(25, 0.5f), 1.f, 0, 1.f, true);
}

TEST(SamplingGpu, EdgeCasesMatchCpu) {
  DAY18_REQUIRE_GPU();
  Rng rng(15);
  // vocab 1; all-equal; all -inf but one; vocab not a multiple of the vector width
  for (auto rows : {std::vector<std::vector<float>>{{0.3f}, {-2.f}},
                    std::vector<std::vector<float>>(8, std::vector<float>(515, 1.25f)),
                    std::vector<std::vector<float>>(8, std::vector<float>(77, -INFINITY))}) {
    if (rows[0].size() == 77)
      for (int r = 0; r < 8; ++r) rows[r][r * 9] = 0.f;
    const Batch x =
        make_batch(rows, DType::f32, {1.f, 0.f, 3.f}, {0, 1, 3}, {1.f, 1e-6f, 0.5f}, {}, {});
    EXPECT_EQ(run_sample(x, true), run_sample(x, false));
    EXPECT_CLOSE(run_probs(x, true).view(), run_probs(x, false).view(),
                 default_tolerance(DType::f32));
  }
}

TEST(SamplingGpu, BadInputNamesTheArgument) {
  DAY18_REQUIRE_GPU();
  Rng rng(16);
  const Batch h = make_batch({normal_row(rng, 10, 1), normal_row(rng, 10, 1)}, DType::f32, {1.f},
                             {0}, {1.f}, {}, {});
  const Batch d = to_device(h);
  OwnedTensor tokens({2}, DType::i32, Storage::device), probs({2, 10}, DType::f32, Storage::device);
  expect_throws_naming(
      [&] { sample(tokens, d.logits, h.temperature, d.top_k, d.top_p, d.seeds, d.offsets); },
      "temperature");
  expect_throws_naming(
      [&] { sample(tokens, d.logits, d.temperature, d.top_k, d.top_p, h.seeds, d.offsets); },
      "seeds");
  OwnedTensor host_tokens({2}, DType::i32, Storage::host);
  expect_throws_naming([&] { argmax(host_tokens, d.logits); }, "tokens");
  expect_throws_naming([&] { softmax(probs, d.logits, h.temperature); }, "temperature");
}

}  // namespace
}  // namespace day18
