// safetensors: the format of the golden outputs and of `day18 kernel`'s inputs and outputs.
// A round trip must be exact for every dtype, and a malformed file must fail with an error that
// names the file, the tensor and what is wrong, never with a crash or a huge allocation.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/core/rng.h"
#include "engine/core/safetensors.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;

fs::path temp_file(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "day18_safetensors_test";
  fs::create_directories(dir);
  return dir / name;
}

// A file image: 8-byte little-endian header length, the header text, then `data`.
std::string image(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

OwnedTensor random_tensor(Rng& rng, DType dt, const std::vector<int64_t>& shape) {
  OwnedTensor t(shape, dt, Storage::host);
  if (is_floating(dt))
    rng.fill_normal(t, 0.0, 3.0);
  else
    rng.fill_uniform(t, 0, dt == DType::u8 ? 255 : 100000);
  return t;
}

TEST(Safetensors, RoundTripIsBitExactForEveryDtypeWithMetadata) {
  Rng rng(7);
  std::map<std::string, OwnedTensor> owned;
  owned.emplace("f32", random_tensor(rng, DType::f32, {3, 5}));
  owned.emplace("f16", random_tensor(rng, DType::f16, {2, 3, 4}));
  owned.emplace("bf16", random_tensor(rng, DType::bf16, {17}));
  owned.emplace("i32", random_tensor(rng, DType::i32, {4, 2}));
  owned.emplace("i64", random_tensor(rng, DType::i64, {5}));
  owned.emplace("u8", random_tensor(rng, DType::u8, {3, 3}));
  owned.emplace("empty", OwnedTensor({0, 8}, DType::f16, Storage::host));
  owned.emplace("scalar", random_tensor(rng, DType::f32, {}));
  std::map<std::string, Tensor> views;
  for (auto& [k, v] : owned) views.emplace(k, v.view());
  const std::map<std::string, std::string> meta = {
      {"_op", "rms_norm"}, {"epsilon", "1e-06"}, {"note", "quotes \" and unicode \xc3\xa9"}};

  const fs::path p = temp_file("roundtrip.safetensors");
  write_safetensors(p.string(), views, meta);
  EXPECT_FALSE(fs::exists(p.string() + ".tmp")) << "temporary file left behind";
  TensorFile f = read_safetensors(p.string());

  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), owned.size());
  for (auto& [name, t] : owned) {
    SCOPED_TRACE(name);
    const OwnedTensor& r = f.at(name);
    EXPECT_EQ(r.dtype(), t.dtype());
    EXPECT_EQ(r.sizes(), t.sizes());
    ASSERT_EQ(r.nbytes(), t.nbytes());
    if (t.nbytes()) {
      EXPECT_EQ(std::memcmp(r.data(), t.data(), t.nbytes()), 0);
    }
  }
}

TEST(Safetensors, HeaderIsPaddedSoTheDataSectionIsEightByteAligned) {
  OwnedTensor t({3}, DType::f32, Storage::host);
  const fs::path p = temp_file("aligned.safetensors");
  write_safetensors(p.string(), {{"abc", t.view()}});
  const std::string bytes = slurp(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 12);
}

TEST(Safetensors, ParsesAHandWrittenFileLikeHuggingFaceWritesIt) {
  const float vals[2] = {1.5f, -2.0f};
  std::string data(reinterpret_cast<const char*>(vals), sizeof(vals));
  TensorFile f =
      parse_safetensors(image(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],)"
                              R"("data_offsets":[0,8]}})",
                              data));
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.at("w").ptr<float>()[1], -2.0f);
  EXPECT_TRUE(f.contains("w"));
  EXPECT_FALSE(f.contains("x"));
}

