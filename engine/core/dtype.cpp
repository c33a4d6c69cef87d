#include "engine/core/dtype.h"

#include <algorithm>
#include <cctype>

#include "engine/core/error.h"

namespace day18 {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
  }
  return "?";
}

std::string_view safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  return "?";
}

DType parse_dtype(std::string_view name) {
  std::string s(name);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "float32" || s == "fp32" || s == "f32" || s == "float") return DType::f32;
  if (s == "float16" || s == "fp16" || s == "f16" || s == "half") return DType::f16;
  if (s == "bfloat16" || s == "bf16") return DType::bf16;
  if (s == "int32" || s == "i32") return DType::i32;
  if (s == "int64" || s == "i64") return DType::i64;
  if (s == "uint8" || s == "u8") return DType::u8;
  DAY18_REQUIRE(false, "unknown dtype '", name,
                "' (expected one of float32/fp32, float16/fp16, bfloat16/bf16, int32, int64, uint8)");
}

}  // namespace day18
