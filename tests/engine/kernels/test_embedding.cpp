// Embedding lookup: CPU oracle by hand, CUDA kernel vs the oracle over random shapes and every
// dtype, out-of-range ids on both backends (checked and unchecked GPU modes), bad arguments.
#include <cmath>
#include <string>

#include "engine/ops/embedding.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

constexpr auto& kDtypes = testing::kAllFloatDtypes;

OwnedTensor ids_tensor(std::initializer_list<int32_t> ids) {
  OwnedTensor t({static_cast<int64_t>(ids.size())}, DType::i32, Storage::host);
  int64_t i = 0;
  for (int32_t v : ids) t.ptr<int32_t>()[i++] = v;
  return t;
}

// ---- CPU oracle, by hand ----

TEST(EmbeddingOracle, CopiesTheRowOfEachTokenId) {
  // weight row v = [10v, 10v + 1, 10v + 2]; ids [2, 0, 2, 3].
  OwnedTensor w({4, 3}, DType::f32, Storage::host);
  for (int v = 0; v < 4; ++v)
    for (int j = 0; j < 3; ++j) w.ptr<float>()[v * 3 + j] = 10.f * v + j;
  OwnedTensor ids = ids_tensor({2, 0, 2, 3});
  OwnedTensor out({4, 3}, DType::f32, Storage::host);
  poison(out);
  embedding(out, ids, w);
  const float want[12] = {20, 21, 22, 0, 1, 2, 20, 21, 22, 30, 31, 32};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(out.ptr<float>()[i], want[i]) << "element " << i;
}

TEST(EmbeddingOracle, OutOfRangeIdThrowsNamingIndexValueAndVocab) {
  Rng rng(300);
  OwnedTensor w = rng.normal_tensor({4, 8}, DType::f16, 0, 1);
  OwnedTensor out({3, 8}, DType::f16, Storage::host);
  poison(out);
  for (int32_t bad : {4, -1, 1 << 30}) {
    OwnedTensor ids = ids_tensor({1, bad, 2});
    try {
      embedding(out, ids, w);
      FAIL() << "no exception for token id " << bad;
    } catch (const InvalidArgument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("token_ids"), std::string::npos) << msg;
      EXPECT_NE(msg.find("index 1"), std::string::npos) << msg;
      EXPECT_NE(msg.find("value " + std::to_string(bad)), std::string::npos) << msg;
      EXPECT_NE(msg.find("[0, 4)"), std::string::npos) << msg;
    }
  }
  // Checked before writing: the output is still all poison.
  for (int64_t i = 0; i < out.numel(); ++i) EXPECT_TRUE(std::isnan(host_get(out, i)));
}

// ---- CUDA kernel vs the oracle ----

void check(Rng& rng, DType dt, int64_t tokens, int64_t vocab, int64_t hidden, bool check_ids) {
  SCOPED_TRACE(::testing::Message() << "embedding " << dtype_name(dt) << " tokens=" << tokens
                                    << " vocab=" << vocab << " hidden=" << hidden);
  OwnedTensor ids = rng.uniform_tensor({tokens}, DType::i32, 0, vocab - 1);
  OwnedTensor w = rng.normal_tensor({vocab, hidden}, dt, 0, 1);
  OwnedTensor want({tokens, hidden}, dt, Storage::host);
  poison(want);
  embedding(want, ids, w);
  OwnedTensor dids = ids.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({tokens, hidden}, dt, Storage::device);
  poison(out);
  embedding(out, dids, dw, check_ids);
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_CLOSE(out.view(), want.view(), Tolerance{});  // a copy: exact
}

TEST(EmbeddingKernel, MatchesOracleForEveryDtypeVectorAndScalarPaths) {
  DAY18_REQUIRE_GPU();
  Rng rng(301);
  for (DType dt : kDtypes)
    for (int64_t hidden : {8, 64, 4096, 5120, 1, 3, 77, 1000})
      check(rng, dt, rng.randint(1, 40), rng.randint(1, 500), hidden, true);
}

TEST(EmbeddingKernel, MatchesOracleOverRandomShapesCheckedAndUnchecked) {
  DAY18_REQUIRE_GPU();
  Rng rng(302);
  for (int i = 0; i < 24; ++i) {
    int64_t hidden = rng.randint(1, 2000);
    if (i % 2 == 0) hidden = (hidden + 7) / 8 * 8;
    check(rng, kDtypes[i % 3], rng.randint(1, 300), rng.randint(1, 3000), hidden, i % 4 < 2);
  }
}

TEST(EmbeddingKernel, OneTokenAndARealisticTable) {
  DAY18_REQUIRE_GPU();
  Rng rng(303);
  check(rng, DType::f16, 1, 32000, 4096, true);
  check(rng, DType::bf16, 512, 32000, 4096, false);
}

