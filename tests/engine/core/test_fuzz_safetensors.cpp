// A bounded, seeded fuzzer for the one safetensors reader (engine/core/safetensors.h), the file
// format every model folder and golden output goes through (issue 11: a second, hand-written
// header parser let offsets near 2^64 wrap and read header bytes as a weight, exit 0).
//
// Each case starts from a valid file image and breaks it in one way a corrupt download, a wrong
// tool or an attacker would: random bytes of the header, a truncation, a wrong length field, or
// one JSON field set to a hostile value (a dtype nobody knows, a negative or 2^62 extent, offsets
// near 2^64, overlapping or reversed spans, a missing key, a non-object). The reader must either
// accept the image, and then every tensor it returns lies inside the file, has exactly the bytes
// its shape needs and overlaps no other, or throw day18::Error naming the file: never another
// exception, a crash, or an allocation the file cannot back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/core/safetensors.h"

namespace day18 {
namespace {

using nlohmann::json;

// 8-byte little-endian length, the header, the data.
std::string image(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

struct Valid {
  json header;
  std::string data;
};

// Three tensors of random dtypes and shapes, packed back to back, plus metadata.
Valid valid_file(Rng& rng) {
  static const std::vector<std::pair<const char*, int>> kDtypes = {
      {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"I64", 8}, {"U8", 1}};
  Valid v;
  uint64_t off = 0;
  for (int t = 0; t < 3; ++t) {
    const auto& [name, size] = kDtypes[static_cast<size_t>(rng.randint(0, 5))];
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (int d = 0, nd = static_cast<int>(rng.randint(0, 3)); d < nd; ++d) {
      shape.push_back(rng.randint(1, 6));
      numel *= shape.back();
    }
    const uint64_t nbytes = static_cast<uint64_t>(numel) * static_cast<uint64_t>(size);
    v.header["t" + std::to_string(t)] = {{"dtype", name}, {"shape", shape},
                                         {"data_offsets", {off, off + nbytes}}};
    off += nbytes;
  }
  v.header["__metadata__"] = {{"format", "pt"}};
  v.data.resize(off);
  for (auto& c : v.data) c = static_cast<char>(rng.randint(0, 255));
  return v;
}

// A hostile number for an extent or an offset.
json hostile_number(Rng& rng) {
  switch (rng.randint(0, 8)) {
    case 0: return -1;
    case 1: return 0;
    case 2: return int64_t{1} << 62;
    case 3: return std::numeric_limits<uint64_t>::max();
    case 4: return std::numeric_limits<uint64_t>::max() - 7;
    case 5: return std::numeric_limits<int64_t>::max();
    case 6: return 1.5;
    case 7: return "12";
    default: return rng.randint(0, 4096);
  }
}

// One mutation of a valid image; `what` says which, for the failure message.
std::string mutate(Rng& rng, const Valid& v, std::string& what) {
  json h = v.header;
  std::string data = v.data;
  const std::string key = "t" + std::to_string(rng.randint(0, 2));
  switch (rng.randint(0, 9)) {
    case 0: {  // random bytes of the serialized header
      std::string s = image(h.dump(), data);
      const size_t hdr_end = 8 + h.dump().size();
      for (int i = 0, n = static_cast<int>(rng.randint(1, 4)); i < n; ++i) {
        const size_t at = static_cast<size_t>(rng.randint(8, static_cast<int64_t>(hdr_end) - 1));
        s[at] = static_cast<char>(rng.randint(0, 255));
      }
      what = "header bytes overwritten";
      return s;
    }
    case 1: {  // truncated anywhere
      std::string s = image(h.dump(), data);
      s.resize(static_cast<size_t>(rng.randint(0, static_cast<int64_t>(s.size()) - 1)));
      what = "truncated to " + std::to_string(s.size()) + " bytes";
      return s;
    }
    case 2: {  // a wrong length field
      std::string s = image(h.dump(), data);
      const uint64_t n = rng.randint(0, 1) ? static_cast<uint64_t>(rng.randint(0, 1 << 20))
                                           : std::numeric_limits<uint64_t>::max() - rng.randint(0, 9);
      for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
      what = "length field " + std::to_string(n);
      return s;
    }
    case 3:
      h[key]["dtype"] = rng.randint(0, 1) ? json("F8_E9M9") : json(7);
      what = key + ".dtype hostile";
      break;
    case 4: {
      auto& shape = h[key]["shape"];
      if (shape.empty()) shape.push_back(1);
      shape[static_cast<size_t>(rng.randint(0, static_cast<int64_t>(shape.size()) - 1))] =
          hostile_number(rng);
      what = key + ".shape entry hostile: " + h[key]["shape"].dump();
      break;
    }
    case 5:
      h[key]["data_offsets"][static_cast<size_t>(rng.randint(0, 1))] = hostile_number(rng);
      what = key + ".data_offsets hostile: " + h[key]["data_offsets"].dump();
      break;
    case 6: {  // reversed or overlapping spans
      auto& o = h[key]["data_offsets"];
      if (rng.randint(0, 1)) {
        std::swap(o[0], o[1]);
        what = key + ": reversed offsets";
      } else {
        h["t_overlap"] = h[key];
        what = key + ": a second tensor over the same bytes";
      }
      break;
    }
    case 7: {
      const char* fields[] = {"dtype", "shape", "data_offsets"};
      h[key].erase(fields[rng.randint(0, 2)]);
      what = key + ": a field removed";
      break;
    }
    case 8:
      h[key] = rng.randint(0, 1) ? json::array({1, 2}) : json("tensor");
      what = key + ": not an object";
      break;
    default:
      if (rng.randint(0, 1)) {
        h["__metadata__"] = rng.randint(0, 1) ? json({{"k", 3}}) : json(5);
        what = "__metadata__ hostile";
        break;
      }
      // Valid: the format lets a writer pad the header with trailing spaces (to align the data).
      what = "header padded with spaces";
      return image(h.dump() + std::string(static_cast<size_t>(rng.randint(1, 15)), ' '), data);
  }
  return image(h.dump(), data);
}

// What an accepted image must satisfy.
void expect_sound(const std::string& bytes, const std::string& what) {
  const SafetensorsHeader hdr = parse_safetensors_header(bytes, bytes.size(), "<fuzz>");
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& [name, loc] : hdr.tensors) {
    uint64_t numel = 1;
    for (int64_t d : loc.shape) {
      ASSERT_GE(d, 0) << what << ": " << name;
      numel *= static_cast<uint64_t>(d);
    }
    EXPECT_EQ(loc.nbytes, numel * dtype_size(loc.dtype)) << what << ": " << name;
    EXPECT_LE(loc.offset, bytes.size()) << what << ": " << name;
    EXPECT_LE(loc.nbytes, bytes.size() - loc.offset) << what << ": " << name;
    if (loc.nbytes) spans.emplace_back(loc.offset, loc.offset + loc.nbytes);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    EXPECT_LE(spans[i - 1].second, spans[i].first) << what << ": two tensors overlap";
}

TEST(SafetensorsFuzz, EveryBrokenImageIsRefusedWithAnErrorOrReadSoundly) {
  Rng rng(20261203);
  int refused = 0, accepted = 0;
  constexpr int kCases = 3000;
  for (int i = 0; i < kCases; ++i) {
    const Valid v = valid_file(rng);
    std::string what;
    const std::string bytes = mutate(rng, v, what);
    try {
      const TensorFile f = parse_safetensors(bytes, "<fuzz>");
      ++accepted;
      expect_sound(bytes, what);
      for (const auto& [name, t] : f.tensors) EXPECT_GE(t.numel(), 0) << what << ": " << name;
    } catch (const Error& e) {
      ++refused;
      // The error names the file it is about.
      EXPECT_NE(std::string(e.what()).find("<fuzz>"), std::string::npos)
          << "case " << i << " (" << what << "): " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "case " << i << " (" << what << "): not a day18::Error but "
                    << typeid(e).name() << ": " << e.what();
    }
    if (HasFailure()) break;  // the first broken case is the one to read
  }
  // Both outcomes occur (a fuzzer that only ever refuses tests nothing about acceptance).
  EXPECT_GT(refused, kCases / 2);
  EXPECT_GT(accepted, 20);
  std::printf("  %d broken images: %d refused with a day18::Error, %d accepted and sound\n", kCases,
              refused, accepted);
}

TEST(SafetensorsFuzz, TheValidImagesThemselvesReadBack) {
  // The fuzzer's starting point must be valid, or every "refused" above proves nothing.
  Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    const Valid v = valid_file(rng);
    const std::string bytes = image(v.header.dump(), v.data);
    const TensorFile f = parse_safetensors(bytes, "<valid>");
    EXPECT_EQ(f.tensors.size(), 3u);
    expect_sound(bytes, "valid");
  }
}

}  // namespace
}  // namespace day18
