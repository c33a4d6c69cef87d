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

// Tensors may live anywhere (device tensors are copied to the host first). Writes to a temporary
// file and renames it, so a failure never leaves a half-written file behind.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace day18
