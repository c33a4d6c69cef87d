// Sampling with non-finite logits (engine/kernels/sampling.h, "Non-finite logits"), the same on
// both backends:
//   -inf           a mask: never sampled; a row of only -inf takes the greedy rule (token 0).
//   NaN or +inf    anywhere in a row: token -1 from argmax and sample, NaN over the whole row from
//                  softmax and top_k_top_p_probs, in every mode (greedy, plain, top-k, top-p,
//                  both).
// Regression: a row of all-NaN logits with top_p < 1 used to index an empty list in the CPU
// top-p threshold (SIGSEGV).
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "engine/ops/sampling.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

using testing::to_host;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Params {
  const char* name;
  float temperature;
  int top_k;
  float top_p;
};
// Every path of the sampler: greedy, plain, top-k, top-p (the one that crashed), both.
const Params kModes[] = {{"greedy", 0.f, 0, 1.f},
                         {"plain", 1.f, 0, 1.f},
                         {"top_k", 0.7f, 3, 1.f},
                         {"top_p", 1.f, 0, 0.5f},
                         {"top_k+top_p", 1.3f, 5, 0.8f}};

// Row kinds, in this order: all NaN, one NaN, one +inf, all +inf, plain, some -inf, all -inf.
enum Row { kAllNaN, kOneNaN, kOnePosInf, kAllPosInf, kPlain, kSomeNegInf, kAllNegInf, kRows };
bool row_has_no_distribution(int r) {
  return r <= kAllPosInf;
}

std::vector<std::vector<float>> rows_of(int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<float>> rows(kRows);
  for (int r = 0; r < kRows; ++r) {
    rows[r].resize(static_cast<size_t>(vocab));
    for (auto& x : rows[r]) x = static_cast<float>(rng.normal() * 2);
  }
  const size_t mid = static_cast<size_t>(vocab / 2);
  for (auto& x : rows[kAllNaN]) x = kNaN;
  rows[kOneNaN][mid] = kNaN;
  rows[kOnePosInf][mid] = kInf;
  for (auto& x : rows[kAllPosInf]) x = kInf;
  for (size_t i = 0; i < rows[kSomeNegInf].size(); i += 2) rows[kSomeNegInf][i] = -kInf;
  for (auto& x : rows[kAllNegInf]) x = -kInf;
  return rows;
}

struct Batch {
  OwnedTensor logits, temperature, top_k, top_p, seeds, offsets;
};

Batch make_batch(const std::vector<std::vector<float>>& rows, DType dt, const Params& p,
                 Storage st) {
  const int64_t b = static_cast<int64_t>(rows.size()), v = static_cast<int64_t>(rows[0].size());
  Batch x{OwnedTensor({b, v}, dt, Storage::host),      OwnedTensor({b}, DType::f32, Storage::host),
          OwnedTensor({b}, DType::i32, Storage::host), OwnedTensor({b}, DType::f32, Storage::host),
          OwnedTensor({b}, DType::i64, Storage::host), OwnedTensor({b}, DType::i64, Storage::host)};
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i < v; ++i) host_set(x.logits.view(), r * v + i, rows[r][i]);
    x.temperature.ptr<float>()[r] = p.temperature;
    x.top_k.ptr<int32_t>()[r] = p.top_k;
    x.top_p.ptr<float>()[r] = p.top_p;
    x.seeds.ptr<int64_t>()[r] = 77 + r;
    x.offsets.ptr<int64_t>()[r] = 3;
  }
  if (st == Storage::host) return x;
  return {x.logits.to(st), x.temperature.to(st), x.top_k.to(st),
          x.top_p.to(st),  x.seeds.to(st),       x.offsets.to(st)};
}

struct Results {
  std::vector<int32_t> sampled, argmaxed;
  OwnedTensor probs, softmaxed;
};

Results run_all(const Batch& x, Storage st) {
  const int64_t b = x.logits.sizes()[0], v = x.logits.sizes()[1];
  OwnedTensor tokens({b}, DType::i32, st), arg({b}, DType::i32, st);
  OwnedTensor probs({b, v}, DType::f32, st), soft({b, v}, DType::f32, st);
  std::unique_ptr<Stream> stream;
  if (st == Storage::device) stream = std::make_unique<Stream>();
  cudaStream_t s = stream ? stream->get() : nullptr;
  for (OwnedTensor* t : {&tokens, &arg, &probs, &soft}) {
    if (stream)
      poison(*t, s);
    else
      poison(*t);
  }
  sample(tokens, x.logits, x.temperature, x.top_k, x.top_p, x.seeds, x.offsets, s);
  argmax(arg, x.logits, s);
  top_k_top_p_probs(probs, x.logits, x.temperature, x.top_k, x.top_p, s);
  softmax(soft, x.logits, x.temperature, s);
  if (stream) stream->synchronize();
  OwnedTensor ht = to_host(tokens), ha = to_host(arg);
  return {{ht.ptr<int32_t>(), ht.ptr<int32_t>() + b},
          {ha.ptr<int32_t>(), ha.ptr<int32_t>() + b},
          to_host(probs),
          to_host(soft)};
}

