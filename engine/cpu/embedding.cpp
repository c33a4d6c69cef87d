#include "engine/cpu/embedding.h"

#include <cstring>

namespace day18::cpu {

void embedding(const Tensor& out, const Tensor& token_ids, const Tensor& weight) {
  const int64_t num_tokens = token_ids.size(0), vocab = weight.size(0), hidden = weight.size(1);
  const int32_t* ids = token_ids.ptr<int32_t>();
  for (int64_t t = 0; t < num_tokens; ++t)
    DAY18_REQUIRE(ids[t] >= 0 && ids[t] < vocab, "token_ids: index ", t, " has value ", ids[t],
                  ", outside the vocabulary [0, ", vocab, ")");
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(weight.dtype());
  const char* w = static_cast<const char*>(weight.data());
  char* o = static_cast<char*>(out.data());
  for (int64_t t = 0; t < num_tokens; ++t)
    std::memcpy(o + t * row_bytes, w + static_cast<int64_t>(ids[t]) * row_bytes, row_bytes);
}

}  // namespace day18::cpu
