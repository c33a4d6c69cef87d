// The one safetensors header parser (engine/core/safetensors.h: parse_safetensors_header), which
// both the whole-file reader and the model loader use. Regression: the loader's own parser summed
// the header size and an offset near 2^64, which wrapped to a small number, and read header bytes
// as a weight (wrong tokens, exit 0).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/core/safetensors.h"
#include "tests/support/temp_dir.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

namespace fs = std::filesystem;

std::string image(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

fs::path write_file(const std::string& name, const std::string& bytes) {
  static const fs::path dir = testing::fresh_temp_dir("day18_st_header_test", "files");
  std::ofstream(dir / name, std::ios::binary) << bytes;
  return dir / name;
}

TEST(SafetensorsHeader, GivesAbsoluteOffsetsWithoutReadingTheData) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}})";
  const fs::path p = write_file("ok.safetensors", image(h, std::string(12, 'x')));
  const SafetensorsHeader sh = read_safetensors_header(p.string());
  ASSERT_EQ(sh.tensors.size(), 2u);
  EXPECT_EQ(sh.tensors.at("a").offset, 8 + h.size());
  EXPECT_EQ(sh.tensors.at("b").offset, 8 + h.size() + 8);
  EXPECT_EQ(sh.tensors.at("b").nbytes, 4u);
  EXPECT_EQ(sh.file_size, 8 + h.size() + 12);
}

TEST(SafetensorsHeader, OffsetsNearTwoToThe64AreRejectedNotWrapped) {
  // begin + (8 + header) wraps to 0 modulo 2^64 (it would point at the header itself), and
  // end - begin equals the shape's size: only an overflow-safe comparison catches it.
  std::string h;
  for (int pad = 0; pad < 2; ++pad) {  // the header length enters the offsets: fix it point
    const uint64_t data_begin = 8 + h.size();
    const uint64_t b = ~uint64_t{0} - data_begin + 1, e = b + 8;
    h = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[)" + std::to_string(b) + "," +
        std::to_string(e) + "]}}";
  }
  const std::string bytes = image(h, std::string(64, 'x'));
  const fs::path p = write_file("wrap.safetensors", bytes);
  EXPECT_THROW_WITH(read_safetensors_header(p.string()), InvalidArgument, "tensor 'w'",
                    "outside the data section");
  EXPECT_THROW_WITH(read_safetensors(p.string()), InvalidArgument, "tensor 'w'",
                    "outside the data section");
}

TEST(SafetensorsHeader, OverlappingTensorsAreRejected) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_THROW_WITH(parse_safetensors(image(h, std::string(8, 'x')), "f"), InvalidArgument,
                    "'a' and 'b' overlap");
}

TEST(SafetensorsHeader, AHeaderLongerThanTheFileIsRejectedBeforeReading) {
  std::string bytes = image("{}", "");
  bytes[0] = static_cast<char>(0xff);  // header size 255 + ...: more than the file
  bytes[7] = static_cast<char>(0x7f);
  const fs::path p = write_file("long.safetensors", bytes);
  EXPECT_THROW_WITH(read_safetensors_header(p.string()), InvalidArgument, "exceeds the file");
}

}  // namespace
}  // namespace day18