TEST(Safetensors, MissingTensorNamesWhatTheFileHas) {
  TensorFile f =
      parse_safetensors(image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x"));
  EXPECT_THROW_WITH(f.at("b"), InvalidArgument, "tensor 'b' not found", "file has: a");
}

TEST(Safetensors, MissingFileIsNamed) {
  EXPECT_THROW_WITH(read_safetensors("/nonexistent/dir/x.safetensors"), InvalidArgument,
                    "cannot open", "/nonexistent/dir/x.safetensors");
}

TEST(Safetensors, FileShorterThanTheLengthFieldIsRejected) {
  EXPECT_THROW_WITH(parse_safetensors("abc", "t.safetensors"), InvalidArgument,
                    "t.safetensors: not a safetensors file (3 bytes");
}

TEST(Safetensors, HeaderLengthBeyondTheFileIsRejected) {
  std::string img = image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x");
  img[0] = static_cast<char>(0xff);  // claims a header far longer than the file
  img[1] = static_cast<char>(0xff);
  EXPECT_THROW_WITH(parse_safetensors(img, "f"), InvalidArgument, "f: header size 65535",
                    "exceeds the file");
}

TEST(Safetensors, TruncatedFileOnDiskNamesTheTensorThatNoLongerFits) {
  OwnedTensor t({64}, DType::f32, Storage::host);
  std::memset(t.data(), 0, t.nbytes());
  const fs::path p = temp_file("truncated.safetensors");
  write_safetensors(p.string(), {{"weight", t.view()}});
  fs::resize_file(p, fs::file_size(p) - 10);
  EXPECT_THROW_WITH(read_safetensors(p.string()), InvalidArgument, p.string().c_str(),
                    "tensor 'weight'", "outside the data section");
  fs::resize_file(p, 5);
  EXPECT_THROW_WITH(read_safetensors(p.string()), InvalidArgument, "not a safetensors file");
}

TEST(Safetensors, MalformedJsonIsRejected) {
  EXPECT_THROW_WITH(parse_safetensors(image(R"({"a": {"dtype": )"), "f"), InvalidArgument,
                    "f: malformed JSON header");
  EXPECT_THROW_WITH(parse_safetensors(image(R"([1, 2])"), "f"), InvalidArgument,
                    "header is not a JSON object");
}

TEST(Safetensors, UnknownDtypeIsNamed) {
  EXPECT_THROW_WITH(
      parse_safetensors(
          image(R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0')),
          "f"),
      InvalidArgument, "tensor 'w' has unsupported dtype 'F64'", "supported: F32");
}

TEST(Safetensors, MissingFieldsAreNamed) {
  EXPECT_THROW_WITH(parse_safetensors(image(R"({"w":{"dtype":"F32","shape":[1]}})"), "f"),
                    InvalidArgument, "tensor 'w' needs dtype, shape and data_offsets");
  EXPECT_THROW_WITH(
      parse_safetensors(image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})"), "f"),
      InvalidArgument, "tensor 'w': bad extent -1");
  EXPECT_THROW_WITH(
      parse_safetensors(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})"), "f"),
      InvalidArgument, "tensor 'w': data_offsets must be [begin, end]");
  EXPECT_THROW_WITH(parse_safetensors(image(R"({"__metadata__":{"k":3}})"), "f"), InvalidArgument,
                    "__metadata__['k'] is not a string");
}

TEST(Safetensors, OffsetsOutOfRangeAreNamed) {
  EXPECT_THROW_WITH(
      parse_safetensors(
          image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", std::string(8, '\0')),
          "f"),
      InvalidArgument, "tensor 'w': data_offsets [8, 16] outside the data section (8 bytes)");
  EXPECT_THROW_WITH(
      parse_safetensors(
          image(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", std::string(8, '\0')),
          "f"),
      InvalidArgument, "data_offsets [8, 4]");
}

TEST(Safetensors, OffsetsThatDisagreeWithTheShapeAreNamed) {
  EXPECT_THROW_WITH(
      parse_safetensors(
          image(R"({"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
          "f"),
      InvalidArgument, "tensor 'w': data_offsets span 8 bytes but shape [3] of float16 needs 6");
}

TEST(Safetensors, HugeShapeIsRejectedBeforeAnythingIsAllocated) {
  // 2^62 elements: a reader that allocates from the shape first would try to allocate exabytes
  // (or overflow to a small size) instead of reporting the mismatch.
  EXPECT_THROW_WITH(
      parse_safetensors(
          image(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})",
                std::string(8, '\0')),
          "f"),
      InvalidArgument, "tensor 'w'", "too large");
  EXPECT_THROW_WITH(
      parse_safetensors(image(R"({"w":{"dtype":"F32","shape":[2147483648,2147483648,2147483648],)"
                              R"("data_offsets":[0,8]}})",
                              std::string(8, '\0')),
                        "f"),
      InvalidArgument, "tensor 'w'", "too large");
  EXPECT_THROW_WITH(parse_safetensors(image(R"({"w":{"dtype":"F32","shape":[1000000000],)"
                                            R"("data_offsets":[0,8]}})",
                                            std::string(8, '\0')),
                                      "f"),
                    InvalidArgument, "tensor 'w': data_offsets span 8 bytes", "needs 4000000000");
}

TEST(Safetensors, WriteRefusesNonContiguousTensorsNamingThem) {
  float buf[12] = {};
  Tensor t(buf, DType::f32, {4, 3}, {1, 4}, Device::cpu);
  EXPECT_THROW_WITH(write_safetensors(temp_file("nc.safetensors").string(), {{"kt", t}}),
                    InvalidArgument, "kt: must be contiguous");
}

TEST(Safetensors, WriteToAMissingDirectoryFailsCleanly) {
  OwnedTensor t({2}, DType::f32, Storage::host);
  EXPECT_THROW_WITH(write_safetensors("/nonexistent/dir/out.safetensors", {{"a", t.view()}}),
                    InvalidArgument, "cannot write");
}

}  // namespace
}  // namespace day18
