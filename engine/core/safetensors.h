// safetensors: the tensor file format of Hugging Face (and of our golden outputs).
//
//   [8 bytes: little-endian u64 N][N bytes: JSON header][raw tensor bytes]
//   header = {"<name>": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"key": "value", ...}}   (offsets relative to the data section)
//
// Reading validates everything a malformed or truncated file can get wrong and names the file,
// the tensor and the bad value in the error.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/memory.h"

namespace day18 {

struct TensorFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, OwnedTensor> tensors;  // host memory

  const OwnedTensor& at(const std::string& name) const;  // throws naming the missing tensor
  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
};

TensorFile read_safetensors(const std::string& path);
// Parses a whole file image held in memory (what read_safetensors does after reading).
TensorFile parse_safetensors(const std::string& bytes, const std::string& what = "<memory>");

// The header alone: where each tensor's bytes are, without reading them (the model loader reads
// multi-GB shards tensor by tensor). The one header parser: read_safetensors uses it too, so both
// paths check the same things, with overflow-safe arithmetic: the header size and every
// data_offsets pair are compared with the bytes that exist (never summed first, so offsets near
// 2^64 cannot wrap), every extent product is checked before it is multiplied, and a tensor's span
// must equal its shape's size. Tensors may not overlap each other nor the header (a data offset
// is relative to the end of the header, so no tensor can read header bytes).
struct TensorLocation {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute, in the file (8 + header size + data_offsets[0])
  uint64_t nbytes = 0;
};
struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::map<std::string, TensorLocation> tensors;
  uint64_t file_size = 0;
};
// `prefix` holds at least the first 8 + header-size bytes of a file of `file_size` bytes (more is
// fine); `what` names the file in errors.
SafetensorsHeader parse_safetensors_header(std::string_view prefix, uint64_t file_size,
                                           const std::string& what);
SafetensorsHeader read_safetensors_header(const std::string& path);

// Tensors may live anywhere (device tensors are copied to the host first). Writes to a unique
// temporary file in the same folder and renames it (engine/core/file_io.h), so a failure never
// leaves a half-written file behind and never touches another file. `what` names the path in
// errors (the flag that chose it, e.g. "--out").
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       std::string_view what = "write_safetensors");

}  // namespace day18
