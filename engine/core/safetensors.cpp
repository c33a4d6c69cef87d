#include "engine/core/safetensors.h"

#include "engine/core/file_io.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace day18 {

const OwnedTensor& TensorFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    std::string have;
    for (auto& [k, v] : tensors) have += detail::concat(have.empty() ? "" : ", ", k);
    DAY18_REQUIRE(false, "tensor '", name, "' not found (file has: ", have, ")");
  }
  return it->second;
}

SafetensorsHeader parse_safetensors_header(std::string_view bytes, uint64_t file_size,
                                           const std::string& what) {
  DAY18_REQUIRE(file_size >= 8 && bytes.size() >= 8, what, ": not a safetensors file (",
                file_size, " bytes, need at least 8 for the header size)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  // Compared with what exists, never added to anything first (no wrap-around).
  DAY18_REQUIRE(header_len <= file_size - 8, what, ": header size ", header_len,
                " exceeds the file (", file_size, " bytes)");
  DAY18_REQUIRE(header_len <= (100ull << 20), what, ": header size ", header_len,
                " is over the 100 MB limit");
  DAY18_REQUIRE(header_len <= bytes.size() - 8, what, ": only ", bytes.size(),
                " bytes of the header were read, need ", 8 + header_len);

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    DAY18_REQUIRE(false, what, ": malformed JSON header: ", json_library_message(e.what()));
  }
  DAY18_REQUIRE(header.is_object(), what, ": header is not a JSON object");

  const uint64_t data_begin = 8 + header_len;  // <= file_size, checked above
  const uint64_t data_len = file_size - data_begin;
  SafetensorsHeader out;
  out.file_size = file_size;
  std::vector<std::pair<uint64_t, std::string>> spans;  // (begin, name) of non-empty tensors
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      DAY18_REQUIRE(entry.is_object(), what, ": __metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        DAY18_REQUIRE(v.is_string(), what, ": __metadata__['", k, "'] is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    DAY18_REQUIRE(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                      entry.contains("data_offsets"),
                  what, ": tensor '", name, "' needs dtype, shape and data_offsets");
    DAY18_REQUIRE(entry["dtype"].is_string(), what, ": tensor '", name, "': dtype is not a string");
    const std::string dt = entry["dtype"].get<std::string>();
    TensorLocation loc;
    try {
      loc.dtype = parse_dtype(dt);
    } catch (const InvalidArgument&) {
      DAY18_REQUIRE(false, what, ": tensor '", name, "' has unsupported dtype '", dt,
                    "' (supported: F32, F16, BF16, I32, I64, U8)");
    }
    DAY18_REQUIRE(entry["shape"].is_array(), what, ": tensor '", name, "': shape is not an array");
    // Size from the shape, with overflow checks, before anything is allocated: a corrupt shape
    // must be reported as such, not as a failed multi-exabyte allocation.
    uint64_t need = dtype_size(loc.dtype);
    for (auto& d : entry["shape"]) {
      DAY18_REQUIRE(d.is_number_integer() && d.get<int64_t>() >= 0, what, ": tensor '", name,
                    "': bad extent ", d.dump(), " in shape");
      const uint64_t extent = d.get<uint64_t>();
      DAY18_REQUIRE(extent == 0 || need <= (uint64_t(1) << 62) / extent, what, ": tensor '", name,
                    "': shape ", entry["shape"].dump(), " is too large");
      need *= extent;
      loc.shape.push_back(d.get<int64_t>());
    }
    auto& off = entry["data_offsets"];
    DAY18_REQUIRE(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                      off[1].is_number_unsigned(),
                  what, ": tensor '", name, "': data_offsets must be [begin, end], got ", off.dump());
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    DAY18_REQUIRE(b <= e && e <= data_len, what, ": tensor '", name, "': data_offsets [", b, ", ",
                  e, "] outside the data section (", data_len, " bytes)");
    DAY18_REQUIRE(e - b == need, what, ": tensor '", name, "': data_offsets span ", e - b,
                  " bytes but shape ", shape_string(loc.shape), " of ", dtype_name(loc.dtype),
                  " needs ", need);
    loc.offset = data_begin + b;  // <= file_size: no wrap
    loc.nbytes = need;
    if (need > 0) spans.emplace_back(b, name);
    out.tensors.emplace(name, std::move(loc));
  }
  // No two tensors share bytes (the format's rule; a crafted file could alias a weight).
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    const TensorLocation& prev = out.tensors.at(spans[i - 1].second);
    DAY18_REQUIRE(spans[i].first >= prev.offset - data_begin + prev.nbytes, what, ": tensors '",
                  spans[i - 1].second, "' and '", spans[i].second, "' overlap");
  }
  return out;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  const std::string why = unreadable_reason(path);
  DAY18_REQUIRE(why.empty(), "cannot open safetensors file '", path, "': ", why);
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const auto end = in.tellg();
  DAY18_REQUIRE(end >= 0, path, ": cannot read the file size");
  const uint64_t size = static_cast<uint64_t>(end);
  in.seekg(0);
  std::string prefix(std::min<uint64_t>(size, 8), '\0');
  in.read(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  DAY18_REQUIRE(in.good() || size < 8, path, ": cannot read the header size");
  if (size >= 8) {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(prefix[i]);
    // Read the header only when its size is plausible (parse_* reports the bad ones).
    if (header_len <= size - 8 && header_len <= (100ull << 20)) {
      prefix.resize(8 + header_len);
      in.read(prefix.data() + 8, static_cast<std::streamsize>(header_len));
      DAY18_REQUIRE(in.good(), path, ": cannot read the header");
    }
  }
  return parse_safetensors_header(prefix, size, path);
}

TensorFile parse_safetensors(const std::string& bytes, const std::string& what) {
  const SafetensorsHeader h = parse_safetensors_header(bytes, bytes.size(), what);
  TensorFile file;
  file.metadata = h.metadata;
  for (auto& [name, loc] : h.tensors) {
    OwnedTensor t(loc.shape, loc.dtype, Storage::host);
    if (t.nbytes()) std::memcpy(t.data(), bytes.data() + loc.offset, t.nbytes());
    file.tensors.emplace(name, std::move(t));
  }
  return file;
}

TensorFile read_safetensors(const std::string& path) {
  const std::string why = unreadable_reason(path);
  DAY18_REQUIRE(why.empty(), "cannot open safetensors file '", path, "': ", why);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_safetensors(ss.str(), path);
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata, std::string_view what) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    expect_contiguous(t, name.c_str());
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", t.sizes()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes, as HF does

  // A unique temporary file in the same folder, renamed over `path` when complete
  // (engine/core/file_io.h): a failure never leaves a half-written file, and a file the user
  // already has (a <path>.tmp included) is never touched.
  write_file_atomically(path, what, [&](std::ostream& out) {
    uint64_t n = h.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (auto& [name, t] : tensors) {
      if (t.device() == Device::cpu) {
        out.write(static_cast<const char*>(t.data()), static_cast<std::streamsize>(t.nbytes()));
      } else {
        OwnedTensor host(t.sizes(), t.dtype(), Storage::host);
        copy_tensor(host.view(), t);
        out.write(static_cast<const char*>(host.data()),
                  static_cast<std::streamsize>(host.nbytes()));
      }
    }
  });
}

}  // namespace day18
