#include "engine/core/safetensors.h"

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

TensorFile parse_safetensors(const std::string& bytes, const std::string& what) {
  DAY18_REQUIRE(bytes.size() >= 8, what, ": not a safetensors file (", bytes.size(),
                " bytes, need at least 8 for the header size)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  DAY18_REQUIRE(header_len <= bytes.size() - 8, what, ": header size ", header_len,
                " exceeds the file (", bytes.size(), " bytes)");
  DAY18_REQUIRE(header_len <= (100ull << 20), what, ": header size ", header_len,
                " is over the 100 MB limit");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    DAY18_REQUIRE(false, what, ": malformed JSON header: ", e.what());
  }
  DAY18_REQUIRE(header.is_object(), what, ": header is not a JSON object");

  const size_t data_begin = 8 + header_len;
  const uint64_t data_len = bytes.size() - data_begin;
  TensorFile file;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      DAY18_REQUIRE(entry.is_object(), what, ": __metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        DAY18_REQUIRE(v.is_string(), what, ": __metadata__['", k, "'] is not a string");
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    DAY18_REQUIRE(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                      entry.contains("data_offsets"),
                  what, ": tensor '", name, "' needs dtype, shape and data_offsets");
    DAY18_REQUIRE(entry["dtype"].is_string(), what, ": tensor '", name, "': dtype is not a string");
    const std::string dt = entry["dtype"].get<std::string>();
    DType dtype;
    try {
      dtype = parse_dtype(dt);
    } catch (const InvalidArgument&) {
      DAY18_REQUIRE(false, what, ": tensor '", name, "' has unsupported dtype '", dt,
                    "' (supported: F32, F16, BF16, I32, I64, U8)");
    }
    std::vector<int64_t> shape;
    DAY18_REQUIRE(entry["shape"].is_array(), what, ": tensor '", name, "': shape is not an array");
    // Size from the shape, with overflow checks, before anything is allocated: a corrupt shape
    // must be reported as such, not as a failed multi-exabyte allocation.
    uint64_t need = dtype_size(dtype);
    for (auto& d : entry["shape"]) {
      DAY18_REQUIRE(d.is_number_integer() && d.get<int64_t>() >= 0, what, ": tensor '", name,
                    "': bad extent ", d.dump(), " in shape");
      const uint64_t extent = d.get<uint64_t>();
      DAY18_REQUIRE(extent == 0 || need <= (uint64_t(1) << 62) / extent, what, ": tensor '", name,
                    "': shape ", entry["shape"].dump(), " is too large");
      need *= extent;
      shape.push_back(d.get<int64_t>());
    }
    auto& off = entry["data_offsets"];
    DAY18_REQUIRE(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                      off[1].is_number_unsigned(),
                  what, ": tensor '", name, "': data_offsets must be [begin, end], got ", off.dump());
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    DAY18_REQUIRE(b <= e && e <= data_len, what, ": tensor '", name, "': data_offsets [", b, ", ",
                  e, "] outside the data section (", data_len, " bytes)");
    DAY18_REQUIRE(e - b == need, what, ": tensor '", name, "': data_offsets span ", e - b,
                  " bytes but shape ", shape_string(shape), " of ", dtype_name(dtype), " needs ",
                  need);
    OwnedTensor t(shape, dtype, Storage::host);
    if (t.nbytes()) std::memcpy(t.data(), bytes.data() + data_begin + b, t.nbytes());
    file.tensors.emplace(name, std::move(t));
  }
  return file;
}

TensorFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DAY18_REQUIRE(in.good(), "cannot open safetensors file '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_safetensors(ss.str(), path);
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
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

  const std::string tmp = path + ".tmp";
  // Remove the temporary file on every failure below, so nothing half-written stays behind.
  struct RemoveOnFailure {
    const std::string& p;
    bool armed = true;
    ~RemoveOnFailure() {
      std::error_code ec;
      if (armed) std::filesystem::remove(p, ec);
    }
  } cleanup{tmp};
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DAY18_REQUIRE(out.good(), "cannot write '", tmp, "'");
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
        out.write(static_cast<const char*>(host.data()), static_cast<std::streamsize>(host.nbytes()));
      }
    }
    DAY18_REQUIRE(out.good(), "writing '", tmp, "' failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  DAY18_REQUIRE(!ec, "renaming '", tmp, "' to '", path, "' failed: ", ec.message());
  cleanup.armed = false;
}

}  // namespace day18