// The documented contract, on one backend's results.
void expect_contract(const Results& res, const std::vector<std::vector<float>>& rows,
                     const Params& p, const char* where) {
  const int64_t v = static_cast<int64_t>(rows[0].size());
  for (int r = 0; r < kRows; ++r) {
    SCOPED_TRACE(::testing::Message()
                 << where << ", mode " << p.name << ", row " << r << ", vocab " << v);
    const float* pr = res.probs.ptr<float>() + r * v;
    const float* sm = res.softmaxed.ptr<float>() + r * v;
    if (row_has_no_distribution(r)) {
      EXPECT_EQ(res.sampled[r], -1);
      EXPECT_EQ(res.argmaxed[r], -1);
      for (int64_t i = 0; i < v; ++i) {
        ASSERT_TRUE(std::isnan(pr[i])) << "probs[" << i << "] = " << pr[i];
        ASSERT_TRUE(std::isnan(sm[i])) << "softmax[" << i << "] = " << sm[i];
      }
      continue;
    }
    const int32_t t = res.sampled[r];
    ASSERT_GE(t, 0);
    ASSERT_LT(t, v);
    bool all_masked = true;
    for (float x : rows[r]) all_masked &= x == -kInf;
    EXPECT_TRUE(std::isfinite(rows[r][static_cast<size_t>(t)]) || all_masked)
        << "sampled a masked (-inf) token " << t;
    if (all_masked) {
      EXPECT_EQ(t, 0);
      EXPECT_EQ(res.argmaxed[r], 0);
    }
    double sum = 0;
    for (int64_t i = 0; i < v; ++i) {
      ASSERT_TRUE(std::isfinite(pr[i])) << "probs[" << i << "] = " << pr[i];
      sum += pr[i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-4);
  }
}

TEST(SamplingNonFiniteCpu, NanOrPosInfRowsGiveTokenMinusOneAndNanProbsInEveryMode) {
  for (int64_t vocab : {1, 37, 256}) {
    const auto rows = rows_of(vocab, 5);
    for (const Params& p : kModes) {
      const Batch x = make_batch(rows, DType::f32, p, Storage::host);
      expect_contract(run_all(x, Storage::host), rows, p, "cpu");
    }
  }
}

TEST(SamplingNonFiniteCpu, AllNanRowWithTopPDoesNotCrash) {
  // The original crash: top-p's kept list was empty and its last element was read.
  const std::vector<std::vector<float>> rows(2, std::vector<float>(50, kNaN));
  const Batch x = make_batch(rows, DType::f32, {"top_p", 1.f, 0, 0.9f}, Storage::host);
  const Results res = run_all(x, Storage::host);
  EXPECT_EQ(res.sampled, (std::vector<int32_t>{-1, -1}));
}

TEST(SamplingNonFiniteCpu, HalfPrecisionInfinityIsCaught) {
  // An fp16 LM head that overflows gives +inf logits: the row has no distribution.
  std::vector<std::vector<float>> rows(1, std::vector<float>(16, 1.f));
  rows[0][3] = kInf;
  for (DType dt : {DType::f16, DType::bf16}) {
    const Batch x = make_batch(rows, dt, {"plain", 1.f, 0, 1.f}, Storage::host);
    EXPECT_EQ(run_all(x, Storage::host).sampled[0], -1) << dtype_name(dt);
  }
}

TEST(SamplingNonFiniteGpu, NonFiniteRowsMatchTheCpuContract) {
  DAY18_REQUIRE_GPU();
  // vocab 37: the scalar load path; 1024 and 4100: the 16-byte vector path (4100: a tail).
  for (int64_t vocab : {1, 37, 1024, 4100}) {
    const auto rows = rows_of(vocab, 9);
    for (DType dt : testing::kAllFloatDtypes) {
      for (const Params& p : kModes) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dt));
        const Results cpu = run_all(make_batch(rows, dt, p, Storage::host), Storage::host);
        const Results gpu = run_all(make_batch(rows, dt, p, Storage::device), Storage::device);
        expect_contract(gpu, rows, p, "cuda");
        // Identical tokens, and probs equal where finite (NaN where the CPU has NaN).
        EXPECT_EQ(gpu.sampled, cpu.sampled) << p.name;
        EXPECT_EQ(gpu.argmaxed, cpu.argmaxed) << p.name;
        for (int64_t i = 0; i < gpu.probs.numel(); ++i) {
          const float a = gpu.probs.ptr<float>()[i], e = cpu.probs.ptr<float>()[i];
          ASSERT_EQ(std::isnan(a), std::isnan(e)) << p.name << " probs[" << i << "]";
          if (!std::isnan(e)) ASSERT_NEAR(a, e, 1e-5) << p.name << " probs[" << i << "]";
        }
      }
    }
  }
}

}  // namespace
}  // namespace day18