TEST(EmbeddingKernel, CheckedModeThrowsLikeTheCpuAndZeroesTheBadRow) {
  DAY18_REQUIRE_GPU();
  Rng rng(304);
  const int64_t vocab = 100, hidden = 64;
  OwnedTensor w = rng.normal_tensor({vocab, hidden}, DType::f16, 0, 1);
  OwnedTensor ids = ids_tensor({5, 7, 100, 3, -2});  // first bad: index 2, value 100
  OwnedTensor dids = ids.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({5, hidden}, DType::f16, Storage::device);
  poison(out);
  try {
    embedding(out, dids, dw, /*check_ids=*/true);
    FAIL() << "no exception for token id 100 with vocab 100";
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("token_ids"), std::string::npos) << msg;
    EXPECT_NE(msg.find("index 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("value 100"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[0, 100)"), std::string::npos) << msg;
  }
  OwnedTensor got = testing::to_host(out);
  for (int64_t j = 0; j < hidden; ++j) {
    EXPECT_EQ(host_get(got, 2 * hidden + j), 0.0) << "bad row 2, column " << j;
    EXPECT_EQ(host_get(got, 4 * hidden + j), 0.0) << "bad row 4, column " << j;
    EXPECT_EQ(host_get(got, j), host_get(w, 5 * hidden + j)) << "good row 0, column " << j;
  }
}

TEST(EmbeddingKernel, UncheckedModeNeverReadsOutOfBoundsAndWritesZeros) {
  DAY18_REQUIRE_GPU();
  Rng rng(305);
  const int64_t vocab = 10, hidden = 77;  // scalar path too
  OwnedTensor w = rng.normal_tensor({vocab, hidden}, DType::f32, 0, 1);
  OwnedTensor ids = ids_tensor({9, 2147483647, -2147483647 - 1, 0});
  OwnedTensor dids = ids.to(Storage::device), dw = w.to(Storage::device);
  OwnedTensor out({4, hidden}, DType::f32, Storage::device);
  poison(out);
  EXPECT_NO_THROW(embedding(out, dids, dw, /*check_ids=*/false));
  DAY18_CUDA_CHECK(cudaDeviceSynchronize());  // a wild read would surface here (or in sanitizer)
  OwnedTensor got = testing::to_host(out);
  for (int64_t j = 0; j < hidden; ++j) {
    EXPECT_EQ(host_get(got, j), host_get(w, 9 * hidden + j));
    EXPECT_EQ(host_get(got, hidden + j), 0.0);
    EXPECT_EQ(host_get(got, 2 * hidden + j), 0.0);
    EXPECT_EQ(host_get(got, 3 * hidden + j), host_get(w, j));
  }
}

// ---- bad arguments ----

TEST(EmbeddingValidation, RejectsBadArgumentsNamingThem) {
  Rng rng(310);
  OwnedTensor w = rng.normal_tensor({10, 16}, DType::bf16, 0, 1);
  OwnedTensor ids = ids_tensor({1, 2, 3});
  OwnedTensor out({3, 16}, DType::bf16, Storage::host);
  OwnedTensor ids64({3}, DType::i64, Storage::host);
  OwnedTensor ids2d({3, 1}, DType::i32, Storage::host);
  OwnedTensor w_i32({10, 16}, DType::i32, Storage::host);
  OwnedTensor out_f16({3, 16}, DType::f16, Storage::host);
  OwnedTensor out_short({2, 16}, DType::bf16, Storage::host);
  OwnedTensor out_narrow({3, 8}, DType::bf16, Storage::host);
  OwnedTensor w_1d = rng.normal_tensor({16}, DType::bf16, 0, 1);
  Tensor ids_cuda(ids.data(), DType::i32, {3}, Device::cuda);
  Tensor out_cuda(out.data(), DType::bf16, {3, 16}, Device::cuda);
  for (int64_t i = 0; i < 3; ++i) ids64.ptr<int64_t>()[i] = i, ids2d.ptr<int32_t>()[i] = 1;

  EXPECT_INVALID_NAMING(embedding(out, ids64, w), "token_ids");
  EXPECT_INVALID_NAMING(embedding(out, ids2d, w), "token_ids");
  EXPECT_INVALID_NAMING(embedding(out, ids, w_i32), "weight");
  EXPECT_INVALID_NAMING(embedding(out, ids, w_1d), "weight");
  EXPECT_INVALID_NAMING(embedding(out_f16, ids, w), "out");
  EXPECT_INVALID_NAMING(embedding(out_short, ids, w), "out");
  EXPECT_INVALID_NAMING(embedding(out_narrow, ids, w), "out");
  EXPECT_INVALID_NAMING(embedding(out, ids_cuda, w), "token_ids");
  EXPECT_INVALID_NAMING(embedding(out_cuda, ids, w), "out");
}

}  // namespace
}  // namespace day18
